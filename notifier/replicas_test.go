package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/internal/smtptest"
	"github.com/edgeflow/edgeflow/notifier/kvmirror"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

const fleetRules = `
channels:
  hook:
    type: webhook
    url_env: {hook}
    retry_initial: 100ms
    retry_max: 1s
rules:
  - name: hot
    site: warehouse
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    clear: 35
    channels: [hook]
  - name: gone
    type: offline
    site: lab
    after: 1s
    channels: [hook]
`

// Two replicas share the work: each notification is delivered once, also
// when one of them stops halfway and the other takes over. The offline rule
// is checked by both replicas every tick; the compare-and-set lets one win.
func TestTwoReplicasDeliverOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(fleetRules)
	a := e.start("a")
	b := e.start("b")
	const devices = 20
	base := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	for i := range devices {
		e.window("warehouse", fmt.Sprintf("wh-%02d", i), "10s", base, map[string]float64{"temperature": 45})
	}
	e.window("lab", "lab-01", "10s", time.Now().Add(-10*time.Second), map[string]float64{"temperature": 20})
	e.hook.waitFor(t, devices+1, 20*time.Second)

	inA, inB := a.metric(t, "edgeflow_notifier_messages_in_total"), b.metric(t, "edgeflow_notifier_messages_in_total")
	t.Logf("windows evaluated: a %v, b %v (one pinned replica)", inA, inB)
	if inA+inB != devices+1 {
		t.Errorf("windows evaluated %v + %v, want %d: each exactly once", inA, inB, devices+1)
	}
	// The pinned one stops; the other continues.
	pinned, other := a, b
	if inB > inA {
		pinned, other = b, a
	}
	pinned.stop(t)
	for i := range devices {
		e.window("warehouse", fmt.Sprintf("wh-%02d", i), "10s", base.Add(10*time.Second), map[string]float64{"temperature": 20})
	}
	// Data again resolves; its arrival dated a minute ahead keeps the
	// device heard from for the rest of the test.
	e.heardWindow("lab", "lab-01", "10s", time.Now(), time.Now().Add(time.Minute), map[string]float64{"temperature": 20})
	got := e.hook.waitFor(t, 2*devices+2, 20*time.Second)
	time.Sleep(time.Second)
	got = e.hook.delivered()
	exactlyOnce(t, got)
	if len(got) != 2*devices+2 {
		t.Fatalf("%d notifications, want %d", len(got), 2*devices+2)
	}
	states := map[string]int{}
	for _, n := range got {
		states[n.Rule+":"+n.State]++
	}
	if states["hot:firing"] != devices || states["hot:resolved"] != devices || states["gone:firing"] != 1 || states["gone:resolved"] != 1 {
		t.Fatalf("notifications by rule and state: %v", states)
	}
	if v := other.metric(t, "edgeflow_notifier_messages_in_total"); v < devices {
		t.Errorf("the remaining replica evaluated %v windows after the takeover", v)
	}
	t.Logf("state conflicts on the remaining replica: %v", other.metric(t, "edgeflow_notifier_state_conflicts_total"))
	if n := len(e.events()); n != 2*devices+2 {
		t.Errorf("%d state changes on ALERTS, want %d", n, 2*devices+2)
	}
}

