package idempotency

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"
	"unicode/utf8"
)

// The fast path of Hash. Decoding a body into map[string]any and marshalling it back
// (the canonical form Hash is defined by) was 7% of the server's CPU in the full flow
// (docs/PERFORMANCE.md, "Third round"). For the bodies agents send, the canonical form
// can be written in one pass over the bytes: whitespace dropped, object members sorted
// by key, every literal copied as written. appendCanonical does that only where the copy
// is exactly what json.Marshal would write, and gives up otherwise:
//
//   - a string holding an escape, a control character, invalid UTF-8, one of <, > or &
//     (escaped by Marshal), or U+2028 or U+2029 (escaped too);
//   - a key that is not ASCII (so byte order is the order Marshal sorts keys in);
//   - an object with the same key twice (Decode keeps the last: left to it);
//   - nesting deeper than maxCanonicalDepth;
//   - anything that is not well-formed JSON, or more than one value.
//
// Hash then takes the slow path, which decides alone. So a body the fast path accepts
// hashes to the very bytes it always did: stored keys keep matching their retries
// across this change (FuzzCanonicalIsMarshal holds the two paths equal).

// maxCanonicalDepth bounds the fast path's recursion; deeper bodies take the slow path.
const maxCanonicalDepth = 64

// canonicalBuffers recycles the fast path's output and scratch buffers.
var canonicalBuffers = sync.Pool{New: func() any { return new(canonicalWriter) }}

// canonicalWriter holds the buffers of one canonicalisation.
type canonicalWriter struct {
	out     []byte
	scratch []byte
	members []member
	redact  *Redaction // nil: none
}

// Redaction replaces secrets in a body before it is hashed: in each member of the
// top-level object whose name is Parent (ignoring case) and whose value is an object,
// the value of each member named in Fields (ignoring case) becomes the JSON string
// Replace returns for it (given the value's string, or "" when it is not a string).
type Redaction struct {
	Parent  string
	Fields  []string
	Replace func(value string) string
}

// RedactedSum is the SHA-256, in hex, of body's canonical form with r's secrets
// replaced, when the fast path can write it (see above); ok is false otherwise, and
// the caller decodes the body, replaces them in the value and hashes it (HashValue),
// which gives the same digest.
func RedactedSum(body []byte, r Redaction) (sum string, ok bool) {
	w := canonicalBuffers.Get().(*canonicalWriter)
	w.out, w.members, w.redact = w.out[:0], w.members[:0], &r
	if ok = appendCanonical(w, body); ok {
		digest := sha256.Sum256(w.out)
		sum = hex.EncodeToString(digest[:])
	}
	w.redact = nil
	if cap(w.out)+cap(w.scratch) <= maxPooledCanonical {
		canonicalBuffers.Put(w)
	}
	return sum, ok
}

// member is one object member being sorted: its key (raw, without quotes, ASCII) and
// where its canonical value sits in the writer's scratch buffer.
type member struct {
	key        []byte
	start, end int
}

// canonicalSum is the SHA-256 of body's canonical form, when the fast path can write it.
func canonicalSum(body []byte) (sum [sha256.Size]byte, ok bool) {
	w := canonicalBuffers.Get().(*canonicalWriter)
	w.out, w.members = w.out[:0], w.members[:0]
	if ok = appendCanonical(w, body); ok {
		sum = sha256.Sum256(w.out)
	}
	if cap(w.out)+cap(w.scratch) <= maxPooledCanonical {
		canonicalBuffers.Put(w)
	}
	return sum, ok
}

// maxPooledCanonical keeps the buffers of an unusually large body out of the pool.
const maxPooledCanonical = 64 << 10

// appendCanonical appends the canonical encoding of body (the one JSON value it holds)
// to w.out. ok is false when body is not a value the fast path can copy exactly (see
// above); w.out is then to be discarded.
func appendCanonical(w *canonicalWriter, body []byte) (ok bool) {
	p := canonicalParser{w: w, in: body}
	p.skipSpace()
	if !p.value(0, redactNone) {
		return false
	}
	p.skipSpace()
	return p.pos == len(p.in)
}

// canonicalParser is a recursive-descent reader of RFC 8259 JSON that writes the
// canonical form as it goes.
type canonicalParser struct {
	w   *canonicalWriter
	in  []byte
	pos int
}

func (p *canonicalParser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// redactRole is what a value is to the writer's Redaction.
type redactRole int

const (
	redactNone   redactRole = iota
	redactParent            // the object whose Fields are replaced
)

// value reads one value at p.pos and appends its canonical form to p.w.out.
func (p *canonicalParser) value(depth int, role redactRole) bool {
	if p.pos >= len(p.in) {
		return false
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return depth < maxCanonicalDepth && p.object(depth+1, role)
	case c == '[':
		return depth < maxCanonicalDepth && p.array(depth+1)
	case c == '"':
		s, ok := p.str(false)
		p.w.out = append(p.w.out, s...)
		return ok
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(p.in)-p.pos >= len(lit) && string(p.in[p.pos:p.pos+len(lit)]) == lit {
				p.pos += len(lit)
				p.w.out = append(p.w.out, lit...)
				return true
			}
		}
		return false
	}
}

