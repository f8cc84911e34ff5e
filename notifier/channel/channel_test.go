package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/internal/smtptest"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

func notification() alert.Notification {
	since := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	clear := 35.0
	return alert.Notification{
		ID: "hot.warehouse.wh-01.2",
		Alert: reading.Alert{Rule: "hot", Site: "warehouse", Device: "wh-01", State: "firing", Severity: "critical",
			Value: 42.5, Threshold: 40, Since: since, At: since.Add(25 * time.Second),
			Summary: "[critical] hot firing: warehouse/wh-01 temperature mean over 10s is 42.5 (> 40)"},
		Kind: "threshold", Metric: "temperature", Aggregate: "mean", Window: "10s", Op: ">", Clear: &clear, Seq: 2,
	}
}

type captured struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T, status int) (*httptest.Server, chan captured) {
	got := make(chan captured, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- captured{r.Header.Clone(), body}
		w.WriteHeader(status)
		io.WriteString(w, "nope")
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestWebhook(t *testing.T) {
	srv, got := receiver(t, http.StatusNoContent)
	s, err := New(rules.Channel{Name: "ops", Type: rules.Webhook, URL: srv.URL + "/hook"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), notification()); err != nil {
		t.Fatal(err)
	}
	c := <-got
	if c.header.Get("Content-Type") != "application/json" || c.header.Get(HeaderID) != "hot.warehouse.wh-01.2" {
		t.Fatalf("headers %v", c.header)
	}
	var body map[string]any
	if err := json.Unmarshal(c.body, &body); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"id": "hot.warehouse.wh-01.2", "rule": "hot", "state": "firing", "value": 42.5,
		"threshold": 40.0, "clear": 35.0, "since": "2026-01-02T03:04:00Z", "kind": "threshold", "repeat": false} {
		if body[k] != v {
			t.Errorf("body %s = %#v, want %#v", k, body[k], v)
		}
	}
}

func TestWebhookFailuresAreErrorsWithoutTheURL(t *testing.T) {
	srv, _ := receiver(t, http.StatusInternalServerError)
	secretURL := srv.URL + "/services/T000/secret-token"
	s := &Webhook{URL: secretURL, Client: NewHTTPClient()}
	err := s.Send(t.Context(), notification())
	if !errors.Is(err, ErrStatus) || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("500: %v", err)
	}

	// Nothing listening: the error does not quote the URL (a secret).
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	s.URL = "http://" + addr + "/services/T000/secret-token"
	err = s.Send(t.Context(), notification())
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("refused connection: %v", err)
	}

	// A redirect is not followed, and not a delivery.
	redirect := httptest.NewServer(http.RedirectHandler("http://example.invalid/", http.StatusFound))
	defer redirect.Close()
	s.URL = redirect.URL
	if err := s.Send(t.Context(), notification()); !errors.Is(err, ErrStatus) {
		t.Fatalf("redirect: %v", err)
	}

	// A hanging receiver is cut by the context.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices the client leaving only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	s.URL = hang.URL
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Send(ctx, notification()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hanging receiver: %v", err)
	}
}

func TestSlack(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	s, _ := New(rules.Channel{Name: "chat", Type: rules.Slack, URL: srv.URL}, nil, nil)
	if err := s.Send(t.Context(), notification()); err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	if err := json.Unmarshal((<-got).body, &body); err != nil {
		t.Fatal(err)
	}
	want := ":rotating_light: [critical] hot firing: warehouse/wh-01 temperature mean over 10s is 42.5 (> 40) (since 2026-01-02 03:04:00Z)"
	if len(body) != 1 || body["text"] != want {
		t.Fatalf("slack body %v, want text %q", body, want)
	}
	n := notification()
	n.State = "resolved"
	if !strings.HasPrefix(SlackText(n), ":white_check_mark:") {
		t.Fatal(SlackText(n))
	}
	n.Repeat = true
	if !strings.HasPrefix(SlackText(n), ":repeat:") {
		t.Fatal(SlackText(n))
	}
}

func TestEmail(t *testing.T) {
	srv := smtptest.Start(t)
	c := rules.SMTP{Addr: srv.Addr, From: "edgeflow@example.com", To: []string{"oncall@example.com", "ops@example.com"},
		Username: "edgeflow", Password: "hunter2"}
	s, _ := New(rules.Channel{Name: "mail", Type: rules.Email, SMTP: c}, nil, nil)
	n := notification()
	n.Summary = "[critical] hot firing: température\r\nBcc: evil@example.com"
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	m := <-srv.Received
	if m.From != c.From || strings.Join(m.To, ",") != "oncall@example.com,ops@example.com" || m.User != "edgeflow" || m.Pass != "hunter2" {
		t.Fatalf("envelope %+v", m)
	}
	for _, want := range []string{
		"Subject: =?utf-8?q?", "Message-ID: <hot.warehouse.wh-01.2@edgeflow-notifier>", "To: oncall@example.com, ops@example.com",
		"Content-Type: text/plain; charset=utf-8", "Device:    warehouse/wh-01", "Since:     2026-01-02T03:04:00Z",
	} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("mail lacks %q:\n%s", want, m.Data)
		}
	}
	head, _, _ := strings.Cut(m.Data, "\n\n")
	if strings.Contains(head, "\nBcc:") {
		t.Fatalf("header injection:\n%s", head)
	}

	// A temporary failure is an error (the queue retries).
	srv.FailData(1)
	if err := s.Send(t.Context(), n); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("451: %v", err)
	}
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatalf("after the failure: %v", err)
	}

	// Required STARTTLS that the server does not offer: nothing is sent.
	c.StartTLS = true
	s = &Email{SMTP: c}
	if err := s.Send(t.Context(), n); !errors.Is(err, ErrNoStartTLS) {
		t.Fatalf("required STARTTLS: %v", err)
	}
	select {
	case m := <-srv.Received:
		if !strings.Contains(m.Data, "hot") {
			t.Fatal("unexpected mail")
		}
		select {
		case m := <-srv.Received:
			t.Fatalf("mail sent without STARTTLS: %+v", m)
		default:
		}
	default:
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	s, _ := New(rules.Channel{Name: "log", Type: rules.Log}, nil, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err := s.Send(t.Context(), notification()); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "WARN" || rec["msg"] != "alert firing" || rec["id"] != "hot.warehouse.wh-01.2" || rec["channel"] != "log" {
		t.Fatalf("log record %v", rec)
	}
}