// The notifier, as a real process, is SIGKILLed while an alert is pending;
// the windows that complete its `for` arrive while it is dead. Restarted, it
// continues from the state in the bucket and fires once. Then it is killed
// in the middle of a burst of alerts: after the restart every alert fired
// once (one state change each on ALERTS, one notification ID each).
func TestKilledWhilePendingFiresOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(`
channels:
  hook: {type: webhook, url_env: {hook}, retry_initial: 100ms, retry_max: 1s}
rules:
  - name: hot-for
    site: warehouse
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    for: 30s
    channels: [hook]
  - name: hot
    site: burst
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    channels: [hook]
`)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config("killed")
	p, err := devenv.StartProcess(t.Context(), devenv.ProcessOptions{
		Name: "notifier", Bin: self, Dir: e.dir, Addr: cfg.HTTPAddr,
		Env: []string{mainEnv + "=1", "GORACE=atexit_sleep_ms=0", "EDGEFLOW_NATS_URL=" + e.natsURL, "EDGEFLOW_RULES=" + e.rules,
			"EDGEFLOW_NOTIFIER_ID=killed", "EDGEFLOW_NOTIFIER_HTTP_ADDR=" + cfg.HTTPAddr, "EDGEFLOW_NOTIFIER_TICK=200ms",
			"EDGEFLOW_NOTIFIER_FAILOVER=2s", "EDGEFLOW_NOTIFIER_RULES_POLL=200ms"},
		ReadyURL: "http://" + cfg.HTTPAddr + "/readyz", ReadyTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			log, _ := p.Log()
			t.Logf("notifier log:\n%s", log)
		}
	})
	base := time.Now().Add(-time.Hour).Truncate(10 * time.Second)
	e.window("warehouse", "wh-09", "10s", base, map[string]float64{"temperature": 45})
	eventually(t, 10*time.Second, "pending", func() bool {
		rec, ok := e.state("hot-for", "warehouse", "wh-09")
		return ok && rec.Phase == alert.Pending
	})
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	e.window("warehouse", "wh-09", "10s", base.Add(10*time.Second), map[string]float64{"temperature": 45})
	e.window("warehouse", "wh-09", "10s", base.Add(20*time.Second), map[string]float64{"temperature": 45})
	began := time.Now()
	if err := p.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := e.hook.waitFor(t, 1, 20*time.Second)
	t.Logf("restarted and fired in %s", time.Since(began).Round(time.Millisecond))
	if n := got[0]; n.State != "firing" || n.Rule != "hot-for" || !n.Since.Equal(base) {
		t.Fatalf("notification %+v (want the breach counted from before the kill)", n)
	}

	// A burst, and SIGKILL while it is evaluated.
	const burst = 40
	for i := range burst {
		e.window("burst", fmt.Sprintf("b-%02d", i), "10s", base, map[string]float64{"temperature": 45})
	}
	eventually(t, 20*time.Second, "some of the burst notified", func() bool { return len(e.hook.delivered()) > 1 })
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := len(e.hook.delivered()) - 1
	if err := p.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.hook.waitFor(t, 1+burst, 30*time.Second)
	time.Sleep(time.Second)
	got = e.hook.delivered()
	ids := map[string]int{}
	for _, n := range got {
		ids[n.ID]++
	}
	t.Logf("killed after %d of %d burst notifications; %d deliveries for %d notifications (a repeat is the at-least-once"+
		" of a delivery cut by the kill, with the same ID)", killedAt, burst, len(got), len(ids))
	if len(ids) != 1+burst {
		t.Fatalf("%d distinct notifications, want %d", len(ids), 1+burst)
	}
	changes := map[string]int{}
	for _, ev := range e.events() {
		changes[ev.Rule+"/"+ev.Device+":"+ev.State]++
	}
	for k, n := range changes {
		if n != 1 {
			t.Errorf("%s on ALERTS %d times", k, n)
		}
	}
	if len(changes) != 2+burst {
		t.Fatalf("%d distinct state changes on ALERTS, want %d: %v", len(changes), 2+burst, changes)
	}
}

