package alert

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// t0 is the fake clock's epoch: event times and wall times are offsets from it.
var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func hot() *rules.Rule {
	return &rules.Rule{Name: "hot", Kind: rules.Threshold, Site: "*", Device: "*", Metric: "temperature", Aggregate: "mean",
		Window: "10s", Op: rules.Above, Threshold: 40, Clear: 35, HasClear: true, Severity: "critical", Channels: []string{"log", "ops"}}
}

// machine drives one alert through windows of 10 s on a fake clock that
// reads 15 s after each window's start (window end plus lateness).
type machine struct {
	t       *testing.T
	r       *rules.Rule
	s       State
	changes []Change
}

func newMachine(t *testing.T, r *rules.Rule) *machine {
	return &machine{t: t, r: r, s: State{Rule: r.Name, Site: "warehouse", Device: "wh-01", Phase: OK}}
}

// window folds the value of the window starting at offset start and
// returns the phase entered, or "" when nothing changed.
func (m *machine) window(start time.Duration, v float64) Phase {
	m.t.Helper()
	var cs []Change
	m.s, cs = Observe(m.s, m.r, v, at(start), at(start+10*time.Second), at(start+15*time.Second))
	return m.record(cs)
}

func (m *machine) record(cs []Change) Phase {
	m.t.Helper()
	if len(cs) > 1 {
		m.t.Fatalf("%d changes in one step: %+v", len(cs), cs)
	}
	m.changes = append(m.changes, cs...)
	if len(cs) == 0 {
		return ""
	}
	if cs[0].Seq != m.s.Seq || m.s.Phase != cs[0].Phase {
		m.t.Fatalf("change %+v does not match state %+v", cs[0], m.s)
	}
	return cs[0].Phase
}

func (m *machine) expect(got, want Phase, what string) {
	m.t.Helper()
	if got != want {
		m.t.Fatalf("%s: changed to %q, want %q (state %+v)", what, got, want, m.s)
	}
}

func TestHysteresis(t *testing.T) {
	m := newMachine(t, hot()) // fires above 40, clears below 35, no `for`
	steps := []struct {
		v    float64
		want Phase
	}{
		{39, ""},     // below the threshold
		{40, ""},     // at it: > is strict
		{41, Firing}, // above: fires at once
		{38, ""},     // between clear and threshold: still firing
		{41, ""},     // no second notification
		{35, ""},     // at the clear level: still firing
		{34.9, Resolved},
		{38, ""}, // between: resolved stays resolved
		{39.9, ""},
		{40.5, Firing},
	}
	for i, st := range steps {
		m.expect(m.window(time.Duration(i)*10*time.Second, st.v), st.want, "value "+num(st.v))
	}
	if len(m.changes) != 3 || m.s.Seq != 3 {
		t.Fatalf("changes %+v, seq %d", m.changes, m.s.Seq)
	}
	if m.s.Since != at(90*time.Second) || m.s.Value != 40.5 || m.s.Threshold != 40 || m.s.Severity != "critical" {
		t.Fatalf("state %+v", m.s)
	}
	if m.s.Notified != at(105*time.Second) || m.s.At != at(105*time.Second) {
		t.Fatalf("firing at %v, notified %v", m.s.At, m.s.Notified)
	}
}

func TestHysteresisWithoutClear(t *testing.T) {
	r := hot()
	r.HasClear = false
	m := newMachine(t, r)
	m.expect(m.window(0, 41), Firing, "41")
	m.expect(m.window(10*time.Second, 40), Resolved, "40 is no longer > 40")
}

func TestBelowRule(t *testing.T) {
	r := &rules.Rule{Name: "cold", Kind: rules.Threshold, Op: rules.AtMost, Threshold: 5, Clear: 8, HasClear: true, Severity: "warning"}
	m := newMachine(t, r)
	m.expect(m.window(0, 5), Firing, "5 <= 5")
	m.expect(m.window(10*time.Second, 8), "", "at the clear level")
	m.expect(m.window(20*time.Second, 8.1), Resolved, "above the clear level")
}

