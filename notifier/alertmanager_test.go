package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/notifier/alert"
)

// The alertmanager channel against the real Alertmanager 0.35.0
// (scripts/install-alertmanager.sh builds it into .bin; devenv starts it
// on its own loopback port). Each test has its own Alertmanager, whose one
// receiver is a webhook here (amReceiver): what Alertmanager would send
// its users' receivers.

// amRules fire hot for warehouse/wh-* above 40 and resolve below 35, to
// Alertmanager ({am}: its URL; {resend}) and to the test's webhook.
const amRules = `
channels:
  am:
    type: alertmanager
    url: {am}
    resend: {resend}
    labels: {cluster: test}
    dashboard_url: http://edgeflow.example
    retry_initial: 100ms
    retry_max: 500ms
  hook:
    type: webhook
    url_env: {hook}
rules:
  - name: hot
    site: warehouse
    device: "wh-*"
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    clear: 35
    severity: critical
    channels: [am, hook]
`

func (e *env) writeAMRules(amURL, resend string) {
	e.t.Helper()
	e.writeRules(strings.NewReplacer("{am}", amURL, "{resend}", resend).Replace(amRules))
}

// gettableAlert is an alert of Alertmanager's GET /api/v2/alerts.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// amNotification is what Alertmanager's webhook receiver posts.
type amNotification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

// amReceiver records what Alertmanager notifies.
type amReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []amNotification
}

func (r *amReceiver) notifications() []amNotification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// notified reports whether Alertmanager notified status for device.
func (r *amReceiver) notified(device, status string) bool {
	for _, n := range r.notifications() {
		for _, a := range n.Alerts {
			if a.Labels["device"] == device && a.Status == status {
				return true
			}
		}
	}
	return false
}

// startAlertmanager starts this test's Alertmanager, which notifies its
// receiver.
func startAlertmanager(t *testing.T, resolveTimeout time.Duration) (*devenv.Process, *amReceiver) {
	t.Helper()
	_, err := devenv.AlertmanagerBinary()
	devenv.RequireInstalled(t, err)
	rcv := &amReceiver{}
	rcv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var n amNotification
		if err := json.NewDecoder(req.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		rcv.got = append(rcv.got, n)
		rcv.mu.Unlock()
	}))
	t.Cleanup(rcv.srv.Close)
	p, err := devenv.StartAlertmanager(t.Context(), devenv.AlertmanagerOptions{Dir: filepath.Join(t.TempDir(), "alertmanager"),
		ResolveTimeout: resolveTimeout, WebhookURL: rcv.srv.URL + "/alertmanager"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := p.Log(); err == nil {
				t.Logf("alertmanager log:\n%s", tail(log, 3000))
			}
		}
		_ = p.Stop(context.Background())
	})
	return p, rcv
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// amAlerts lists Alertmanager's alerts (active, silenced and inhibited; it
// never lists resolved ones).
func amAlerts(t *testing.T, am *devenv.Process) []gettableAlert {
	t.Helper()
	var out []gettableAlert
	getJSON(t, am.URL+"/api/v2/alerts", &out)
	return out
}

// amAlert returns the alert of one device, if Alertmanager lists it.
func amAlert(t *testing.T, am *devenv.Process, device string) (gettableAlert, bool) {
	t.Helper()
	for _, a := range amAlerts(t, am) {
		if a.Labels["device"] == device {
			return a, true
		}
	}
	return gettableAlert{}, false
}

