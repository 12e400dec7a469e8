package acp

import (
	"bytes"
	"unicode/utf8"
)

// The fast path of checkKeys. Walking a body token by token through encoding/json's
// Decoder.Token was 3% of the server's CPU in the full flow (docs/PERFORMANCE.md, "Third
// round"), most of it boxing each token. A body agents send is well-formed, with short
// unique ASCII keys and no escapes in them: for it, one pass over the bytes can tell that
// checkKeys has nothing to refuse. keysClean says so only when it is sure; on anything
// else (a key problem, a syntax error, an escaped or non-ASCII key, invalid UTF-8,
// nesting deeper than maxCleanDepth, an object of more than maxCleanKeys members) it
// says no, and the token walk runs as before, so every refusal and its message are
// the walk's own. FuzzKeysCleanAgrees holds the two to that.

const (
	// maxCleanDepth bounds the fast path's recursion; deeper bodies take the token walk.
	maxCleanDepth = 64
	// maxCleanKeys bounds the fast path's duplicate check, which compares each key
	// with those before it in its object.
	maxCleanKeys = 64
)

// keysClean reports whether the JSON value at the start of body (after whitespace) is
// well-formed and has no key that checkKeys would refuse against root.
func keysClean(body []byte, root *shape) bool {
	w := cleanWalker{in: body}
	w.skipSpace()
	return w.value(root, 0)
}

// cleanWalker is a recursive-descent reader of RFC 8259 JSON checking keys as it goes.
type cleanWalker struct {
	in  []byte
	pos int
}

func (w *cleanWalker) skipSpace() {
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *cleanWalker) value(s *shape, depth int) bool {
	if w.pos >= len(w.in) {
		return false
	}
	switch c := w.in[w.pos]; {
	case c == '{':
		return depth < maxCleanDepth && w.object(s, depth+1)
	case c == '[':
		return depth < maxCleanDepth && w.array(s, depth+1)
	case c == '"':
		_, ok := w.str(false)
		return ok
	case c == '-' || ('0' <= c && c <= '9'):
		return w.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(w.in)-w.pos >= len(lit) && string(w.in[w.pos:w.pos+len(lit)]) == lit {
				w.pos += len(lit)
				return true
			}
		}
		return false
	}
}

// str reads a string literal and returns its contents. A key must be printable ASCII
// without escapes, so that its bytes are the name it decodes to; a value may hold
// valid escapes and UTF-8.
func (w *cleanWalker) str(key bool) ([]byte, bool) {
	w.pos++ // the opening quote
	start := w.pos
	for w.pos < len(w.in) {
		c := w.in[w.pos]
		switch {
		case c == '"':
			w.pos++
			return w.in[start : w.pos-1], true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if key || !w.escape() {
				return nil, false
			}
		case c < utf8.RuneSelf:
			w.pos++
		default:
			r, size := utf8.DecodeRune(w.in[w.pos:])
			if key || r == utf8.RuneError {
				return nil, false
			}
			w.pos += size
		}
	}
	return nil, false
}

// escape reads one escape sequence at w.pos (its backslash).
func (w *cleanWalker) escape() bool {
	if w.pos+1 >= len(w.in) {
		return false
	}
	switch w.in[w.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		w.pos += 2
		return true
	case 'u':
		if w.pos+6 > len(w.in) {
			return false
		}
		for _, h := range w.in[w.pos+2 : w.pos+6] {
			if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
				return false
			}
		}
		w.pos += 6
		return true
	}
	return false
}

func (w *cleanWalker) number() bool {
	if w.in[w.pos] == '-' {
		w.pos++
	}
	switch {
	case w.pos < len(w.in) && w.in[w.pos] == '0':
		w.pos++
	case w.digits() == 0:
		return false
	}
	if w.pos < len(w.in) && w.in[w.pos] == '.' {
		w.pos++
		if w.digits() == 0 {
			return false
		}
	}
	if w.pos < len(w.in) && (w.in[w.pos] == 'e' || w.in[w.pos] == 'E') {
		w.pos++
		if w.pos < len(w.in) && (w.in[w.pos] == '+' || w.in[w.pos] == '-') {
			w.pos++
		}
		if w.digits() == 0 {
			return false
		}
	}
	return true
}

func (w *cleanWalker) digits() int {
	start := w.pos
	for w.pos < len(w.in) && '0' <= w.in[w.pos] && w.in[w.pos] <= '9' {
		w.pos++
	}
	return w.pos - start
}

func (w *cleanWalker) array(s *shape, depth int) bool {
	w.pos++ // '['
	w.skipSpace()
	if w.pos < len(w.in) && w.in[w.pos] == ']' {
		w.pos++
		return true
	}
	elem := s.child("")
	for {
		if !w.value(elem, depth) {
			return false
		}
		w.skipSpace()
		if w.pos >= len(w.in) {
			return false
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
			w.skipSpace()
		case ']':
			w.pos++
			return true
		default:
			return false
		}
	}
}

// object reads an object whose keys must be unique and, for a struct's shape, its
// fields' json names.
func (w *cleanWalker) object(s *shape, depth int) bool {
	w.pos++ // '{'
	w.skipSpace()
	if w.pos < len(w.in) && w.in[w.pos] == '}' {
		w.pos++
		return true
	}
	var seenBuf [16][]byte
	seen := seenBuf[:0]
	for {
		if w.pos >= len(w.in) || w.in[w.pos] != '"' || len(seen) == maxCleanKeys {
			return false
		}
		key, ok := w.str(true)
		if !ok {
			return false
		}
		for _, k := range seen {
			if bytes.Equal(k, key) {
				return false
			}
		}
		seen = append(seen, key)
		var child *shape // s.child(key), without making key a string
		switch {
		case s == nil:
		case s.fields != nil:
			var known bool
			if child, known = s.fields[string(key)]; !known {
				return false
			}
		default:
			child = s.elem
		}
		w.skipSpace()
		if w.pos >= len(w.in) || w.in[w.pos] != ':' {
			return false
		}
		w.pos++
		w.skipSpace()
		if !w.value(child, depth) {
			return false
		}
		w.skipSpace()
		if w.pos >= len(w.in) {
			return false
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
			w.skipSpace()
		case '}':
			w.pos++
			return true
		default:
			return false
		}
	}
}