// A broken rules file keeps the old rules running and says why, with the
// line, in /readyz and the metrics; fixing it applies the new rules.
func TestBrokenRulesFileKeepsOldRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(hotRules)
	r := e.start("a")
	e.writeRules(strings.Replace(hotRules, "threshold: 40\n    clear: 35", "threshold: forty\n    clear: 35", 1))
	var body struct {
		Status string       `json:"status"`
		Rules  rules.Status `json:"rules"`
	}
	eventually(t, 5*time.Second, "the broken file reported", func() bool {
		body.Rules = rules.Status{}
		getJSON(t, r.base+"/readyz", &body)
		return body.Rules.Error != ""
	})
	if body.Status != "ready" || !strings.Contains(body.Rules.Error, "rules.yaml:17: rules[0].threshold: want a number") || body.Rules.Rules != 2 {
		t.Fatalf("/readyz %+v", body)
	}
	if v := r.metric(t, "edgeflow_notifier_rules_invalid"); v != 1 {
		t.Errorf("rules_invalid = %v", v)
	}
	if v := r.metric(t, `edgeflow_notifier_rules_reloads_total{result="invalid"}`); v != 1 {
		t.Errorf("invalid reloads = %v", v)
	}
	// The old rules still fire.
	e.window("warehouse", "wh-01", "10s", time.Now().Add(-time.Minute), map[string]float64{"temperature": 45})
	if n := e.hook.waitFor(t, 1, 10*time.Second)[0]; n.Rule != "hot" || n.Threshold != 40 {
		t.Fatalf("notification %+v", n)
	}

	// Fixed, with a new rule: it applies without a restart.
	e.writeRules(strings.Replace(hotRules, "name: hot\n", "name: warm\n", 1))
	eventually(t, 5*time.Second, "the fixed file loaded", func() bool {
		body.Rules = rules.Status{}
		getJSON(t, r.base+"/readyz", &body)
		return body.Rules.Error == "" && body.Rules.Version != ""
	})
	if v := r.metric(t, "edgeflow_notifier_rules_invalid"); v != 0 {
		t.Errorf("rules_invalid = %v after the fix", v)
	}
	e.window("warehouse", "wh-02", "10s", time.Now().Add(-time.Minute), map[string]float64{"temperature": 45})
	if n := e.hook.waitFor(t, 2, 10*time.Second)[1]; n.Rule != "warm" {
		t.Fatalf("notification %+v, want rule warm", n)
	}
}

// E-mail goes to a real SMTP listener on loopback; a temporary failure of
// the server is retried.
func TestSMTPDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := smtptest.Start(t)
	pass := fmt.Sprintf("EDGEFLOW_TEST_SMTP_PASSWORD_%d", envSeq.Add(1))
	os.Setenv(pass, "s3cret")
	t.Cleanup(func() { os.Unsetenv(pass) })
	e.writeRules(fmt.Sprintf(`
channels:
  mail:
    type: smtp
    addr: %s
    from: edgeflow@example.com
    to: [oncall@example.com]
    username: edgeflow
    password_env: %s
    retry_initial: 100ms
rules:
  - name: hot
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    severity: critical
    channels: [mail]
`, srv.Addr, pass))
	e.start("a")
	srv.FailData(1)
	e.window("warehouse", "wh-01", "10s", time.Now().Add(-time.Minute), map[string]float64{"temperature": 45})
	select {
	case m := <-srv.Received:
		if m.User != "edgeflow" || m.Pass != "s3cret" || m.To[0] != "oncall@example.com" ||
			!strings.Contains(m.Data, "Subject: [critical] hot firing: warehouse/wh-01 temperature mean over 10s is 45 (> 40)") ||
			!strings.Contains(m.Data, "Message-ID: <hot.warehouse.wh-01.1@edgeflow-notifier>") {
			t.Fatalf("mail %+v", m)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no mail")
	}
	select {
	case m := <-srv.Received:
		t.Fatalf("a second mail: %+v", m)
	case <-time.After(time.Second):
	}
}