// amCounter reads one of Alertmanager's own counters.
func amCounter(t *testing.T, am *devenv.Process, sample string) float64 {
	t.Helper()
	resp, err := http.Get(am.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// (a) A firing edgeflow alert is in Alertmanager with its labels and
// annotations, and Alertmanager notifies it; resolving sends endsAt, and
// Alertmanager ends it and notifies the resolution.
func TestAlertmanagerFiresAndResolves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	am, rcv := startAlertmanager(t, 5*time.Minute)
	e.writeAMRules(am.URL, "1m")
	e.start("a")
	base := time.Now().Add(-5 * time.Minute).Truncate(10 * time.Second)
	e.window("warehouse", "wh-01", "10s", base, map[string]float64{"temperature": 41.25})
	fired := time.Now()

	var a gettableAlert
	eventually(t, 10*time.Second, "the alert in Alertmanager", func() bool {
		var ok bool
		a, ok = amAlert(t, am, "wh-01")
		return ok
	})
	wantLabels := map[string]string{"alertname": "hot", "rule": "hot", "site": "warehouse", "device": "wh-01",
		"metric": "temperature", "severity": "critical", "cluster": "test"}
	if !mapsEqual(a.Labels, wantLabels) {
		t.Errorf("labels %v\nwant   %v", a.Labels, wantLabels)
	}
	wantSummary := "[critical] hot firing: warehouse/wh-01 temperature mean over 10s is 41.25 (> 40)"
	if a.Annotations["summary"] != wantSummary || a.Annotations["value"] != "41.25" || a.Annotations["threshold"] != "40" {
		t.Errorf("annotations %v", a.Annotations)
	}
	if a.Status.State != "active" || !a.StartsAt.Equal(base) || a.GeneratorURL != "http://edgeflow.example/#/device/warehouse/wh-01" {
		t.Errorf("status %q, startsAt %v (want %v), generatorURL %q", a.Status.State, a.StartsAt, base, a.GeneratorURL)
	}
	// Valid for 4 re-sends of 1m, not Alertmanager's resolve_timeout.
	if d := a.EndsAt.Sub(fired); d < 3*time.Minute+50*time.Second || d > 4*time.Minute+10*time.Second {
		t.Errorf("endsAt %v: %v after firing, want about 4m", a.EndsAt, d)
	}
	eventually(t, 10*time.Second, "Alertmanager notifies its receiver", func() bool { return rcv.notified("wh-01", "firing") })

	// Resolve: Alertmanager no longer lists it, and notifies the
	// resolution with endsAt.
	e.window("warehouse", "wh-01", "10s", base.Add(10*time.Second), map[string]float64{"temperature": 30})
	eventually(t, 10*time.Second, "the alert leaves Alertmanager's active alerts", func() bool {
		_, ok := amAlert(t, am, "wh-01")
		return !ok
	})
	resolvedBy := time.Now()
	eventually(t, 10*time.Second, "Alertmanager notifies the resolution", func() bool { return rcv.notified("wh-01", "resolved") })
	for _, n := range rcv.notifications() {
		for _, a := range n.Alerts {
			if a.Status == "resolved" && (a.EndsAt.Before(fired) || a.EndsAt.After(resolvedBy) || !a.StartsAt.Equal(base)) {
				t.Errorf("resolved alert starts %v ends %v; want the start %v kept and an end between %v and %v",
					a.StartsAt, a.EndsAt, base, fired, resolvedBy)
			}
		}
	}
	// The webhook channel got its two notifications as before.
	if got := e.hook.waitFor(t, 2, 10*time.Second); got[0].State != "firing" || got[1].State != "resolved" {
		t.Fatalf("webhook got %+v", got)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// (b) A silence created through Alertmanager's API for one rule and device
// suppresses that firing edgeflow alert: Alertmanager lists it as
// suppressed, silenced by that silence, and notifies nobody of it, while
// another device's alert of the same rule goes out. Expiring the silence
// lets it through.
func TestAlertmanagerSilence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	am, rcv := startAlertmanager(t, 5*time.Minute)
	e.writeAMRules(am.URL, "1m")
	e.start("a")

	silence := map[string]any{
		"matchers": []map[string]any{
			{"name": "rule", "value": "hot", "isRegex": false, "isEqual": true},
			{"name": "device", "value": "wh-01", "isRegex": false, "isEqual": true},
		},
		"startsAt":  time.Now().UTC().Format(time.RFC3339),
		"endsAt":    time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"createdBy": "edgeflow test",
		"comment":   "maintenance of wh-01",
	}
	body, _ := json.Marshal(silence)
	resp, err := http.Post(am.URL+"/api/v2/silences", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || created.SilenceID == "" {
		t.Fatalf("create silence: %s, %v", resp.Status, err)
	}

	base := time.Now().Add(-5 * time.Minute).Truncate(10 * time.Second)
	e.window("warehouse", "wh-01", "10s", base, map[string]float64{"temperature": 45})
	e.window("warehouse", "wh-02", "10s", base, map[string]float64{"temperature": 45})
	eventually(t, 10*time.Second, "wh-01 suppressed by the silence, wh-02 active", func() bool {
		silenced, ok1 := amAlert(t, am, "wh-01")
		active, ok2 := amAlert(t, am, "wh-02")
		return ok1 && ok2 && silenced.Status.State == "suppressed" && slices.Equal(silenced.Status.SilencedBy, []string{created.SilenceID}) &&
			active.Status.State == "active" && len(active.Status.SilencedBy) == 0
	})
	eventually(t, 10*time.Second, "wh-02 notified", func() bool { return rcv.notified("wh-02", "firing") })
	time.Sleep(2 * time.Second) // a group_interval and more: wh-01 would be notified by now
	if rcv.notified("wh-01", "firing") {
		t.Fatal("Alertmanager notified the silenced alert")
	}
	// The notifier delivered to Alertmanager all the same: silencing is
	// Alertmanager's business.
	if rec, ok := e.state("hot", "warehouse", "wh-01"); !ok || rec.Phase != alert.Firing {
		t.Fatalf("edgeflow's alert %+v", rec)
	}

	req, _ := http.NewRequest(http.MethodDelete, am.URL+"/api/v2/silence/"+created.SilenceID, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 10*time.Second, "wh-01 notified once the silence expired", func() bool { return rcv.notified("wh-01", "firing") })
}

// (c) Alertmanager forgets an alert that is not sent again: this one says
// it holds for 4 re-sends (8 s here), and Alertmanager's resolve_timeout
// is 2 s. Re-sent every 2 s while it fires, by one replica at a time
// though two run, and from the alert's record, so a restarted replica
// carries on, it stays active far past both; when no replica is left,
// Alertmanager ends it by itself.
func TestAlertmanagerResendKeepsAlertActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	am, _ := startAlertmanager(t, 2*time.Second)
	const every = 2 * time.Second
	e.writeAMRules(am.URL, every.String())
	a, b := e.start("a"), e.start("b")
	base := time.Now().Add(-5 * time.Minute).Truncate(10 * time.Second)
	e.window("warehouse", "wh-01", "10s", base, map[string]float64{"temperature": 45})
	eventually(t, 10*time.Second, "the alert in Alertmanager", func() bool {
		_, ok := amAlert(t, am, "wh-01")
		return ok
	})
	received := func() float64 {
		return amCounter(t, am, `alertmanager_alerts_received_total{status="firing",version="v2"}`)
	}
	began, before := time.Now(), received()
	// stays watches the alert for d: it must be listed active throughout.
	stays := func(d time.Duration, what string) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if got, ok := amAlert(t, am, "wh-01"); !ok || got.Status.State != "active" {
				t.Fatalf("%s: the alert left Alertmanager (listed %v, %+v)", what, ok, got)
			}
		}
	}
	stays(14*time.Second, "two replicas")
	elapsed := time.Since(began).Seconds() / every.Seconds() // intervals
	resends := a.metric(t, "edgeflow_notifier_resends_total") + b.metric(t, "edgeflow_notifier_resends_total")
	posted := received() - before
	t.Logf("in %.1f intervals: %v re-sends queued (a %v, b %v), Alertmanager received %v", elapsed, resends,
		a.metric(t, "edgeflow_notifier_resends_total"), b.metric(t, "edgeflow_notifier_resends_total"), posted)
	// One re-send an interval for the pair, not one each.
	if resends < elapsed/2 || resends > elapsed+1 || posted > elapsed+2 {
		t.Fatalf("%v re-sends queued, %v received in %.1f intervals: want about one an interval in all", resends, posted, elapsed)
	}
	if rec, ok := e.state("hot", "warehouse", "wh-01"); !ok || time.Since(rec.Resent) > 2*every || rec.Seq != 1 {
		t.Fatalf("record %+v: want a recent re-send, seq unchanged", rec)
	}

	// A replica that restarts (a new one, with only the bucket to go by)
	// carries on.
	a.stop(t)
	b.stop(t)
	e.start("c")
	stays(10*time.Second, "after a restart")

	// With no replica left, the alert ends in Alertmanager when its last
	// send said it would (8 s), where resolve_timeout would not apply.
	for _, r := range e.replicas {
		r.stop(t)
	}
	stopped := time.Now()
	eventually(t, 15*time.Second, "the alert ends in Alertmanager without re-sends", func() bool {
		_, ok := amAlert(t, am, "wh-01")
		return !ok
	})
	t.Logf("ended %s after the last replica stopped", time.Since(stopped).Round(100*time.Millisecond))
}

