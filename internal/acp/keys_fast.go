package acp

import (
	"bytes"

	"github.com/agentic-commerce/agentic-commerce-server/internal/jsonscan"
)

// The fast path of checkKeys. Walking a body token by token through encoding/json's
// Decoder.Token was 3% of the server's CPU in the full flow (docs/performance-history.md, "Third
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
	w := cleanWalker{s: jsonscan.Scanner{In: body}}
	w.s.SkipSpace()
	return w.value(root, 0)
}

// Strings keysClean takes: a key must be printable ASCII without escapes, so that its
// bytes are the name it decodes to; a value may hold valid escapes and UTF-8.
var (
	cleanKey   = jsonscan.StringRule{ASCII: true}
	cleanValue = jsonscan.StringRule{Escapes: true}
)

// cleanWalker is a recursive-descent reader of JSON checking keys as it goes.
type cleanWalker struct {
	s jsonscan.Scanner
}

func (w *cleanWalker) value(s *shape, depth int) bool {
	c, ok := w.s.Peek()
	switch {
	case !ok:
		return false
	case c == '{':
		return depth < maxCleanDepth && w.object(s, depth+1)
	case c == '[':
		return depth < maxCleanDepth && w.array(s, depth+1)
	case c == '"':
		_, ok := w.s.String(cleanValue)
		return ok
	case c == '-' || ('0' <= c && c <= '9'):
		_, ok := w.s.Number()
		return ok
	default:
		_, ok := w.s.Literal()
		return ok
	}
}

func (w *cleanWalker) array(s *shape, depth int) bool {
	w.s.Next('[')
	w.s.SkipSpace()
	if w.s.Next(']') {
		return true
	}
	elem := s.child("")
	for {
		if !w.value(elem, depth) {
			return false
		}
		w.s.SkipSpace()
		switch {
		case w.s.Next(','):
			w.s.SkipSpace()
		case w.s.Next(']'):
			return true
		default:
			return false
		}
	}
}

// object reads an object whose keys must be unique and, for a struct's shape, its
// fields' json names.
func (w *cleanWalker) object(s *shape, depth int) bool {
	w.s.Next('{')
	w.s.SkipSpace()
	if w.s.Next('}') {
		return true
	}
	var seenBuf [16][]byte
	seen := seenBuf[:0]
	for {
		if len(seen) == maxCleanKeys {
			return false
		}
		key, ok := w.s.String(cleanKey)
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
		w.s.SkipSpace()
		if !w.s.Next(':') {
			return false
		}
		w.s.SkipSpace()
		if !w.value(child, depth) {
			return false
		}
		w.s.SkipSpace()
		switch {
		case w.s.Next(','):
			w.s.SkipSpace()
		case w.s.Next('}'):
			return true
		default:
			return false
		}
	}
}
