package reading

import "unicode/utf8"

// MaxNameLen is the longest site, device or metric name accepted.
const MaxNameLen = 64

// ValidName reports whether s matches ^[A-Za-z0-9_-]{1,64}$. Names become
// NATS subject tokens, InfluxDB tags, InfluxQL literals and HTML text, so this is
// a security boundary: nothing downstream may be built from a name that did
// not pass it.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Truncate shortens s to at most n bytes on a rune boundary and marks the cut
// with "…" (3 more bytes), for quoting untrusted input in error messages and
// dead-letter reasons.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// MaxUnitLen is the longest unit kept.
const MaxUnitLen = 16

// ValidUnit reports whether s may be carried as a metric's unit: the
// characters of SenML's units (RFC 8428 section 12.1: Cel, %RH, m/s2,
// 1/min, kg/m3) and nothing that is markup or a quote. It is shown as text
// only.
func ValidUnit(s string) bool {
	if len(s) == 0 || len(s) > MaxUnitLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '%', c == '/', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
