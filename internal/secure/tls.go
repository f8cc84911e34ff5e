package secure

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// MinTLSVersion is the oldest TLS every edgeflow link accepts: TLS 1.0 and
// 1.1 are deprecated (RFC 8996), and every client and broker we run speaks 1.2.
const MinTLSVersion = tls.VersionTLS12

// TLSFiles are the PEM files of a TLS client and the names (environment
// variables or flags) they were configured by, which errors use.
type TLSFiles struct {
	// CA verifies the server; empty means the system's roots.
	CA string
	// Cert and Key are the client certificate, for servers that require
	// one; both or neither.
	Cert, Key string
	// ServerName overrides the name the server's certificate is checked
	// against (default: the host of the URL).
	ServerName string

	// CAName, CertName, KeyName name the settings in errors, e.g.
	// EDGEFLOW_NATS_TLS_CA; empty means "CA file", "certificate file" and
	// "key file".
	CAName, CertName, KeyName string
}

// Set reports whether any file or the server name is configured.
func (f TLSFiles) Set() bool {
	return f.CA != "" || f.Cert != "" || f.Key != "" || f.ServerName != ""
}

func (f TLSFiles) name(n, def string) string {
	if n == "" {
		return def
	}
	return n
}

// Config reads the files and returns a client configuration with TLS 1.2 as
// minimum. Errors name the setting and the path, never the files' content.
func (f TLSFiles) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinTLSVersion, ServerName: f.ServerName}
	var errs []error
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name(f.CAName, "CA file"), err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("%s=%s: no PEM certificate in the file", f.name(f.CAName, "CA file"), f.CA))
			}
			cfg.RootCAs = pool
		}
	}
	certName, keyName := f.name(f.CertName, "certificate file"), f.name(f.KeyName, "key file")
	switch {
	case f.Cert != "" && f.Key == "":
		errs = append(errs, fmt.Errorf("%s is set without %s", certName, keyName))
	case f.Key != "" && f.Cert == "":
		errs = append(errs, fmt.Errorf("%s is set without %s", keyName, certName))
	case f.Cert != "":
		if err := readable(certName, f.Cert); err != nil {
			errs = append(errs, err)
		} else if err := readable(keyName, f.Key); err != nil {
			errs = append(errs, err)
		} else if pair, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
			// crypto/tls's messages describe the problem ("private key
			// does not match public key"), not the key.
			errs = append(errs, fmt.Errorf("%s=%s and %s=%s: %w", certName, f.Cert, keyName, f.Key, err))
		} else {
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readable reports a file that cannot be read, naming the setting.
func readable(name, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return fh.Close()
}

// Readable is readable for the callers that check files of their own
// (credentials, NKey seeds): the error names the setting and the path.
func Readable(name, path string) error { return readable(name, path) }
