package decode

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// scanner reads the few JSON shapes Decode accepts from a payload that is
// already known to be valid UTF-8. It never recurses: nested values are either
// refused where they appear or skipped by skipValue with a depth bound.
type scanner struct {
	data []byte
	pos  int
}

// maxSkipDepth bounds the nesting skipValue walks through, inside an unknown
// SenML field. Real extensions are flat; anything deeper is refused.
const maxSkipDepth = 8

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// trimSpace strips JSON whitespace from both ends.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func (s *scanner) ws() {
	for s.pos < len(s.data) && isSpace(s.data[s.pos]) {
		s.pos++
	}
}

// peek returns the next byte, or 0 at the end (0 never starts a JSON token).
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// syntax reports malformed JSON at the current position.
func (s *scanner) syntax(want string) *Error {
	if s.pos >= len(s.data) {
		return fail(ReasonInvalidJSON, "unexpected end of JSON, want %s", want)
	}
	r, _ := utf8.DecodeRune(s.data[s.pos:])
	return fail(ReasonInvalidJSON, "unexpected %q at byte %d, want %s", r, s.pos, want)
}

// expect consumes c, after optional whitespace.
func (s *scanner) expect(c byte, want string) *Error {
	s.ws()
	if s.peek() != c {
		return s.syntax(want)
	}
	s.pos++
	return nil
}

// end checks that only whitespace is left.
func (s *scanner) end() *Error {
	s.ws()
	if s.pos != len(s.data) {
		return s.syntax("end of payload")
	}
	return nil
}

// str reads a JSON string starting at the current '"' and returns its
// contents; escaped reports whether they contain escapes, in which case the
// caller must unescape them (see text) before using them as text.
func (s *scanner) str() (raw []byte, escaped bool, err *Error) {
	if s.peek() != '"' {
		return nil, false, s.syntax("a string")
	}
	s.pos++
	start := s.pos
	d := s.data
	for i := start; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return d[start:i], escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(d) {
				break
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					s.pos = i
					return nil, false, s.syntax(`four hex digits after \u`)
				}
				i += 4
			default:
				s.pos = i
				return nil, false, s.syntax("a valid escape")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.syntax("an escaped control character")
		}
	}
	s.pos = len(d)
	return nil, false, s.syntax(`closing '"'`)
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unescape decodes the contents of a JSON string that str found escaped.
// Escapes are rare in sensor payloads, so the exact but slower path of
// encoding/json is good enough. The syntax is already checked, so ok is false
// only if str and encoding/json ever disagree; the caller then rejects the
// payload instead of panicking.
func unescape(raw []byte) (out []byte, ok bool) {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(quoted, '"')
	quoted = append(quoted, raw...)
	quoted = append(quoted, '"')
	var str string
	if err := json.Unmarshal(quoted, &str); err != nil {
		return nil, false
	}
	return []byte(str), true
}

// key reads an object member name and the ':' after it, unescaped.
func (s *scanner) key() ([]byte, *Error) {
	s.ws()
	raw, esc, err := s.str()
	if err != nil {
		return nil, err
	}
	if esc {
		var ok bool
		if raw, ok = unescape(raw); !ok {
			return nil, fail(ReasonInvalidJSON, "member name %s has an invalid escape", quoteBytes(raw))
		}
	}
	if err := s.expect(':', "':' after a member name"); err != nil {
		return nil, err
	}
	s.ws()
	return raw, nil
}

// text reads a JSON string value, unescaped.
func (s *scanner) text() (string, *Error) {
	raw, esc, err := s.str()
	if err != nil {
		return "", err
	}
	if esc {
		out, ok := unescape(raw)
		if !ok {
			return "", fail(ReasonInvalidJSON, "string %s has an invalid escape", quoteBytes(raw))
		}
		return string(out), nil
	}
	return string(raw), nil
}

// number reads a JSON number (RFC 8259 grammar: no '+', no leading zeros, no
// hex, no NaN or Inf) and returns its text; ok is false, with pos unchanged,
// when no number starts here.
func (s *scanner) number() (raw []byte, ok bool) {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return nil, false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return nil, false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	raw = d[s.pos:i]
	s.pos = i
	return raw, true
}

// parseFloat converts a number that matched the JSON grammar. finite is false
// when it overflows float64 (1e400); underflow rounds to zero, as JSON
// decoders do.
func parseFloat(raw []byte) (f float64, finite bool) {
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// nonFiniteWords are the spellings of NaN and infinity that encoders emit
// (Python's json.dumps writes NaN and Infinity by default). They are not JSON,
// but naming them non_finite tells the device owner what is wrong.
var nonFiniteWords = [...]string{"nan", "inf"}

// looksNonFinite reports whether b starts with a NaN or infinity spelling,
// ignoring ASCII case and an optional sign.
func looksNonFinite(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	for _, w := range nonFiniteWords {
		if len(b) >= len(w) && equalFoldASCII(b[:len(w)], w) {
			return true
		}
	}
	return false
}

func equalFoldASCII(b []byte, lower string) bool {
	for i := range len(lower) {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// kind names the JSON type starting with c, for wrong_type details.
func kind(c byte) string {
	if c == '-' || isDigit(c) {
		return "a number"
	}
	switch c {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "not a JSON value"
}

// literal consumes true, false or null.
func (s *scanner) literal() bool {
	for _, w := range [...]string{"true", "false", "null"} {
		if len(s.data)-s.pos >= len(w) && string(s.data[s.pos:s.pos+len(w)]) == w {
			s.pos += len(w)
			return true
		}
	}
	return false
}

// skipValue consumes any JSON value, checking its syntax, nested at most
// maxSkipDepth deep. It keeps the open containers in a bit stack instead of
// recursing.
func (s *scanner) skipValue() *Error {
	var inObject uint64 // bit i set: container at depth i+1 is an object
	depth := 0
	for {
		// A value starts here.
		s.ws()
		switch c := s.peek(); {
		case c == '{' || c == '[':
			if depth == maxSkipDepth {
				return fail(ReasonSenML, "value nested deeper than %d at byte %d", maxSkipDepth, s.pos)
			}
			s.pos++
			s.ws()
			if (c == '{' && s.peek() == '}') || (c == '[' && s.peek() == ']') {
				s.pos++
				break // an empty container is a complete value
			}
			if c == '{' {
				inObject |= 1 << depth
			} else {
				inObject &^= 1 << depth
			}
			depth++
			if c == '{' {
				if _, err := s.key(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if _, _, err := s.str(); err != nil {
				return err
			}
		case c == '-' || isDigit(c):
			if _, ok := s.number(); !ok {
				return s.syntax("a number")
			}
		default:
			if !s.literal() {
				return s.syntax("a JSON value")
			}
		}
		// A value ended: close containers until one continues or none is open.
		for {
			if depth == 0 {
				return nil
			}
			obj := inObject&(1<<(depth-1)) != 0
			s.ws()
			c := s.peek()
			if c == ',' {
				s.pos++
				if obj {
					if _, err := s.key(); err != nil {
						return err
					}
				}
				break
			}
			if (obj && c == '}') || (!obj && c == ']') {
				s.pos++
				depth--
				continue
			}
			return s.syntax("',' or the end of the container")
		}
	}
}
