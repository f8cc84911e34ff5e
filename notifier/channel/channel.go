// Package channel delivers notifications: a generic webhook (the
// notification as JSON), a Slack-compatible incoming webhook, SMTP e-mail,
// the notifier's own log, and Prometheus Alertmanager. A Sender makes one
// attempt; retrying, with backoff and without ever dropping a notification,
// is the delivery queue's job (../deliver.go). Every channel may have a
// template for the summary it sends (Summary).
package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"text/template"
	"time"

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
	_ Sender = (*Alertmanager)(nil)
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
		return &Webhook{URL: c.URL, Client: client, Template: c.Template}, nil
	case rules.Slack:
		return &Slack{URL: c.URL, Client: client, Template: c.Template}, nil
	case rules.Email:
		return &Email{SMTP: c.SMTP, Template: c.Template}, nil
	case rules.Log:
		return &Log{Name: c.Name, Logger: log, Template: c.Template}, nil
	case rules.Alertmanager:
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		return &Alertmanager{Name: c.Name, Target: c.Alertmanager, Client: client, Template: c.Template, Log: log, Now: time.Now}, nil
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

// ErrRejected is wrapped by the error of an attempt that can never succeed
// as it is: the receiver refused the notification itself (Alertmanager
// answered 4xx, such as 400 for an alert it finds invalid). The delivery
// queue dead-letters it rather than retrying it for ever.
var ErrRejected = errors.New("rejected by the receiver")

// Summary is the summary line of n as channel c sends it: written by the
// channel's template, or the notifier's own (n.Summary) without one. A
// template that fails here (the rules loader tried it on every kind of
// notification, so it should not) or writes nothing falls back to
// n.Summary, with the error appended when there is one: a notification is
// never held back by its wording.
func Summary(t *template.Template, n alert.Notification) string {
	if t == nil {
		return n.Summary
	}
	s, err := rules.RenderTemplate(t, TemplateData(n))
	if err != nil {
		return n.Summary + " (template error: " + err.Error() + ")"
	}
	if s == "" {
		return n.Summary
	}
	return s
}

// TemplateData is what a template sees of n.
func TemplateData(n alert.Notification) rules.TemplateData {
	d := rules.TemplateData{ID: n.ID, Rule: n.Rule, Site: n.Site, Device: n.Device, State: n.State, Severity: n.Severity,
		Value: n.Value, Threshold: n.Threshold, Since: n.Since, At: n.At, Repeat: n.Repeat, Kind: n.Kind,
		Metric: n.Metric, Aggregate: n.Aggregate, Window: n.Window, Op: n.Op, Seq: n.Seq, Summary: n.Summary}
	if n.Clear != nil {
		d.Clear, d.HasClear = *n.Clear, true
	}
	return d
}

// redact drops the URL from an HTTP client error: a webhook URL is a secret
// (its path is the credential).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s webhook: %w", ue.Op, ue.Err)
	}
	return err
}
