package transport

import "unicode/utf8"

// Agents that report progress send a small flat object many times a minute, and decoding it with
// encoding/json (a decoder, the duplicate-key scan, reflection) took about 7% of the server's CPU
// under a stream of them. decodeFlat reads that common shape directly. It accepts only bodies
// that decodeJSON would accept and decode to the same values, and gives up on everything else:
// escapes, other number forms, nesting, keys in other letter cases, duplicates. Its caller then
// falls back to decodeJSON, which decides and words any error, so the fast path never changes
// an answer.

// flatField is one field decodeFlat may fill: either a string or an integer of at most
// maxFlatDigits digits.
type flatField struct {
	name string
	str  **string
	num  **int
}

const maxFlatDigits = 9 // any integer of up to 9 digits fits an int

// decodeFlat fills fields from body and reports whether it could. When it reports false it may
// have filled some fields: the caller resets them before decoding the body the slow way.
func decodeFlat(body []byte, fields []flatField) bool {
	if len(fields) > 64 {
		return false
	}
	s := flatScanner{b: body}
	var seen uint64
	if s.space(); !s.take('{') {
		return false
	}
	if s.space(); s.take('}') {
		return s.end()
	}
	for {
		name, ok := s.plainString()
		if !ok {
			return false
		}
		i := flatFieldIndex(fields, name)
		if i < 0 || seen&(1<<i) != 0 {
			return false
		}
		seen |= 1 << i
		if s.space(); !s.take(':') {
			return false
		}
		s.space()
		if !s.value(fields[i]) {
			return false
		}
		s.space()
		switch {
		case s.take(','):
			s.space()
		case s.take('}'):
			return s.end()
		default:
			return false
		}
	}
}

func flatFieldIndex(fields []flatField, name []byte) int {
	for i, f := range fields {
		if f.name == string(name) {
			return i
		}
	}
	return -1
}

// flatScanner reads a body from the front.
type flatScanner struct {
	b []byte
	i int
}

// space skips JSON whitespace.
func (s *flatScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *flatScanner) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *flatScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

func (s *flatScanner) value(f flatField) bool {
	if f.str != nil {
		v, ok := s.plainString()
		if !ok {
			return false
		}
		str := string(v)
		*f.str = &str
		return true
	}
	n, ok := s.smallInt()
	if !ok {
		return false
	}
	*f.num = &n
	return true
}

// plainString reads a quoted string without escapes or control characters, in valid UTF-8, and
// returns its contents.
func (s *flatScanner) plainString() ([]byte, bool) {
	if !s.take('"') {
		return nil, false
	}
	start := s.i
	ascii := true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, ascii || utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// smallInt reads a non-negative integer of at most maxFlatDigits digits, written as JSON
// writes it (no leading zero), that a delimiter follows.
func (s *flatScanner) smallInt() (int, bool) {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	digits := s.b[start:s.i]
	if len(digits) == 0 || len(digits) > maxFlatDigits || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r', ',', '}':
		default:
			return 0, false // a fraction, an exponent or anything else is decodeJSON's to judge
		}
	}
	n := 0
	for _, d := range digits {
		n = n*10 + int(d-'0')
	}
	return n, true
}

// appendPlainJSONString appends s as a JSON string if encoding/json would write it unchanged
// between quotes: printable ASCII without the characters it escapes. It reports false otherwise
// and then returns b as it was.
func appendPlainJSONString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}
