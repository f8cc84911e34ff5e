package secure

import (
	"crypto/rand"
	"encoding/base64"
)

// TokenBytes is the entropy of a generated secret: 256 bits, which no
// guessing attack gets near, as 43 URL-safe characters.
const TokenBytes = 32

// Token returns a random secret from crypto/rand, base64url without padding:
// safe in URLs, environment variables, Kubernetes Secrets and configuration
// files without quoting (no '$', '/', '+', '=', ':' or '@').
//
// It starts with a letter: nats-server reads a $VARIABLE of its
// configuration from the environment as a configuration value, so a
// password starting with a digit or '-' would be parsed as a number and the
// server would refuse to start (manifests/base/nats/auth.conf). Drawing again
// until the first character is a letter costs under a bit of the 256.
func Token() string {
	b := make([]byte, TokenBytes)
	for {
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
		s := base64.RawURLEncoding.EncodeToString(b)
		if c := s[0]; c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			return s
		}
	}
}