// str reads a string literal and returns it as written (quotes included), when
// Marshal would write the decoded string the same way. A key must also be ASCII.
func (p *canonicalParser) str(key bool) ([]byte, bool) {
	start := p.pos
	p.pos++ // the opening quote
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return p.in[start:p.pos], true
		case c < 0x20, c == '\\', c == '<', c == '>', c == '&', c == 0x7f:
			return nil, false
		case c < utf8.RuneSelf:
			p.pos++
		default:
			r, size := utf8.DecodeRune(p.in[p.pos:])
			if key || r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
				return nil, false
			}
			p.pos += size
		}
	}
	return nil, false
}

// number reads a number per RFC 8259 and copies it as written (Decode keeps numbers as
// json.Number, which Marshal writes verbatim).
func (p *canonicalParser) number() bool {
	start := p.pos
	if p.in[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.in) && p.in[p.pos] == '0':
		p.pos++
	case p.digits() == 0:
		return false
	}
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return false
		}
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return false
		}
	}
	p.w.out = append(p.w.out, p.in[start:p.pos]...)
	return true
}

func (p *canonicalParser) digits() int {
	start := p.pos
	for p.pos < len(p.in) && '0' <= p.in[p.pos] && p.in[p.pos] <= '9' {
		p.pos++
	}
	return p.pos - start
}

func (p *canonicalParser) array(depth int) bool {
	p.pos++ // '['
	p.w.out = append(p.w.out, '[')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.w.out = append(p.w.out, ']')
		return true
	}
	for {
		if !p.value(depth, redactNone) {
			return false
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return false
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.w.out = append(p.w.out, ',')
			p.skipSpace()
		case ']':
			p.pos++
			p.w.out = append(p.w.out, ']')
			return true
		default:
			return false
		}
	}
}

// object reads an object and writes its members sorted by key. The members' values are
// written in place as they come; when the keys were not in order already, the values
// are moved through the scratch buffer into sorted order.
func (p *canonicalParser) object(depth int, role redactRole) bool {
	p.pos++ // '{'
	w := p.w
	open := len(w.out)
	w.out = append(w.out, '{')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		w.out = append(w.out, '}')
		return true
	}
	first := len(w.members) // this object's members; nested objects' come and go after
	sorted := true
	for {
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return false
		}
		key, ok := p.str(true)
		if !ok {
			return false
		}
		key = key[1 : len(key)-1]
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return false
		}
		p.pos++
		p.skipSpace()
		if len(w.members) > first {
			prev := w.members[len(w.members)-1].key
			switch c := bytes.Compare(prev, key); {
			case c == 0:
				return false
			case c > 0:
				sorted = false
			}
		}
		if len(w.members) > first {
			w.out = append(w.out, ',')
		}
		keyStart := len(w.out)
		w.out = append(w.out, '"')
		w.out = append(w.out, key...)
		w.out = append(w.out, '"', ':')
		if !p.member(depth, role, key) {
			return false
		}
		w.members = append(w.members, member{key: key, start: keyStart, end: len(w.out)})
		p.skipSpace()
		if p.pos >= len(p.in) {
			return false
		}
		if p.in[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.in[p.pos] != '}' {
			return false
		}
		p.pos++
		break
	}
	ms := w.members[first:]
	defer func() { w.members = w.members[:first] }()
	if !sorted {
		slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
		for i := 1; i < len(ms); i++ {
			if bytes.Equal(ms[i-1].key, ms[i].key) {
				return false
			}
		}
		// Rewrite the members (each "key":value, without its comma) in key order.
		w.scratch = append(w.scratch[:0], w.out[open+1:]...)
		base := open + 1
		w.out = w.out[:base]
		for i, m := range ms {
			if i > 0 {
				w.out = append(w.out, ',')
			}
			w.out = append(w.out, w.scratch[m.start-base:m.end-base]...)
		}
	}
	w.out = append(w.out, '}')
	return true
}

// member reads the value of the member key of an object that is role to the
// redaction, and writes it, or what replaces it.
func (p *canonicalParser) member(depth int, role redactRole, key []byte) bool {
	r := p.w.redact
	switch {
	case r == nil:
		return p.value(depth, redactNone)
	case depth == 1 && asciiEqualFold(key, r.Parent):
		if p.pos < len(p.in) && p.in[p.pos] == '{' {
			return p.value(depth, redactParent)
		}
		return p.value(depth, redactNone)
	case role == redactParent && slices.ContainsFunc(r.Fields, func(f string) bool { return asciiEqualFold(key, f) }):
		start, isString := len(p.w.out), p.pos < len(p.in) && p.in[p.pos] == '"'
		if !p.value(depth, redactNone) {
			return false
		}
		var secret string
		if isString {
			secret = string(p.w.out[start+1 : len(p.w.out)-1]) // no escapes: the bytes are the string
		}
		replaced := r.Replace(secret)
		p.w.out = p.w.out[:start]
		for i := 0; i < len(replaced); i++ {
			if c := replaced[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false // Marshal would escape it: leave it to the slow path
			}
		}
		p.w.out = append(p.w.out, '"')
		p.w.out = append(p.w.out, replaced...)
		p.w.out = append(p.w.out, '"')
		return true
	default:
		return p.value(depth, redactNone)
	}
}

// asciiEqualFold reports whether b, which is ASCII, is s ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
