package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// metrics are the load generator's default fields.
var metrics = []string{"temperature", "humidity", "pressure"}

// judge checks the outcome after the load: every target ready, every
// acknowledged reading counted exactly once in every window size, no dead
// letter, every alert transition notified exactly once, no data race or
// panic in any log.
func (r *runner) judge(ctx context.Context, sum *Summary, rep loadReport) {
	cfg := r.cfg
	problem := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		sum.Problems = append(sum.Problems, msg)
		r.logf("PROBLEM: %s", msg)
	}
	if rep.Totals.Failed > 0 {
		problem("the broker never acknowledged %d of %d messages (the load generator resends across reconnects; the verdict can only hold the pipeline to what was acknowledged)",
			rep.Totals.Failed, rep.Totals.Attempted)
	}

	// Readiness: every target, within the settle timeout.
	began := time.Now()
	sum.Ready = map[string]bool{}
	for _, t := range r.stack.targets {
		err := waitReady(ctx, t, max(cfg.SettleTimeout-time.Since(began), 5*time.Second))
		sum.Ready[t.name] = err == nil
		if err != nil {
			problem("%v", err)
		}
	}
	r.logf("every target probed ready after %s", time.Since(began).Round(time.Millisecond))

	// Counts: the last windows close LATENESS + IDLE_GRACE after their end
	// (the devices fell silent), so they take that long to appear.
	want := rep.Totals.Acked
	deadline := time.Now().Add(cfg.SettleTimeout)
	// A count that has not moved for this long will not: every window has
	// had its wall-clock close.
	stable := cfg.Lateness + cfg.IdleGrace + 15*time.Second
	for _, w := range cfg.Windows {
		if d, err := time.ParseDuration(w); err == nil {
			stable = max(stable, d+cfg.Lateness+cfg.IdleGrace+15*time.Second)
		}
	}
	// Every window size and metric together, until all count what was
	// acknowledged or none has moved for `stable`.
	type count struct {
		got      int64
		byDevice map[string]int64
		err      error
	}
	counts := map[string]*count{}
	last := map[string]int64{}
	since := time.Now()
	for {
		done := true
		for _, w := range cfg.Windows {
			for _, m := range metrics {
				c := &count{}
				c.got, c.byDevice, c.err = sumCounts(ctx, r.stack.influx.URL, w, m)
				k := w + " " + m
				counts[k] = c
				if c.err == nil && c.got != last[k] {
					last[k], since = c.got, time.Now()
				}
				done = done && c.err == nil && c.got >= want
			}
		}
		if done || time.Since(since) > stable || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	sum.Counted = map[string]map[string]int64{}
	for _, w := range cfg.Windows {
		sum.Counted[w] = map[string]int64{}
		for _, m := range metrics {
			c := counts[w+" "+m]
			sum.Counted[w][m] = c.got
			switch {
			case c.err != nil:
				problem("telemetry_%s %s: %v", w, m, c.err)
			case c.got != want:
				problem("telemetry_%s counts %d %s readings, the broker acknowledged %d (%+d)%s", w, c.got, m, want, c.got-want, deviceDiff(rep, c.byDevice))
			}
		}
	}
	// A double flush or a late replay would show as a count that moves on.
	time.Sleep(3 * time.Second)
	for _, w := range cfg.Windows {
		for _, m := range metrics {
			if got, _, err := sumCounts(ctx, r.stack.influx.URL, w, m); err == nil && got != sum.Counted[w][m] {
				problem("telemetry_%s %s moved from %d to %d after settling", w, m, sum.Counted[w][m], got)
			}
		}
	}
	r.logf("counts: %v (acknowledged %d)", sum.Counted, want)

	nc, err := nats.Connect(strings.Join(r.stack.natsURLs, ","), nats.MaxReconnects(-1))
	if err != nil {
		problem("connect to NATS for the verdict: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		problem("jetstream: %v", err)
		return
	}

	// Dead letters: the load is all valid, so every one is a finding; late
	// readings are the one the issue names.
	sum.DeadLetters = map[string]int{}
	dls, err := readStream(ctx, js, bus.StreamDeadLetter)
	if err != nil {
		problem("read %s: %v", bus.StreamDeadLetter, err)
	}
	for _, m := range dls {
		reason := m.Headers().Get(bus.HeaderReason)
		sum.DeadLetters[m.Subject()+" "+reason]++
		if m.Subject() == "deadletter.processor" && reason == "late" {
			sum.Late++
			attributeLate(sum.Faults, m.Data())
		}
	}
	if sum.Late > 0 {
		problem("%d readings dead-lettered as late", sum.Late)
	}
	if n := len(dls) - sum.Late; n > 0 {
		problem("%d other dead letters: %v", n, sum.DeadLetters)
	}

	r.judgeAlerts(ctx, js, sum, problem)

	// The logs: a data race (the suite builds with -race) or a panic in any
	// run of any process is a finding even when the counts hold.
	logs, _ := filepath.Glob(filepath.Join(cfg.Dir, "logs", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if n := strings.Count(string(b), bad); n > 0 {
				problem("%s: %d × %q", filepath.Base(l), n, strings.TrimSpace(bad))
			}
		}
	}
}

// judgeAlerts waits until every alert change on ALERTS that notifies
// (firing, resolved) was delivered to the webhook, then checks that each
// was delivered exactly once: one notification ID per transition, one
// delivery per ID.
func (r *runner) judgeAlerts(ctx context.Context, js jetstream.JetStream, sum *Summary, problem func(string, ...any)) {
	deadline := time.Now().Add(r.cfg.SettleTimeout)
	var events int
	var ds []delivery
	for {
		msgs, err := readStream(ctx, js, bus.StreamAlerts)
		if err != nil {
			problem("read %s: %v", bus.StreamAlerts, err)
			return
		}
		events = 0
		for _, m := range msgs {
			a, err := reading.UnmarshalAlert(m.Data())
			if err == nil && (a.State == "firing" || a.State == "resolved") {
				events++
			}
		}
		ds = r.hook.deliveries()
		ids := map[string]bool{}
		for _, d := range ds {
			ids[d.ID] = true
		}
		if len(ids) >= events || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	perID := map[string]int{}
	idsPerTransition := map[string]map[string]bool{}
	for _, d := range ds {
		perID[d.ID]++
		if idsPerTransition[d.transition()] == nil {
			idsPerTransition[d.transition()] = map[string]bool{}
		}
		idsPerTransition[d.transition()][d.ID] = true
	}
	sum.Alerts = AlertSummary{Transitions: events, Deliveries: len(ds), Notifications: len(perID), NotifiedTwice: []string{}}
	for id, n := range perID {
		if n > 1 {
			sum.Alerts.NotifiedTwice = append(sum.Alerts.NotifiedTwice, fmt.Sprintf("%s delivered %d times", id, n))
		}
	}
	for tr, ids := range idsPerTransition {
		if len(ids) > 1 {
			sum.Alerts.NotifiedTwice = append(sum.Alerts.NotifiedTwice, fmt.Sprintf("%s notified under %d IDs", tr, len(ids)))
		}
	}
	sort.Strings(sum.Alerts.NotifiedTwice)
	switch {
	case events == 0:
		problem("no alert fired: the rule must fire under the load for the notification check to mean anything")
	case len(perID) != events:
		problem("%d alert changes on ALERTS notify, %d distinct notifications delivered", events, len(perID))
	}
	if len(sum.Alerts.NotifiedTwice) > 0 {
		problem("alerts notified twice: %s", strings.Join(sum.Alerts.NotifiedTwice, "; "))
	}
	r.logf("alerts: %d notifying changes, %d notifications, %d deliveries", events, len(perID), len(ds))
}

// readStream reads every message of a stream with an ordered consumer.
func readStream(ctx context.Context, js jetstream.JetStream, stream string) ([]jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out, err
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out, nil
		}
	}
}

// deviceDiff lists the devices whose count differs from what the broker
// acknowledged for them (at most 10).
func deviceDiff(rep loadReport, byDevice map[string]int64) string {
	var diffs []string
	for _, d := range rep.Devices {
		if got := byDevice[d.Site+"/"+d.Device]; got != d.Acked {
			diffs = append(diffs, fmt.Sprintf("%s/%s %d/%d", d.Site, d.Device, got, d.Acked))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	n := len(diffs)
	if n > 10 {
		diffs = append(diffs[:10], "…")
	}
	return fmt.Sprintf("; %d devices off (counted/acknowledged): %s", n, strings.Join(diffs, ", "))
}

// attributeLate counts a late reading against the last fault injected
// before it was read (its device time, plus a little for the readings in
// flight when the fault struck).
func attributeLate(faults []Fault, data []byte) {
	var r struct {
		TS int64 `json:"ts"`
	}
	if json.Unmarshal(data, &r) != nil || r.TS == 0 {
		return
	}
	at := time.UnixMilli(r.TS).Add(2 * time.Second)
	for i := len(faults) - 1; i >= 0; i-- {
		if !faults[i].injected.After(at) {
			faults[i].Late++
			return
		}
	}
}
