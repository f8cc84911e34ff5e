// Package secure holds what edgeflow's links share to be authenticated and
// encrypted: TLS client configuration from PEM files, redaction of
// credentials in URLs, random secrets, the Mosquitto password-file format and
// a small certificate authority. The services use the first two; the secrets
// generator (scripts/secrets) and the test environment (devenv) use
// the rest, so that tests run with exactly the kind of files a cluster gets.
//
// Nothing here ever puts a secret's value into an error: errors name the file
// or the variable, never what it holds.
package secure
