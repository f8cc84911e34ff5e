package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/internal/smtptest"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// The alert Alertmanager gets for each kind of notification. (The real
// Alertmanager takes it in ../alertmanager_test.go.)
func TestAlertmanagerAlert(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	target := rules.AlertmanagerTarget{URLs: []string{"http://am"}, Resend: time.Minute, Labels: map[string]string{"cluster": "edge-1"},
		DashboardURL: "https://edgeflow.example.com"}
	n := notification()
	a := AlertmanagerAlert(target, nil, n, now)
	want := map[string]string{"alertname": "hot", "rule": "hot", "site": "warehouse", "device": "wh-01", "metric": "temperature",
		"severity": "critical", "cluster": "edge-1"}
	if len(a.Labels) != len(want) {
		t.Fatalf("labels %v, want %v", a.Labels, want)
	}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if a.Annotations["summary"] != n.Summary || a.Annotations["value"] != "42.5" || a.Annotations["threshold"] != "40" ||
		a.Annotations["description"] != "" {
		t.Fatalf("annotations %v", a.Annotations)
	}
	// Firing: from the start of the condition, valid for 4 re-sends.
	if !a.StartsAt.Equal(n.Since) || !a.EndsAt.Equal(now.Add(4*time.Minute)) ||
		a.GeneratorURL != "https://edgeflow.example.com/#/device/warehouse/wh-01" {
		t.Fatalf("firing: starts %v ends %v generator %q", a.StartsAt, a.EndsAt, a.GeneratorURL)
	}
	// A device clock ahead of ours does not start the alert in the future.
	n.Since = now.Add(time.Hour)
	if a := AlertmanagerAlert(target, nil, n, now); !a.StartsAt.Equal(now) {
		t.Fatalf("since in the future: starts %v", a.StartsAt)
	}
	// Without re-sends Alertmanager's resolve_timeout decides.
	if a := AlertmanagerAlert(rules.AlertmanagerTarget{}, nil, notification(), now); !a.EndsAt.IsZero() {
		t.Fatalf("resend 0: ends %v", a.EndsAt)
	}
	// Resolved: ends when the notifier resolved it.
	n = notification()
	n.State, n.Value = "resolved", 30
	a = AlertmanagerAlert(target, nil, n, now)
	if !a.EndsAt.Equal(n.At) || !a.StartsAt.Equal(n.At) || a.Labels["severity"] != "critical" {
		t.Fatalf("resolved: starts %v ends %v labels %v", a.StartsAt, a.EndsAt, a.Labels)
	}
	// An offline alert has no metric label; a template writes the summary
	// and the notifier's line becomes the description.
	tm, err := rules.ParseTemplate("am", "{{.Device}} quiet for {{num .Value}}s")
	if err != nil {
		t.Fatal(err)
	}
	n = notification()
	n.Kind, n.Metric, n.Value, n.Summary = "offline", "", 31.456, "[warning] gone firing: ..."
	a = AlertmanagerAlert(target, tm, n, now)
	if _, ok := a.Labels["metric"]; ok || a.Annotations["summary"] != "wh-01 quiet for 31.46s" || a.Annotations["description"] != n.Summary {
		t.Fatalf("offline with a template: labels %v annotations %v", a.Labels, a.Annotations)
	}
}

type amStub struct {
	srv      *httptest.Server
	status   atomic.Int64
	attempts atomic.Int64
	got      chan *http.Request
	bodies   chan []byte
}