// (d) An alert that Alertmanager refuses (4xx: here a wrong path prefix, as
// a mistyped url would have) is dead-lettered, counted and logged once,
// not retried for ever; one it cannot reach (down) is retried with the
// channel's backoff and arrives once it is back.
func TestAlertmanagerRefusalIsNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := bus.Ensure(t.Context(), e.js, e.streams.DeadLetter()); err != nil {
		t.Fatal(err)
	}
	am, _ := startAlertmanager(t, 5*time.Minute)
	e.writeAMRules(am.URL+"/no-such-prefix", "0")
	r := e.start("a")
	rejected := `edgeflow_notifier_deliveries_total{channel="am",result="rejected"}`
	failed := `edgeflow_notifier_deliveries_total{channel="am",result="failed"}`

	base := time.Now().Add(-5 * time.Minute).Truncate(10 * time.Second)
	e.window("warehouse", "wh-01", "10s", base, map[string]float64{"temperature": 45})
	e.hook.waitFor(t, 1, 10*time.Second) // the other channel is not held up
	eventually(t, 10*time.Second, "the refusal counted", func() bool { return r.metric(t, rejected) == 1 })
	cons, err := e.js.OrderedConsumer(t.Context(), bus.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var n alert.Notification
	if err := json.Unmarshal(m.Data(), &n); err != nil || m.Headers().Get(bus.HeaderReason) != "rejected_notification" ||
		!strings.Contains(m.Headers().Get(bus.HeaderDetail), "404") || n.ID != "hot.warehouse.wh-01.1" || m.Subject() != "deadletter.notifier" {
		t.Fatalf("dead letter %s %v: %s", m.Subject(), m.Headers(), m.Data())
	}
	time.Sleep(3 * time.Second) // retries would be every 100-500 ms
	if got, f := r.metric(t, rejected), r.metric(t, failed); got != 1 || f != 0 {
		t.Fatalf("after 3 s: %v refused, %v failed attempts; want 1 and 0", got, f)
	}
	eventually(t, 5*time.Second, "the queue empty", func() bool {
		return r.metric(t, `edgeflow_notifier_deliveries_queued{channel="am"}`) == 0
	})

	// Alertmanager down: connection refused is retried until it is back.
	e.writeAMRules(am.URL, "0")
	if err := am.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the new rules are in effect (polled every 100 ms)
	e.window("warehouse", "wh-02", "10s", base, map[string]float64{"temperature": 45})
	eventually(t, 10*time.Second, "failed attempts", func() bool { return r.metric(t, failed) >= 2 })
	if err := am.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the alert in Alertmanager once it is back", func() bool {
		_, ok := amAlert(t, am, "wh-02")
		return ok
	})
	if got := r.metric(t, rejected); got != 1 {
		t.Fatalf("%v refused, want 1", got)
	}
}

