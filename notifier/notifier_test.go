package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/notifier/alert"
)

const hotRules = `
channels:
  hook:
    type: webhook
    url_env: {hook}
    retry_initial: 100ms
    retry_max: 500ms
  log:
    type: log
rules:
  - name: hot
    site: warehouse
    device: "wh-0[12]"
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    clear: 35
    severity: critical
    channels: [hook, log]
  - name: hot-for
    site: warehouse
    device: wh-09
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    for: 20s
    channels: [hook]
`

// Windows published on AGGREGATES fire exactly one notification per
// transition: one when the alert fires, one when it resolves, none for the
// windows in between (hysteresis) nor for windows seen again.
func TestThresholdFiresOncePerTransition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(hotRules)
	r := e.start("a")
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	w := func(i int, v float64) {
		e.window("warehouse", "wh-01", "10s", base.Add(time.Duration(i)*10*time.Second), map[string]float64{"temperature": v, "humidity": 50})
	}
	w(0, 20)
	w(1, 41) // fires
	got := e.hook.waitFor(t, 1, 10*time.Second)
	if n := got[0]; n.State != "firing" || n.Rule != "hot" || n.Value != 41 || n.Severity != "critical" ||
		!n.Since.Equal(base.Add(10*time.Second)) || n.ID != "hot.warehouse.wh-01.1" {
		t.Fatalf("firing notification %+v", n)
	}

	// The firing set, over HTTP and in the bucket.
	resp, err := http.Get(r.base + "/alerts")
	if err != nil {
		t.Fatal(err)
	}
	var active AlertsResponse
	if err := json.NewDecoder(resp.Body).Decode(&active); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(active.Alerts) != 1 || active.Alerts[0].State != "firing" || active.Alerts[0].Device != "wh-01" || active.RulesVersion == "" {
		t.Fatalf("/alerts = %+v", active)
	}
	if rec, ok := e.state("hot", "warehouse", "wh-01"); !ok || rec.Phase != alert.Firing || len(rec.Outbox) != 0 {
		t.Fatalf("ALERT_STATE record %+v", rec)
	}

	w(2, 42) // still firing
	w(3, 38) // between clear and threshold: still firing
	// A window seen again, as after a redelivery.
	e.publishWindow("warehouse", "wh-01", "10s", base.Add(10*time.Second), time.Now(), map[string]float64{"temperature": 41}, false)
	w(4, 30) // resolves
	got = e.hook.waitFor(t, 2, 10*time.Second)
	if n := got[1]; n.State != "resolved" || n.Value != 30 || n.ID != "hot.warehouse.wh-01.2" {
		t.Fatalf("resolved notification %+v", n)
	}
	// Another device of the same rule is an alert of its own.
	e.window("warehouse", "wh-02", "10s", base, map[string]float64{"temperature": 45})
	// A window of another size, metric or device does not match.
	e.window("warehouse", "wh-01", "1m", base, map[string]float64{"temperature": 45})
	e.window("warehouse", "wh-01", "10s", base.Add(time.Minute), map[string]float64{"humidity": 45})
	e.window("warehouse", "wh-03", "10s", base, map[string]float64{"temperature": 45})
	// `for`: pending first, firing once the breach lasted 20 s.
	e.window("warehouse", "wh-09", "10s", base, map[string]float64{"temperature": 45})
	e.window("warehouse", "wh-09", "10s", base.Add(10*time.Second), map[string]float64{"temperature": 45})
	got = e.hook.waitFor(t, 4, 10*time.Second)
	time.Sleep(time.Second) // nothing more comes
	got = e.hook.delivered()
	exactlyOnce(t, got)
	if len(got) != 4 {
		t.Fatalf("%d notifications, want 4: %+v", len(got), got)
	}
	if !strings.Contains(got[2].ID+got[3].ID, "hot.warehouse.wh-02.1") || !strings.Contains(got[2].ID+got[3].ID, "hot-for.warehouse.wh-09.2") {
		t.Fatalf("notifications 3 and 4: %s %s", got[2].ID, got[3].ID)
	}

	// Every state change is on ALERTS, once.
	var states []string
	for _, ev := range e.events() {
		states = append(states, ev.Rule+"/"+ev.Device+":"+ev.State)
	}
	want := "hot/wh-01:firing hot/wh-01:resolved hot/wh-02:firing hot-for/wh-09:pending hot-for/wh-09:firing"
	if strings.Join(states, " ") != want {
		t.Fatalf("ALERTS:\n got %s\nwant %s", strings.Join(states, " "), want)
	}
	if v := r.metric(t, `edgeflow_notifier_deliveries_total{channel="hook",result="ok"}`); v != 4 {
		t.Errorf("deliveries ok = %v", v)
	}
	if v := r.metric(t, `edgeflow_notifier_deliveries_total{channel="log",result="ok"}`); v != 3 {
		t.Errorf("log deliveries ok = %v", v)
	}
	if v := r.metric(t, "edgeflow_notifier_rules_loaded"); v != 2 {
		t.Errorf("rules loaded = %v", v)
	}
	if v := r.metric(t, "edgeflow_notifier_messages_in_total"); v != 12 {
		t.Errorf("windows read = %v", v)
	}
	eventually(t, 5*time.Second, "firing gauge", func() bool { return r.metric(t, `edgeflow_notifier_alerts{state="firing"}`) == 2 })
}

