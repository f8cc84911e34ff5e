package devenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// TestCerts are a CA and a server certificate for 127.0.0.1 and localhost,
// PEM files in one directory, made with the code scripts/secrets uses.
type TestCerts struct {
	CA, Cert, Key string // ca.crt, tls.crt, tls.key
	// ClientCert and ClientKey are a client certificate from the same CA
	// (client.crt, client.key), for servers that verify clients.
	ClientCert, ClientKey string
}

// WriteTestCerts makes TestCerts in dir, valid for a day.
func WriteTestCerts(dir string) (TestCerts, error) {
	ca, err := secure.NewCA("edgeflow devenv CA", 24*time.Hour)
	if err != nil {
		return TestCerts{}, err
	}
	cert, key, err := ca.Issue([]string{"localhost", "127.0.0.1"}, true, 24*time.Hour)
	if err != nil {
		return TestCerts{}, err
	}
	ccert, ckey, err := ca.Issue([]string{"devenv-client"}, false, 24*time.Hour)
	if err != nil {
		return TestCerts{}, err
	}
	c := TestCerts{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return TestCerts{}, err
	}
	for path, b := range map[string][]byte{c.CA: ca.CertPEM, c.Cert: cert, c.Key: key, c.ClientCert: ccert, c.ClientKey: ckey} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return TestCerts{}, err
		}
	}
	return c, nil
}

// WriteMosquittoSecurity makes the files of a secure broker in dir: a
// password file with users (name → password) and TestCerts. The ACL is the
// shipped one.
func WriteMosquittoSecurity(dir string, users map[string]string) (*MosquittoSecurity, error) {
	certs, err := WriteTestCerts(dir)
	if err != nil {
		return nil, fmt.Errorf("mosquitto security: %w", err)
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		line, err := secure.MosquittoPasswdLine(u, users[u])
		if err != nil {
			return nil, fmt.Errorf("mosquitto security: %w", err)
		}
		b.WriteString(line + "\n")
	}
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("mosquitto security: %w", err)
	}
	return &MosquittoSecurity{PasswordFile: passwd, CertFile: certs.Cert, KeyFile: certs.Key, CAFile: certs.CA}, nil
}
