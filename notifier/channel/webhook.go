package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/template"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/alert"
)

// Headers of a webhook request.
const (
	// HeaderID carries the notification's ID, the same on every retry: a
	// receiver deduplicates by it (delivery is at least once).
	HeaderID   = "Edgeflow-Notification-Id"
	userAgent  = "edgeflow-notifier"
	maxReplyIn = 512 // bytes of an error reply quoted in the error
)

// Webhook POSTs the notification as JSON (alert.Notification, documented in
// docs/alerting.md as "Webhook body"). Any 2xx answer is a delivery.
type Webhook struct {
	URL      string
	Client   *http.Client
	Template *template.Template // of the summary; nil: the notifier's
}

// Send makes one attempt.
func (w *Webhook) Send(ctx context.Context, n alert.Notification) error {
	n.Summary = Summary(w.Template, n)
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notification %s: %w", n.ID, err)
	}
	return post(ctx, w.Client, w.URL, body, n.ID)
}

// Slack posts {"text": ...} to a Slack-compatible incoming webhook (Slack,
// Mattermost, Rocket.Chat, Discord's /slack endpoint).
type Slack struct {
	URL      string
	Client   *http.Client
	Template *template.Template // of the summary; nil: the notifier's
}

// Send makes one attempt.
func (s *Slack) Send(ctx context.Context, n alert.Notification) error {
	n.Summary = Summary(s.Template, n)
	body, err := json.Marshal(map[string]string{"text": SlackText(n)})
	if err != nil {
		return fmt.Errorf("encode notification %s: %w", n.ID, err)
	}
	return post(ctx, s.Client, s.URL, body, n.ID)
}

// SlackText is the message of a notification: an emoji for the state, the
// summary, and when.
func SlackText(n alert.Notification) string {
	icon := ":rotating_light:"
	switch {
	case n.Repeat:
		icon = ":repeat:"
	case n.State == "resolved":
		icon = ":white_check_mark:"
	}
	return fmt.Sprintf("%s %s (since %s)", icon, n.Summary, n.Since.UTC().Format("2006-01-02 15:04:05Z"))
}

func post(ctx context.Context, client *http.Client, url string, body []byte, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return redact(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, id)
	resp, err := client.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyIn))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s: %w: %q", resp.Status, ErrStatus,
			reading.Truncate(strings.TrimSpace(string(reply)), 200))
	}
	return nil
}
