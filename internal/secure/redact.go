package secure

import "strings"

// Redacted replaces the credentials of a URL in logs and errors.
const Redacted = "***"

// RedactURLs hides the credentials of every URL in a comma-separated list
// (NATS takes several; MQTT and InfluxDB one): nats.go and paho accept
// user:password@host, and an unescaped '@' in the password is legal (url.Parse
// takes the userinfo up to the last '@' of the authority), so everything up
// to the last '@' before the path goes. Text that is not a URL comes back
// unchanged.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(p), "://")
		if !ok {
			scheme, rest = "", strings.TrimSpace(p)
		}
		host := rest
		if slash := strings.IndexAny(rest, "/?#"); slash >= 0 {
			host = rest[:slash]
		}
		if at := strings.LastIndex(host, "@"); at >= 0 {
			rest = Redacted + "@" + rest[at+1:]
		}
		if ok {
			rest = scheme + "://" + rest
		}
		parts[i] = rest
	}
	return strings.Join(parts, ",")
}