func TestFor(t *testing.T) {
	r := hot()
	r.For = 20 * time.Second
	m := newMachine(t, r)
	m.expect(m.window(0, 41), Pending, "first breaching window")
	if m.s.Since != at(0) {
		t.Fatalf("pending since %v", m.s.Since)
	}
	// Between clear and threshold the breach goes on (hysteresis), and the
	// second window completes 20 s of it.
	m.expect(m.window(10*time.Second, 37), Firing, "20 s of breach")
	if m.s.Since != at(0) || m.s.Value != 37 {
		t.Fatalf("firing state %+v", m.s)
	}

	// A pending alert that clears goes back to ok without notifying.
	m2 := newMachine(t, r)
	m2.expect(m2.window(0, 41), Pending, "breach")
	m2.expect(m2.window(10*time.Second, 30), Resolved, "cleared before firing")
	if c := m2.changes[len(m2.changes)-1]; c.Notifies() || c.From != Pending {
		t.Fatalf("a pending alert that cleared notifies: %+v", c)
	}
	if got := Summary(m2.s, r, m2.changes[len(m2.changes)-1]); !strings.Contains(got, "cleared before firing") {
		t.Fatalf("summary %q", got)
	}
	m2.expect(m2.window(20*time.Second, 41), Pending, "breach again: counted from here")
	m2.expect(m2.window(30*time.Second, 41), Firing, "20 s")
	if m2.s.Since != at(20*time.Second) {
		t.Fatalf("since %v", m2.s.Since)
	}

	// A window covering `for` alone fires at once.
	r3 := hot()
	r3.For = 10 * time.Second
	m3 := newMachine(t, r3)
	m3.expect(m3.window(0, 41), Firing, "a 10 s window covers for: 10s")
}

func TestForGapRestartsTheCount(t *testing.T) {
	r := hot()
	r.For = 20 * time.Second
	m := newMachine(t, r)
	m.expect(m.window(0, 41), Pending, "breach")
	// One missing window is tolerated ...
	m.expect(m.window(20*time.Second, 41), Firing, "one window missing")

	m2 := newMachine(t, r)
	m2.expect(m2.window(0, 41), Pending, "breach")
	// ... two are a gap: the count restarts at 30 s.
	m2.expect(m2.window(30*time.Second, 41), "", "after a gap")
	if m2.s.Since != at(30*time.Second) || m2.s.Phase != Pending {
		t.Fatalf("after a gap: %+v", m2.s)
	}
	m2.expect(m2.window(40*time.Second, 41), Firing, "20 s after the gap")
}

// A window seen again (redelivery) or out of order never changes the state.
func TestStaleWindowsAreIgnored(t *testing.T) {
	m := newMachine(t, hot())
	m.expect(m.window(10*time.Second, 41), Firing, "breach")
	m.expect(m.window(10*time.Second, 41), "", "the same window again")
	m.expect(m.window(0, 20), "", "an older window that would resolve")
	m.expect(m.window(20*time.Second, 20), Resolved, "a newer window")
	m.expect(m.window(10*time.Second, 41), "", "the firing window again after the resolve")
	if len(m.changes) != 2 {
		t.Fatalf("changes %+v", m.changes)
	}
}

func TestRepeat(t *testing.T) {
	r := hot()
	r.Repeat = 10 * time.Minute
	m := newMachine(t, r)
	m.expect(m.window(0, 41), Firing, "breach") // notified at 15 s
	var repeats []time.Duration
	for tick := 16 * time.Second; tick <= 31*time.Minute; tick += time.Second {
		var cs []Change
		m.s, cs = Remind(m.s, r, at(tick))
		for _, c := range cs {
			if !c.Repeat || c.Phase != Firing || !c.Notifies() {
				t.Fatalf("reminder %+v", c)
			}
			repeats = append(repeats, tick)
		}
	}
	want := []time.Duration{10*time.Minute + 15*time.Second, 20*time.Minute + 15*time.Second, 30*time.Minute + 15*time.Second}
	if len(repeats) != len(want) {
		t.Fatalf("reminders at %v, want %v", repeats, want)
	}
	for i := range want {
		if repeats[i] != want[i] {
			t.Fatalf("reminders at %v, want %v", repeats, want)
		}
	}
	if m.s.Seq != 4 || m.s.Phase != Firing || m.s.At != at(15*time.Second) {
		t.Fatalf("after reminders: %+v", m.s)
	}
	// Resolved alerts and rules without repeat are never reminded.
	m.expect(m.window(time.Hour, 0), Resolved, "resolve")
	if _, cs := Remind(m.s, r, at(5*time.Hour)); len(cs) != 0 {
		t.Fatalf("a resolved alert reminded: %+v", cs)
	}
	r.Repeat = 0
	s := State{Phase: Firing, Notified: t0}
	if _, cs := Remind(s, r, at(100*time.Hour)); len(cs) != 0 {
		t.Fatal("repeat 0 reminded")
	}
}