// Which alertmanager notifications a waiting queue may drop: those the
// alert's state has moved past, never a resolution the alert did not undo.
func TestSuperseded(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	notif := func(state string, seq uint64, at time.Time) alert.Notification {
		n := alert.Notification{Seq: seq}
		n.Rule, n.Site, n.Device, n.State, n.At = "hot", "s", "d", state, at
		return n
	}
	tests := []struct {
		name  string
		n     alert.Notification
		state alert.State
		known bool
		want  bool
	}{
		{"firing, state unknown here yet", notif("firing", 2, t0), alert.State{}, false, false},
		{"firing, still the state", notif("firing", 2, t0), alert.State{Phase: alert.Firing, Seq: 2, At: t0}, true, false},
		{"firing, newer than the mirror", notif("firing", 3, t0), alert.State{Phase: alert.Resolved, Seq: 2}, true, false},
		{"firing, re-sent since", notif("firing", 2, t0), alert.State{Phase: alert.Firing, Seq: 2, At: t0, Resent: t0.Add(time.Minute)}, true, true},
		{"the latest re-send", notif("firing", 2, t0.Add(time.Minute)), alert.State{Phase: alert.Firing, Seq: 2, Resent: t0.Add(time.Minute)}, true, false},
		{"firing, resolved since", notif("firing", 2, t0), alert.State{Phase: alert.Resolved, Seq: 3}, true, true},
		{"firing, fired again since", notif("firing", 2, t0), alert.State{Phase: alert.Firing, Seq: 5}, true, true},
		{"resolved, still the state", notif("resolved", 3, t0), alert.State{Phase: alert.Resolved, Seq: 3}, true, false},
		{"resolved, pending again since", notif("resolved", 3, t0), alert.State{Phase: alert.Pending, Seq: 4}, true, false},
		{"resolved, fired again since", notif("resolved", 3, t0), alert.State{Phase: alert.Firing, Seq: 5}, true, true},
	}
	for _, tt := range tests {
		d := &Dispatcher{current: func(key string) (alert.State, bool) {
			if key != "hot.s.d" {
				t.Fatalf("looked up %q", key)
			}
			return tt.state, tt.known
		}}
		if got := d.superseded(tt.n); got != tt.want {
			t.Errorf("%s: superseded = %v, want %v", tt.name, got, tt.want)
		}
	}
}