func newAMStub(t *testing.T, status int) *amStub {
	s := &amStub{got: make(chan *http.Request, 10), bodies: make(chan []byte, 10)}
	s.status.Store(int64(status))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.attempts.Add(1)
		s.got <- r
		s.bodies <- b
		w.WriteHeader(int(s.status.Load()))
		io.WriteString(w, `{"code":400,"message":"start time must be before end time"}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func TestAlertmanagerSend(t *testing.T) {
	am := newAMStub(t, http.StatusOK)
	var logs bytes.Buffer
	c := rules.Channel{Name: "am", Type: rules.Alertmanager, Alertmanager: rules.AlertmanagerTarget{URLs: []string{am.srv.URL + "/prefix"}, Resend: time.Minute}}
	s, err := New(c, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), notification()); err != nil {
		t.Fatal(err)
	}
	r, body := <-am.got, <-am.bodies
	if r.URL.Path != "/prefix/api/v2/alerts" || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("Authorization") != "" {
		t.Fatalf("request %s %s %v", r.Method, r.URL, r.Header)
	}
	var alerts []map[string]any
	if err := json.Unmarshal(body, &alerts); err != nil || len(alerts) != 1 {
		t.Fatalf("body %s: %v", body, err)
	}
	for _, k := range []string{"labels", "annotations", "startsAt", "endsAt"} {
		if _, ok := alerts[0][k]; !ok {
			t.Errorf("alert without %s: %s", k, body)
		}
	}
	if _, ok := alerts[0]["generatorURL"]; ok {
		t.Errorf("generatorURL without dashboard_url: %s", body)
	}

	// 4xx: the alert itself is refused; retrying would not help.
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity} {
		am.status.Store(int64(status))
		err := s.Send(t.Context(), notification())
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "start time must be") {
			t.Errorf("%d: %v, want ErrRejected with the reply", status, err)
		}
		<-am.got
		<-am.bodies
	}
	// 5xx, 429 and no answer are worth retrying.
	for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		am.status.Store(int64(status))
		if err := s.Send(t.Context(), notification()); err == nil || errors.Is(err, ErrRejected) {
			t.Errorf("%d: %v, want a retryable error", status, err)
		}
		<-am.got
		<-am.bodies
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	ln.Close()
	c.Alertmanager.URLs = []string{down}
	s, _ = New(c, nil, nil)
	if err := s.Send(t.Context(), notification()); err == nil || errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), down) {
		t.Fatalf("down: %v", err)
	}

	// An HA pair: one that took the alert is a delivery; the other is logged.
	am.status.Store(http.StatusOK)
	c.Alertmanager.URLs = []string{down, am.srv.URL}
	s, _ = New(c, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.Send(t.Context(), notification()); err != nil {
		t.Fatalf("one of two up: %v", err)
	}
	<-am.got
	<-am.bodies
	if !strings.Contains(logs.String(), down) {
		t.Fatalf("the failed one is not logged: %s", logs.String())
	}
	// One refusing, one down: retried (the one down may take it later).
	am.status.Store(http.StatusBadRequest)
	if err := s.Send(t.Context(), notification()); err == nil || errors.Is(err, ErrRejected) {
		t.Fatalf("one refusing, one down: %v", err)
	}
}

func TestAlertmanagerAuthorization(t *testing.T) {
	am := newAMStub(t, http.StatusOK)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := rules.AlertmanagerTarget{URLs: []string{am.srv.URL}, BearerToken: rules.Secret{File: token}}
	s, _ := New(rules.Channel{Name: "am", Type: rules.Alertmanager, Alertmanager: target}, nil, nil)
	send := func() string {
		t.Helper()
		if err := s.Send(t.Context(), notification()); err != nil {
			t.Fatal(err)
		}
		<-am.bodies
		return (<-am.got).Header.Get("Authorization")
	}
	if got := send(); got != "Bearer tok-1" {
		t.Fatalf("Authorization %q", got)
	}
	// The file is read at every attempt: a rotated token applies at once.
	if err := os.WriteFile(token, []byte("tok-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := send(); got != "Bearer tok-2" {
		t.Fatalf("after rotation: Authorization %q", got)
	}
	// A token file gone is an error (retried), quoting neither token.
	os.Remove(token)
	if err := s.Send(t.Context(), notification()); err == nil || strings.Contains(err.Error(), "tok-") {
		t.Fatalf("token gone: %v", err)
	}
	target = rules.AlertmanagerTarget{URLs: []string{am.srv.URL}, Username: "edgeflow", Password: rules.Secret{Value: "hunter2"}}
	s, _ = New(rules.Channel{Name: "am", Type: rules.Alertmanager, Alertmanager: target}, nil, nil)
	if got := send(); got != "Basic ZWRnZWZsb3c6aHVudGVyMg==" {
		t.Fatalf("basic: Authorization %q", got)
	}
}

// Every channel writes its summary with its template, and the notifier's
// own line without one.
func TestTemplateInEveryChannel(t *testing.T) {
	tm, err := rules.ParseTemplate("t", `{{upper .State}} {{.Site}}/{{.Device}} {{.Metric}}={{num .Value}}`)
	if err != nil {
		t.Fatal(err)
	}
	const want = "FIRING warehouse/wh-01 temperature=42.5"
	n := notification()

	hook, got := receiver(t, http.StatusOK)
	s, _ := New(rules.Channel{Name: "ops", Type: rules.Webhook, URL: hook.URL, Template: tm}, nil, nil)
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	var body alert.Notification
	if err := json.Unmarshal((<-got).body, &body); err != nil || body.Summary != want || body.Value != 42.5 {
		t.Fatalf("webhook body %+v, %v", body, err)
	}

	s, _ = New(rules.Channel{Name: "chat", Type: rules.Slack, URL: hook.URL, Template: tm}, nil, nil)
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	var slack map[string]string
	if err := json.Unmarshal((<-got).body, &slack); err != nil || slack["text"] != ":rotating_light: "+want+" (since 2026-01-02 03:04:00Z)" {
		t.Fatalf("slack %v, %v", slack, err)
	}

	mail := smtptest.Start(t)
	s, _ = New(rules.Channel{Name: "mail", Type: rules.Email, Template: tm,
		SMTP: rules.SMTP{Addr: mail.Addr, From: "a@example.com", To: []string{"b@example.com"}}}, nil, nil)
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if m := <-mail.Received; !strings.Contains(m.Data, "Subject: "+want+"\n") && !strings.Contains(m.Data, "Subject: =?utf-8?q?"+strings.ReplaceAll(want, " ", "_")) {
		t.Fatalf("mail:\n%s", m.Data)
	}

	var buf bytes.Buffer
	s, _ = New(rules.Channel{Name: "log", Type: rules.Log, Template: tm}, nil, slog.New(slog.NewJSONHandler(&buf, nil)))
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["summary"] != want {
		t.Fatalf("log %v, %v", rec, err)
	}

	am := newAMStub(t, http.StatusOK)
	s, _ = New(rules.Channel{Name: "am", Type: rules.Alertmanager, Template: tm,
		Alertmanager: rules.AlertmanagerTarget{URLs: []string{am.srv.URL}}}, nil, nil)
	if err := s.Send(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	<-am.got
	var alerts []PostableAlert
	if err := json.Unmarshal(<-am.bodies, &alerts); err != nil || alerts[0].Annotations["summary"] != want ||
		alerts[0].Annotations["description"] != n.Summary {
		t.Fatalf("alertmanager %+v, %v", alerts, err)
	}

	// Without a template, or with one that writes nothing for this
	// notification, the summary is the notifier's.
	if got := Summary(nil, n); got != n.Summary {
		t.Fatalf("no template: %q", got)
	}
	quiet, _ := rules.ParseTemplate("q", `{{if .Repeat}}again{{end}}`)
	if got := Summary(quiet, n); got != n.Summary {
		t.Fatalf("empty output: %q", got)
	}
}