// An undecodable window is dead-lettered, not evaluated, and does not stop
// the others.
func TestInvalidWindowIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := bus.Ensure(t.Context(), e.js, e.streams.DeadLetter()); err != nil {
		t.Fatal(err)
	}
	e.writeRules(hotRules)
	e.start("a")
	if _, err := e.js.Publish(t.Context(), "aggregates.10s.warehouse.wh-01", []byte(`{"site":"ware.house"}`)); err != nil {
		t.Fatal(err)
	}
	e.window("warehouse", "wh-01", "10s", time.Now().Add(-time.Minute), map[string]float64{"temperature": 50})
	e.hook.waitFor(t, 1, 10*time.Second)
	cons, err := e.js.OrderedConsumer(t.Context(), bus.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject() != "deadletter.notifier" || m.Headers().Get(bus.HeaderReason) != "invalid_aggregate" {
		t.Fatalf("dead letter %s %v", m.Subject(), m.Headers())
	}
}

// A device that stops sending fires its offline alert after `after`, is
// reminded every `repeat`, and its next window resolves the alert.
func TestOfflineRepeatAndResolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(`
channels:
  hook: {type: webhook, url_env: {hook}}
rules:
  - name: gone
    type: offline
    site: lab
    device: "lab-*"
    after: 2s
    repeat: 1s
    channels: [hook]
`)
	e.start("a")
	now := time.Now()
	e.window("lab", "lab-01", "10s", now.Add(-10*time.Second), map[string]float64{"temperature": 20})
	e.window("office", "o-1", "10s", now.Add(-time.Hour), map[string]float64{"temperature": 20}) // not matched
	got := e.hook.waitFor(t, 1, 10*time.Second)
	if n := got[0]; n.State != "firing" || n.Kind != "offline" || n.Device != "lab-01" || n.Threshold != 2 || n.Repeat {
		t.Fatalf("offline notification %+v", n)
	}
	fired := time.Since(now)
	got = e.hook.waitFor(t, 3, 10*time.Second)
	if !got[1].Repeat || !got[2].Repeat || got[1].State != "firing" {
		t.Fatalf("reminders %+v", got[1:])
	}
	// A longer window that closes now says nothing new: the device was
	// silent for most of it, and its newest reading is the one of before.
	e.heardWindow("lab", "lab-01", "1m", time.Now().Add(-time.Minute), now, map[string]float64{"temperature": 20})
	time.Sleep(500 * time.Millisecond)
	for _, n := range e.hook.delivered() {
		if n.State == "resolved" {
			t.Fatal("a 1m window ending now resolved the alert of a device silent for seconds")
		}
	}
	e.window("lab", "lab-01", "10s", time.Now().Add(-10*time.Second), map[string]float64{"temperature": 20})
	eventually(t, 10*time.Second, "resolved", func() bool {
		got = e.hook.delivered()
		return got[len(got)-1].State == "resolved"
	})
	exactlyOnce(t, got)
	t.Logf("offline fired %s after the last window ended (after: 2s)", fired.Round(time.Millisecond))
	if fired < 2*time.Second || fired > 4*time.Second {
		t.Errorf("offline fired %s after the last data, want about 2s", fired)
	}
	var states []string
	for _, ev := range e.events() {
		states = append(states, ev.Device+":"+ev.State)
	}
	if strings.Join(states, " ") != "lab-01:firing lab-01:resolved" {
		t.Fatalf("ALERTS %v (reminders are not state changes)", states)
	}
}

