// Package auth stands in for github.com/containous/go-http-auth, Traefik's fork of
// github.com/abbot/go-http-auth, which the module proxy here does not serve. It has only
// what Traefik's basicAuth and digestAuth middlewares call, and it fails closed: no
// password matches and no digest is accepted, so those middlewares answer every request
// with 401 Unauthorized. The dev cluster's Traefik serves edgeflow's Ingress, which uses
// neither.
package auth

import (
	"net/http"
	"strconv"
)

// SecretProvider returns the stored secret of user in realm, or "".
type SecretProvider func(user, realm string) string

// CheckSecret reports whether password matches the stored secret: never, in this build.
func CheckSecret(password, secret string) bool { return false }

// BasicAuth is HTTP Basic authentication.
type BasicAuth struct {
	Realm   string
	Secrets SecretProvider
}

// RequireAuth answers 401 with a Basic challenge.
func (a *BasicAuth) RequireAuth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", "Basic realm="+strconv.Quote(a.Realm))
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

// DigestAuth is HTTP Digest authentication.
type DigestAuth struct {
	Realm   string
	Secrets SecretProvider
}

// NewDigestAuthenticator returns a DigestAuth for realm.
func NewDigestAuthenticator(realm string, secrets SecretProvider) *DigestAuth {
	return &DigestAuth{Realm: realm, Secrets: secrets}
}

// CheckAuth returns the authenticated user: none, in this build.
func (a *DigestAuth) CheckAuth(r *http.Request) (string, *string) { return "", nil }

// RequireAuth answers 401.
func (a *DigestAuth) RequireAuth(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

// RequireAuthStale answers 401.
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	a.RequireAuth(w, r)
}

// DigestAuthParams parses a Digest Authorization header: nothing, in this build.
func DigestAuthParams(authorization string) map[string]string { return nil }
