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
func Token() string {
	b := make([]byte, TokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
