// Package channel delivers notifications: a generic webhook (the
// notification as JSON), a Slack-compatible incoming webhook, SMTP e-mail,
// and the notifier's own log. A Sender makes one attempt; retrying, with
// backoff and without ever dropping a notification, is the delivery queue's
// job (../deliver.go).
package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// Sender makes one attempt to deliver a notification. An error means the
// attempt failed and may be retried; the error never contains a secret.
type Sender interface {
	Send(ctx context.Context, n alert.Notification) error
}

// Compile-time checks that every channel is a Sender.
var (
	_ Sender = (*Webhook)(nil)
	_ Sender = (*Slack)(nil)
	_ Sender = (*Email)(nil)
	_ Sender = (*Log)(nil)
)

// New returns the Sender of a validated channel. client is used by the
// HTTP channels (nil: a client that does not follow redirects); log by the
// log channel.
func New(c rules.Channel, client *http.Client, log *slog.Logger) (Sender, error) {
	if client == nil {
		client = NewHTTPClient()
	}
	switch c.Type {
	case rules.Webhook:
		return &Webhook{URL: c.URL, Client: client}, nil
	case rules.Slack:
		return &Slack{URL: c.URL, Client: client}, nil
	case rules.Email:
		return &Email{SMTP: c.SMTP}, nil
	case rules.Log:
		return &Log{Name: c.Name, Logger: log}, nil
	}
	return nil, fmt.Errorf("channel %s: unknown type %q", c.Name, c.Type)
}

// NewHTTPClient returns the client of the HTTP channels. It does not follow
// redirects: a webhook that moved is a configuration error to see, and a
// POST turned into a GET by a redirect would look delivered.
func NewHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ErrStatus is wrapped by the error of a webhook that answered with a
// status other than 2xx.
var ErrStatus = errors.New("unexpected HTTP status")

// redact drops the URL from an HTTP client error: a webhook URL is a secret
// (its path is the credential).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s webhook: %w", ue.Op, ue.Err)
	}
	return err
}