func TestOffline(t *testing.T) {
	r := &rules.Rule{Name: "offline", Kind: rules.Offline, After: 30 * time.Second, Severity: "warning", Channels: []string{"log"}}
	s := State{Rule: "offline", Site: "lab", Device: "lab-02", Phase: OK}
	lastSeen := at(0)
	step := func(now time.Duration, mayFire bool) Phase {
		t.Helper()
		var cs []Change
		s, cs = Silence(s, r, lastSeen, at(now), mayFire)
		if len(cs) == 0 {
			return ""
		}
		return cs[0].Phase
	}
	if p := step(29*time.Second, true); p != "" {
		t.Fatalf("29 s silent: %q", p)
	}
	if p := step(45*time.Second, false); p != "" {
		t.Fatalf("fired while catching up: %q", p)
	}
	if p := step(30*time.Second, true); p != Firing {
		t.Fatalf("30 s silent: %q", p)
	}
	if s.Since != lastSeen || s.Value != 30 || s.Threshold != 30 {
		t.Fatalf("firing state %+v", s)
	}
	if p := step(40*time.Second, true); p != "" {
		t.Fatalf("still silent: %q", p)
	}
	// Its next data resolves, even while catching up.
	lastSeen = at(50 * time.Second)
	if p := step(52*time.Second, false); p != Resolved {
		t.Fatalf("data again: %q", p)
	}
	if p := step(60*time.Second, true); p != "" {
		t.Fatalf("talking: %q", p)
	}
	if p := step(80*time.Second, true); p != Firing {
		t.Fatalf("silent again: %q", p)
	}
	if s.Seq != 3 {
		t.Fatalf("seq %d", s.Seq)
	}
}

