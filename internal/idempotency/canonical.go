package idempotency

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"

	"github.com/agentic-commerce/agentic-commerce-server/internal/jsonscan"
)

// The fast path of Hash. Decoding a body into map[string]any and marshalling it back
// (the canonical form Hash is defined by) was 7% of the server's CPU in the full flow
// (docs/performance-history.md, "Third round"). For the bodies agents send, the canonical form
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
	digest, ok := canonicalSum(body, &r)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(digest[:]), true
}

// member is one object member being sorted: its key (raw, without quotes, ASCII) and
// where the member ("key":value) sits in the writer's output.
type member struct {
	key        []byte
	start, end int
}

// canonicalSum is the SHA-256 of body's canonical form, with redact's secrets replaced
// (nil: none), when the fast path can write it.
func canonicalSum(body []byte, redact *Redaction) (sum [sha256.Size]byte, ok bool) {
	w := canonicalBuffers.Get().(*canonicalWriter)
	w.out, w.members, w.redact = w.out[:0], w.members[:0], redact
	if ok = appendCanonical(w, body); ok {
		sum = sha256.Sum256(w.out)
	}
	w.redact = nil
	clear(w.members[:cap(w.members)]) // their keys point into body: the pool must not keep it
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
	p := canonicalParser{w: w, s: jsonscan.Scanner{In: body}}
	p.s.SkipSpace()
	if !p.value(0, redactNone) {
		return false
	}
	p.s.SkipSpace()
	return p.s.End()
}

// Strings the canonical writer copies: those Marshal writes as they are. Keys must also
// be ASCII, so that byte order is the order Marshal sorts them in.
var (
	canonicalValue = jsonscan.StringRule{MarshalSafe: true}
	canonicalKey   = jsonscan.StringRule{MarshalSafe: true, ASCII: true}
)

// canonicalParser is a recursive-descent reader of JSON that writes the canonical form
// as it goes.
type canonicalParser struct {
	w *canonicalWriter
	s jsonscan.Scanner
}

// redactRole is what a value is to the writer's Redaction.
type redactRole int

const (
	redactNone   redactRole = iota
	redactParent            // the object whose Fields are replaced
)

// value reads one value and appends its canonical form to p.w.out.
func (p *canonicalParser) value(depth int, role redactRole) bool {
	c, ok := p.s.Peek()
	switch {
	case !ok:
		return false
	case c == '{':
		return depth < maxCanonicalDepth && p.object(depth+1, role)
	case c == '[':
		return depth < maxCanonicalDepth && p.array(depth+1)
	case c == '"':
		str, ok := p.s.String(canonicalValue)
		p.w.out = append(append(append(p.w.out, '"'), str...), '"')
		return ok
	case c == '-' || ('0' <= c && c <= '9'):
		// Decode keeps numbers as json.Number, which Marshal writes verbatim.
		num, ok := p.s.Number()
		p.w.out = append(p.w.out, num...)
		return ok
	default:
		lit, ok := p.s.Literal()
		p.w.out = append(p.w.out, lit...)
		return ok
	}
}

func (p *canonicalParser) array(depth int) bool {
	p.s.Next('[')
	p.w.out = append(p.w.out, '[')
	p.s.SkipSpace()
	if p.s.Next(']') {
		p.w.out = append(p.w.out, ']')
		return true
	}
	for {
		if !p.value(depth, redactNone) {
			return false
		}
		p.s.SkipSpace()
		switch {
		case p.s.Next(','):
			p.w.out = append(p.w.out, ',')
			p.s.SkipSpace()
		case p.s.Next(']'):
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
	p.s.Next('{')
	w := p.w
	open := len(w.out)
	w.out = append(w.out, '{')
	p.s.SkipSpace()
	if p.s.Next('}') {
		w.out = append(w.out, '}')
		return true
	}
	first := len(w.members) // this object's members; nested objects' come and go after
	defer func() { w.members = w.members[:first] }()
	sorted := true
	for {
		key, ok := p.s.String(canonicalKey)
		if !ok {
			return false
		}
		p.s.SkipSpace()
		if !p.s.Next(':') {
			return false
		}
		p.s.SkipSpace()
		if len(w.members) > first {
			switch c := bytes.Compare(w.members[len(w.members)-1].key, key); {
			case c == 0:
				return false // a duplicate: Decode keeps the last, left to it
			case c > 0:
				sorted = false
			}
			w.out = append(w.out, ',')
		}
		keyStart := len(w.out)
		w.out = append(append(append(w.out, '"'), key...), '"', ':')
		if !p.member(depth, role, key) {
			return false
		}
		w.members = append(w.members, member{key: key, start: keyStart, end: len(w.out)})
		p.s.SkipSpace()
		if p.s.Next(',') {
			p.s.SkipSpace()
			continue
		}
		if !p.s.Next('}') {
			return false
		}
		break
	}
	if !sorted {
		ms := w.members[first:]
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
		if c, _ := p.s.Peek(); c == '{' {
			return p.value(depth, redactParent)
		}
		return p.value(depth, redactNone)
	case role == redactParent && slices.ContainsFunc(r.Fields, func(f string) bool { return asciiEqualFold(key, f) }):
		c, _ := p.s.Peek()
		start, isString := len(p.w.out), c == '"'
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
