// Package bus is how the services reach NATS JetStream: one way to connect,
// the stream topology of docs/architecture.md, and dead-lettering.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// Config is the connection configuration every service reads from the
// environment (EDGEFLOW_NATS_*).
type Config struct {
	URL string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server URL(s), comma-separated"`
	// ConnectTimeout bounds the first connection at start-up; afterwards the
	// client reconnects for ever.
	ConnectTimeout time.Duration `envconfig:"NATS_CONNECT_TIMEOUT" default:"30s" desc:"how long to wait for NATS at start-up"`

	// One way to authenticate, or none (task up: no auth on loopback).
	User     string `envconfig:"NATS_USER" desc:"NATS user (with EDGEFLOW_NATS_PASSWORD; K3s: the service's name, see manifests/base/nats/auth.conf); replies then arrive on _INBOX_<user>.>"`
	Password string `envconfig:"NATS_PASSWORD" desc:"NATS password (from a Secret; never logged)"`
	Creds    string `envconfig:"NATS_CREDS" desc:"NATS credentials file (JWT and NKey seed), instead of user and password"`
	NKey     string `envconfig:"NATS_NKEY" desc:"file holding an NKey seed (SU…), instead of user and password"`

	// TLS is on when the URL is tls:// or any of these is set.
	TLSCA   string `envconfig:"NATS_TLS_CA" desc:"CA certificate (PEM) that verifies the NATS server; setting it turns TLS on (TLS 1.2 minimum)"`
	TLSCert string `envconfig:"NATS_TLS_CERT" desc:"client certificate (PEM) for servers that verify clients (with EDGEFLOW_NATS_TLS_KEY)"`
	TLSKey  string `envconfig:"NATS_TLS_KEY" desc:"the client certificate's private key (PEM)"`
}

// Validate reports every configuration that cannot work, naming the
// variables and never a secret's value.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("EDGEFLOW_NATS_URL is empty"))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, errors.New("EDGEFLOW_NATS_CONNECT_TIMEOUT must be positive"))
	}
	if c.User != "" && !reading.ValidName(c.User) {
		// It becomes the inbox prefix, a subject token.
		errs = append(errs, fmt.Errorf("EDGEFLOW_NATS_USER=%q: must be 1..64 of [A-Za-z0-9_-]", c.User))
	}
	switch {
	case c.User != "" && c.Password == "":
		errs = append(errs, errors.New("EDGEFLOW_NATS_USER is set without EDGEFLOW_NATS_PASSWORD"))
	case c.Password != "" && c.User == "":
		errs = append(errs, errors.New("EDGEFLOW_NATS_PASSWORD is set without EDGEFLOW_NATS_USER"))
	}
	methods := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Creds != "", c.NKey != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		errs = append(errs, errors.New("set one of EDGEFLOW_NATS_USER/_PASSWORD, EDGEFLOW_NATS_CREDS and EDGEFLOW_NATS_NKEY, not several"))
	}
	if c.Creds != "" {
		if err := secure.Readable("EDGEFLOW_NATS_CREDS", c.Creds); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NKey != "" {
		if _, err := nats.NkeyOptionFromSeed(c.NKey); err != nil {
			// nats.go's message says what is wrong with the file (no seed
			// found, not a user seed), never the seed.
			errs = append(errs, fmt.Errorf("EDGEFLOW_NATS_NKEY=%s: %w", c.NKey, err))
		}
	}
	if _, err := c.tls().Config(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// InboxPrefix is where a user's replies arrive: its own prefix, so that the
// permissions (manifests/base/nats/auth.conf) let each service subscribe to
// its replies only, not to every _INBOX.> reply of the others (JetStream
// delivers fetched messages and key-value reads to the requester's inbox).
func InboxPrefix(user string) string { return "_INBOX_" + user }

// tls are the TLS files, named by their variables.
func (c Config) tls() secure.TLSFiles {
	return secure.TLSFiles{CA: c.TLSCA, Cert: c.TLSCert, Key: c.TLSKey,
		CAName: "EDGEFLOW_NATS_TLS_CA", CertName: "EDGEFLOW_NATS_TLS_CERT", KeyName: "EDGEFLOW_NATS_TLS_KEY"}
}

// authOptions are the nats.go options of the configured authentication and
// TLS. Validate has checked the files; they are read again here, so a
// rotated Secret is picked up by a restart.
func (c Config) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password), nats.CustomInboxPrefix(InboxPrefix(c.User)))
	case c.Creds != "":
		// Read on every (re)connect by nats.go.
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("EDGEFLOW_NATS_NKEY=%s: %w", c.NKey, err)
		}
		opts = append(opts, o)
	}
	if files := c.tls(); files.Set() {
		tc, err := files.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// Connect dials NATS, retrying until cfg.ConnectTimeout or ctx ends, and
// returns a connection that reconnects for ever (services ride through a NATS
// restart instead of exiting) with JetStream on it.
func Connect(ctx context.Context, log *slog.Logger, cfg Config, name string, jsOpts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	auth, err := cfg.authOptions()
	if err != nil {
		return nil, nil, err
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectBufSize(-1), // no silent client-side buffering: publishes fail fast while disconnected
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	opts = append(opts, auth...)
	deadline, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var lastErr error
	for {
		nc, err := nats.Connect(cfg.URL, opts...)
		if err == nil {
			js, err := jetstream.New(nc, jsOpts...)
			if err != nil {
				nc.Close()
				return nil, nil, fmt.Errorf("jetstream: %w", err)
			}
			return nc, js, nil
		}
		lastErr = err
		select {
		case <-deadline.Done():
			return nil, nil, fmt.Errorf("connect to NATS at %s: %w", redact(cfg.URL), lastErr)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Ready is a readiness check for a connection.
func Ready(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	}
}

// redact hides the credentials of every URL in a comma-separated list (see
// secure.RedactURLs).
func redact(urls string) string { return secure.RedactURLs(urls) }