func TestMessages(t *testing.T) {
	r := hot()
	r.For = 20 * time.Second
	m := newMachine(t, r)
	m.window(0, 41.234)
	out, err := Messages(m.s, r, m.changes)
	if err != nil {
		t.Fatal(err)
	}
	// Pending goes on ALERTS only.
	if len(out) != 1 || out[0].Subject != "alerts.warehouse.wh-01.hot" || out[0].ID != "hot.warehouse.wh-01.1" {
		t.Fatalf("pending outbox %+v", out)
	}
	m.changes = nil
	m.window(10*time.Second, 42)
	out, err = Messages(m.s, r, m.changes)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ subject, id string }{
		{"alerts.warehouse.wh-01.hot", "hot.warehouse.wh-01.2"},
		{"notifications.log", "hot.warehouse.wh-01.2.log"},
		{"notifications.ops", "hot.warehouse.wh-01.2.ops"},
	}
	if len(out) != len(want) {
		t.Fatalf("firing outbox %+v", out)
	}
	for i, w := range want {
		if out[i].Subject != w.subject || out[i].ID != w.id {
			t.Fatalf("message %d = %s %s, want %s %s", i, out[i].Subject, out[i].ID, w.subject, w.id)
		}
	}
	ev, err := reading.UnmarshalAlert(out[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.State != "firing" || ev.Value != 42 || ev.Threshold != 40 || ev.Since != at(0) || ev.At != at(25*time.Second) || ev.Severity != "critical" {
		t.Fatalf("event %+v", ev)
	}
	var n map[string]any
	if err := json.Unmarshal(out[1].Data, &n); err != nil {
		t.Fatal(err)
	}
	// The webhook schema of docs/alerting.md.
	for k, v := range map[string]any{"id": "hot.warehouse.wh-01.2", "rule": "hot", "site": "warehouse", "device": "wh-01",
		"state": "firing", "severity": "critical", "value": 42.0, "threshold": 40.0, "since": "2026-01-02T03:04:00Z",
		"at": "2026-01-02T03:04:25Z", "repeat": false, "kind": "threshold", "metric": "temperature", "aggregate": "mean",
		"window": "10s", "op": ">", "clear": 35.0, "seq": 2.0,
		"summary": "[critical] hot firing: warehouse/wh-01 temperature mean over 10s is 42 (> 40)"} {
		if n[k] != v {
			t.Errorf("notification %s = %#v, want %#v", k, n[k], v)
		}
	}
	// A reminder goes to the channels only.
	r.Repeat = time.Minute
	s, cs := Remind(m.s, r, at(2*time.Minute))
	out, _ = Messages(s, r, cs)
	if len(out) != 2 || !strings.HasPrefix(out[0].Subject, "notifications.") || out[0].ID != "hot.warehouse.wh-01.3.log" {
		t.Fatalf("reminder outbox %+v", out)
	}
	if !strings.Contains(string(out[0].Data), `"repeat":true`) || !strings.Contains(string(out[0].Data), "still firing") {
		t.Fatalf("reminder %s", out[0].Data)
	}
}

func TestSummary(t *testing.T) {
	r := hot()
	off := &rules.Rule{Name: "gone", Kind: rules.Offline, After: 30 * time.Second}
	tests := []struct {
		s    State
		r    *rules.Rule
		c    Change
		want string
	}{
		{State{Rule: "hot", Site: "a", Device: "b", Severity: "critical", Value: 42.3456}, r, Change{Phase: Firing},
			"[critical] hot firing: a/b temperature mean over 10s is 42.35 (> 40)"},
		{State{Rule: "hot", Site: "a", Device: "b", Severity: "critical", Value: 30}, r, Change{Phase: Resolved},
			"[critical] hot resolved: a/b temperature mean over 10s is 30 (clears below 35)"},
		{State{Rule: "gone", Site: "lab", Device: "lab-02", Severity: "warning", Value: 31.5}, off, Change{Phase: Firing},
			"[warning] gone firing: lab/lab-02 sent nothing for 31.5s (limit 30s)"},
		{State{Rule: "gone", Site: "lab", Device: "lab-02", Severity: "warning"}, off, Change{Phase: Resolved},
			"[warning] gone resolved: lab/lab-02 sends data again"},
	}
	for _, tt := range tests {
		if got := Summary(tt.s, tt.r, tt.c); got != tt.want {
			t.Errorf("Summary = %q\nwant      %q", got, tt.want)
		}
	}
}

// A firing alert is re-sent to the channels given every interval, counted
// from when it fired or was last re-sent; a re-send changes neither the
// phase nor the seq, is not on ALERTS, and has an ID of its own.
func TestResend(t *testing.T) {
	r := hot()
	m := newMachine(t, r)
	m.expect(m.window(0, 41), Firing, "breach") // at 15 s
	am := []string{"am"}
	var resends []time.Duration
	for tick := 16 * time.Second; tick <= 3*time.Minute+15*time.Second; tick += time.Second {
		var cs []Change
		m.s, cs = Resend(m.s, time.Minute, am, at(tick))
		for _, c := range cs {
			if !c.Resend || c.Repeat || c.Phase != Firing || c.Seq != 1 || strings.Join(c.Channels, ",") != "am" {
				t.Fatalf("re-send %+v", c)
			}
			resends = append(resends, tick)
			out, err := Messages(m.s, r, cs)
			if err != nil {
				t.Fatal(err)
			}
			wantID := "hot.warehouse.wh-01.1.r" + strconv.FormatInt(at(tick).UnixMilli(), 10) + ".am"
			if len(out) != 1 || out[0].Subject != "notifications.am" || out[0].ID != wantID {
				t.Fatalf("re-send outbox %+v, want one message %s", out, wantID)
			}
			var n Notification
			if err := json.Unmarshal(out[0].Data, &n); err != nil {
				t.Fatal(err)
			}
			if !n.Resend || n.State != "firing" || !n.At.Equal(at(tick)) || !strings.Contains(n.Summary, "hot firing:") {
				t.Fatalf("re-sent notification %+v", n)
			}
		}
	}
	want := []time.Duration{75 * time.Second, 135 * time.Second, 195 * time.Second}
	if fmt.Sprint(resends) != fmt.Sprint(want) {
		t.Fatalf("re-sent at %v, want %v", resends, want)
	}
	if m.s.Seq != 1 || m.s.Phase != Firing {
		t.Fatalf("after re-sends: %+v", m.s)
	}
	// Not while pending or resolved, nor without channels or an interval.
	m.expect(m.window(time.Hour, 0), Resolved, "resolve")
	if _, cs := Resend(m.s, time.Minute, am, at(5*time.Hour)); len(cs) != 0 {
		t.Fatalf("a resolved alert re-sent: %+v", cs)
	}
	s := State{Phase: Firing, At: t0}
	if _, cs := Resend(s, 0, am, at(time.Hour)); len(cs) != 0 {
		t.Fatal("interval 0 re-sent")
	}
	if _, cs := Resend(s, time.Minute, nil, at(time.Hour)); len(cs) != 0 {
		t.Fatal("no channel re-sent")
	}
	// A change with its own channels goes to those only.
	r.Repeat = time.Minute
	s = State{Rule: "hot", Site: "a", Device: "b", Phase: Firing, Notified: t0, Seq: 1}
	s, cs := Remind(s, r, at(time.Hour))
	cs[0].Channels = []string{"ops"}
	out, _ := Messages(s, r, cs)
	if len(out) != 1 || out[0].Subject != "notifications.ops" {
		t.Fatalf("reminder to its channels: %+v", out)
	}
}
