package secure

import "strings"

// Redacted replaces the credentials of a URL in logs and errors.
const Redacted = "***"

// RedactURLs hides the credentials of every URL in a comma-separated list
// (NATS takes several; MQTT and InfluxDB one). A password may hold any of
// '@', '#', '?', '/' and ',' unescaped (url.Parse takes the userinfo up to
// the last '@' of the authority, and a configuration error quotes the URL
// as it was given), so it errs on hiding: a new entry starts only at a
// comma followed by scheme://, and everything in an entry up to its last
// '@' goes, even an '@' that was in a path. Text that is not a URL comes
// back unchanged.
func RedactURLs(urls string) string {
	var b strings.Builder
	start := 0
	for i := 0; i <= len(urls); i++ {
		if i < len(urls) && (urls[i] != ',' || !startsURL(urls[i+1:])) {
			continue
		}
		if start > 0 {
			b.WriteByte(',')
		}
		b.WriteString(redactURL(urls[start:i]))
		start = i + 1
	}
	return b.String()
}

// redactURL hides the userinfo of one URL: everything up to its last '@'.
func redactURL(u string) string {
	u = strings.TrimSpace(u)
	prefix, rest := "", u
	if scheme, after, ok := strings.Cut(u, "://"); ok && validScheme(scheme) {
		prefix, rest = scheme+"://", after
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = Redacted + rest[at:]
	}
	return prefix + rest
}

// startsURL reports whether s, after spaces, begins with scheme://.
func startsURL(s string) bool {
	scheme, _, ok := strings.Cut(strings.TrimLeft(s, " \t"), "://")
	return ok && validScheme(scheme)
}

// validScheme: a letter, then letters, digits, '+', '-' or '.' (RFC 3986).
func validScheme(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }
