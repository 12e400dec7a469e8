// Package jsonscan reads the tokens of RFC 8259 JSON straight from the bytes, for the
// fast paths that need no decoded value: the request hash's canonical writer
// (internal/idempotency) and the key check of a clean body (internal/acp). Each fast
// path walks objects and arrays its own way and asks a Scanner for the tokens; a Scanner
// never decodes, and says no to anything it is not sure of, so that the caller can
// leave the body to encoding/json.
package jsonscan

import "unicode/utf8"

// Scanner reads In from Pos.
type Scanner struct {
	In  []byte
	Pos int
}

// StringRule says which string literals String takes.
type StringRule struct {
	// Escapes allows valid escape sequences; without it a backslash is refused, so the
	// bytes between the quotes are the string.
	Escapes bool
	// ASCII refuses every byte beyond printable ASCII; without it, valid UTF-8 is taken.
	ASCII bool
	// MarshalSafe refuses what json.Marshal would write escaped: <, >, &, U+2028, U+2029
	// (and DEL, to be safe), so that the literal is the one Marshal writes.
	MarshalSafe bool
}

// SkipSpace skips JSON whitespace.
func (s *Scanner) SkipSpace() {
	for s.Pos < len(s.In) {
		switch s.In[s.Pos] {
		case ' ', '\t', '\n', '\r':
			s.Pos++
		default:
			return
		}
	}
}

// Peek returns the byte at Pos, or false at the end.
func (s *Scanner) Peek() (byte, bool) {
	if s.Pos >= len(s.In) {
		return 0, false
	}
	return s.In[s.Pos], true
}

// Next reports whether the byte at Pos is c, and if so steps over it.
func (s *Scanner) Next(c byte) bool {
	if s.Pos < len(s.In) && s.In[s.Pos] == c {
		s.Pos++
		return true
	}
	return false
}

// End reports whether Pos is past the last byte.
func (s *Scanner) End() bool { return s.Pos >= len(s.In) }

// Literal reads true, false or null at Pos and returns it.
func (s *Scanner) Literal() (string, bool) {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.In)-s.Pos >= len(lit) && string(s.In[s.Pos:s.Pos+len(lit)]) == lit {
			s.Pos += len(lit)
			return lit, true
		}
	}
	return "", false
}

// Number reads a number at Pos and returns it as written.
func (s *Scanner) Number() ([]byte, bool) {
	start := s.Pos
	s.Next('-')
	if !s.Next('0') && s.digits() == 0 {
		return nil, false
	}
	if s.Next('.') && s.digits() == 0 {
		return nil, false
	}
	if s.Next('e') || s.Next('E') {
		if !s.Next('+') {
			s.Next('-')
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return s.In[start:s.Pos], true
}

func (s *Scanner) digits() int {
	start := s.Pos
	for s.Pos < len(s.In) && '0' <= s.In[s.Pos] && s.In[s.Pos] <= '9' {
		s.Pos++
	}
	return s.Pos - start
}

// String reads a string literal at Pos (its opening quote) that rule takes, and returns
// the bytes between its quotes.
func (s *Scanner) String(rule StringRule) ([]byte, bool) {
	if !s.Next('"') {
		return nil, false
	}
	start := s.Pos
	for s.Pos < len(s.In) {
		c := s.In[s.Pos]
		switch {
		case c == '"':
			s.Pos++
			return s.In[start : s.Pos-1], true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if !rule.Escapes || !s.escape() {
				return nil, false
			}
		case rule.MarshalSafe && (c == '<' || c == '>' || c == '&' || c == 0x7f):
			return nil, false
		case c < utf8.RuneSelf:
			s.Pos++
		default:
			r, size := utf8.DecodeRune(s.In[s.Pos:])
			if rule.ASCII || r == utf8.RuneError || rule.MarshalSafe && (r == '\u2028' || r == '\u2029') {
				return nil, false
			}
			s.Pos += size
		}
	}
	return nil, false
}

// escape reads one escape sequence at Pos (its backslash).
func (s *Scanner) escape() bool {
	if s.Pos+1 >= len(s.In) {
		return false
	}
	switch s.In[s.Pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.Pos += 2
		return true
	case 'u':
		if s.Pos+6 > len(s.In) {
			return false
		}
		for _, h := range s.In[s.Pos+2 : s.Pos+6] {
			if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
				return false
			}
		}
		s.Pos += 6
		return true
	}
	return false
}