// Liveness is when a device's readings arrived (ingest's clock), not what
// its own clock says. One device's clock runs 25 s slow, another's a minute
// ahead; both send a 1 s window every 500 ms. The slow one is not offline
// while it sends, and the one ahead is offline `after` its data stops
// arriving, not a minute later.
func TestOfflineFollowsArrivalNotDeviceClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(`
channels:
  hook: {type: webhook, url_env: {hook}}
rules:
  - name: gone
    type: offline
    site: lab
    after: 2s
    channels: [hook]
`)
	e.start("a")
	skews := map[string]time.Duration{"lab-slow": -25 * time.Second, "lab-ahead": time.Minute}
	var last time.Time
	for range 8 {
		last = time.Now()
		for dev, skew := range skews {
			// A window just closed, as the device's clock tells it.
			e.window("lab", dev, "1s", last.Add(skew-time.Second), map[string]float64{"temperature": 20})
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, n := range e.hook.delivered() {
		t.Errorf("%s/%s %s at %s while it was sending (its clock is %s off)", n.Site, n.Device, n.State,
			n.At.Sub(e.started).Round(time.Millisecond), skews[n.Device])
	}
	fired := map[string]time.Duration{}
	deadline := time.Now().Add(8 * time.Second)
	for len(fired) < len(skews) && time.Now().Before(deadline) {
		for _, n := range e.hook.delivered() {
			if _, ok := fired[n.Device]; !ok && n.State == "firing" && n.At.After(last) {
				fired[n.Device] = n.At.Sub(last)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for dev, skew := range skews {
		d, ok := fired[dev]
		t.Logf("%s (clock %s off): offline %s after its last data arrived (after: 2s)", dev, skew, d.Round(time.Millisecond))
		if !ok || d < 2*time.Second || d > 4*time.Second {
			t.Errorf("%s (clock %s off): offline %v after its data stopped (fired %v), want about 2s", dev, skew, d, ok)
		}
	}
}

// The receiver answers 500 for a while: the notification is retried with
// backoff and delivered once it recovers, exactly once.
func TestWebhookOutageIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(hotRules)
	r := e.start("a")
	e.hook.failing.Store(4)
	e.window("warehouse", "wh-01", "10s", time.Now().Add(-time.Minute), map[string]float64{"temperature": 50})
	got := e.hook.waitFor(t, 1, 20*time.Second)
	time.Sleep(time.Second)
	got = e.hook.delivered()
	if len(got) != 1 || got[0].State != "firing" {
		t.Fatalf("delivered %+v", got)
	}
	if a := e.hook.attempts.Load(); a != 5 {
		t.Errorf("%d attempts, want 4 failures and 1 success", a)
	}
	if v := r.metric(t, `edgeflow_notifier_deliveries_total{channel="hook",result="failed"}`); v != 4 {
		t.Errorf("failed deliveries = %v", v)
	}
	if v := r.metric(t, `edgeflow_notifier_deliveries_total{channel="hook",result="ok"}`); v != 1 {
		t.Errorf("ok deliveries = %v", v)
	}
	// Delivered: the queue is empty.
	eventually(t, 5*time.Second, "queue empty", func() bool {
		s, err := e.js.Stream(t.Context(), bus.StreamNotifications)
		return err == nil && s.CachedInfo().State.Msgs == 0 &&
			r.metric(t, `edgeflow_notifier_deliveries_queued{channel="hook"}`) == 0
	})
}

// /readyz names the rules file and the version in effect.
func TestReadyzReportsRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules("rules: []\n")
	r := e.start("a")
	resp, err := http.Get(r.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Rules  struct {
			File    string `json:"file"`
			Version string `json:"version"`
		} `json:"rules"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "ready" || body.Rules.File != e.rules || body.Rules.Version == "" {
		t.Fatalf("/readyz %+v", body)
	}
}
