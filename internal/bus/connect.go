// Package bus is how the services reach NATS JetStream: one way to connect,
// the stream topology of ../shared/ARCHITECTURE.md, and dead-lettering.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is the connection configuration every service reads from the
// environment (EDGEFLOW_NATS_*).
type Config struct {
	URL string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server URL(s), comma-separated"`
	// ConnectTimeout bounds the first connection at start-up; afterwards the
	// client reconnects for ever.
	ConnectTimeout time.Duration `envconfig:"NATS_CONNECT_TIMEOUT" default:"30s" desc:"how long to wait for NATS at start-up"`
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("EDGEFLOW_NATS_URL is empty")
	}
	if c.ConnectTimeout <= 0 {
		return errors.New("EDGEFLOW_NATS_CONNECT_TIMEOUT must be positive")
	}
	return nil
}

// Connect dials NATS, retrying until cfg.ConnectTimeout or ctx ends, and
// returns a connection that reconnects for ever (services ride through a NATS
// restart instead of exiting) with JetStream on it.
func Connect(ctx context.Context, log *slog.Logger, cfg Config, name string, jsOpts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
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

// redact hides the credentials of every URL in a comma-separated list:
// nats.go accepts user:password@host, and an unescaped '@' in the password
// is legal, so everything up to the last '@' of a URL goes.
func redact(urls string) string {
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
			rest = "***@" + rest[at+1:]
		}
		if ok {
			rest = scheme + "://" + rest
		}
		parts[i] = rest
	}
	return strings.Join(parts, ",")
}