// A replica that dies between committing a change and publishing its
// outbox loses nothing: another replica's sweeper publishes it, and the
// publish of the dead replica, had it happened, is deduplicated.
func TestCrashBetweenCommitAndPublish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if err := bus.Ensure(ctx, e.js, e.streams.Alerts(), e.config("x").Notifications(e.config("x").QueueMaxBytes)); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse("r", []byte(strings.ReplaceAll(hotRules, "{hook}", e.hookEnv)), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	engine := func(crash bool) *Engine {
		mctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		log := slog.New(slog.DiscardHandler)
		kv := func(bucket string) jetstream.KeyValue {
			kv, err := e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
			if err != nil {
				t.Fatal(err)
			}
			return kv
		}
		states, seen := kvmirror.New[alert.Record](kv(bus.BucketAlerts), log), kvmirror.New[LastSeen](kv(bus.BucketLastSeen), log)
		go states.Run(mctx)
		go seen.Run(mctx)
		<-states.Ready()
		<-seen.Ready()
		en := &Engine{js: e.js, states: states, seen: seen, rules: func() *rules.Set { return set },
			metrics: NewMetrics(prometheus.NewRegistry()), log: log, now: time.Now, sweepAge: time.Hour}
		if crash {
			en.crashAfterCommit = func(string) bool { return true }
		}
		return en
	}
	count := func(stream string) uint64 {
		s, err := e.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}
	agg := reading.Aggregate{Site: "warehouse", Device: "wh-01", Window: "10s", Start: 0, End: 10000,
		Metrics: map[string]reading.Stats{"temperature": {Count: 1, Mean: 45}}}

	dying := engine(true)
	if err := dying.OnAggregate(ctx, agg); err != errCrashed {
		t.Fatalf("OnAggregate = %v", err)
	}
	rec, _ := e.state("hot", "warehouse", "wh-01")
	if rec.Phase != alert.Firing || len(rec.Outbox) != 3 || count(bus.StreamNotifications) != 0 || count(bus.StreamAlerts) != 0 {
		t.Fatalf("after the crash: record %+v, %d queued", rec, count(bus.StreamNotifications))
	}
	outbox := rec.Outbox
	// A young outbox is left to its writer.
	survivor := engine(false)
	if err := survivor.Sweep(ctx, false); err != nil || count(bus.StreamNotifications) != 0 {
		t.Fatalf("swept a fresh outbox: %v", err)
	}
	// At start-up, or once it is old, it is published.
	if err := survivor.Sweep(ctx, true); err != nil {
		t.Fatal(err)
	}
	if count(bus.StreamNotifications) != 2 || count(bus.StreamAlerts) != 1 {
		t.Fatalf("after the sweep: %d queued, %d on ALERTS", count(bus.StreamNotifications), count(bus.StreamAlerts))
	}
	if rec, _ := e.state("hot", "warehouse", "wh-01"); len(rec.Outbox) != 0 {
		t.Fatalf("outbox not cleared: %+v", rec)
	}
	// Had the dying replica published after all, JetStream drops the copy.
	if err := dying.publish(ctx, outbox); err != nil {
		t.Fatal(err)
	}
	// The window redelivered to the survivor changes nothing.
	if err := survivor.OnAggregate(ctx, agg); err != nil {
		t.Fatal(err)
	}
	if count(bus.StreamNotifications) != 2 || count(bus.StreamAlerts) != 1 {
		t.Fatalf("after the redelivery: %d queued, %d on ALERTS", count(bus.StreamNotifications), count(bus.StreamAlerts))
	}
}

// A receiver slower than the failover time gets the notification once: the
// replica sending it keeps it (InProgress), so the other does not take over.
func TestSlowReceiverIsNotSentTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.hook.delay.Store(int64(3 * time.Second)) // failover is 2s
	e.writeRules(hotRules)
	e.start("a")
	e.start("b")
	e.window("warehouse", "wh-01", "10s", time.Now().Add(-time.Minute), map[string]float64{"temperature": 45})
	e.hook.waitFor(t, 1, 15*time.Second)
	time.Sleep(3 * time.Second)
	if a := e.hook.attempts.Load(); a != 1 {
		t.Fatalf("%d attempts for one notification", a)
	}
}
