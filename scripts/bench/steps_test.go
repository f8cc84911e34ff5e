package main

import (
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	ok := Outcome{Rate: 10000, PublishRate: 9950, Acked: 600000, Counted: 600000, DrainSeconds: 0.4, MaxLag: 5}
	if pass, reasons := judge(ok); !pass || reasons != nil {
		t.Fatalf("clean step: pass=%v %v", pass, reasons)
	}
	for name, c := range map[string]struct {
		mutate func(*Outcome)
		want   string
	}{
		"loss":           {func(o *Outcome) { o.Counted = 599990 }, "lost 10"},
		"duplicates":     {func(o *Outcome) { o.Counted = 600003 }, "3 duplicates"},
		"unacknowledged": {func(o *Outcome) { o.Failed = 7 }, "7 publishes not acknowledged"},
		"slow publisher": {func(o *Outcome) { o.PublishRate = 9000 }, "published only 9000 of 10000"},
		"slow drain":     {func(o *Outcome) { o.DrainSeconds = 12.5 }, "drained 12.5s after"},
		"no drain":       {func(o *Outcome) { o.DrainSeconds = -1 }, "never drained"},
		"reconnects":     {func(o *Outcome) { o.ConnectionLosses = 1 }, "connections lost"},
	} {
		o := ok
		c.mutate(&o)
		pass, reasons := judge(o)
		if pass || !strings.Contains(strings.Join(reasons, "; "), c.want) {
			t.Errorf("%s: pass=%v reasons %v, want %q", name, pass, reasons, c.want)
		}
	}
}

func TestSustainedIsTheLastOfAnUnbrokenRun(t *testing.T) {
	steps := func(pass ...bool) []Step {
		var s []Step
		for i, p := range pass {
			s = append(s, Step{Rate: float64(5000 * (i + 1)), Pass: p})
		}
		return s
	}
	for _, c := range []struct {
		steps []Step
		want  int
	}{
		{steps(true, true, false), 1},
		{steps(true, false, true), 0}, // a pass above a failure does not count
		{steps(false, true), -1},
		{nil, -1},
		{steps(true, true, true), 2},
	} {
		if got := sustained(c.steps); got != c.want {
			t.Errorf("%v: got %d, want %d", c.steps, got, c.want)
		}
	}
}

func TestEvaluateTargets(t *testing.T) {
	r := &Result{
		Raw:     RawLeg{Rate: 25000},
		Roles:   map[string]string{"ingest": "service", "processor": "service", "influxd": "server"},
		IdleRSS: map[string]int64{"ingest": 15 << 20, "processor": 25 << 20, "influxd": 80 << 20},
		Steps: []Step{
			{Rate: 5000, Pass: true, AckP99Ms: 4, WindowP99S: 0.2, Usage: map[string]Usage{"ingest": {RSSMaxBytes: 20 << 20}}},
			{Rate: 20000, Pass: true, AckP99Ms: 9, WindowP99S: 0.8,
				Usage: map[string]Usage{"ingest": {RSSMaxBytes: 30 << 20}, "processor": {RSSMaxBytes: 50 << 20}}},
			{Rate: 25000, Pass: false, Loss: 3},
		},
	}
	r.evaluate()
	if r.Sustained != 20000 || r.Ratio != 0.8 {
		t.Fatalf("sustained %v ratio %v", r.Sustained, r.Ratio)
	}
	met := map[string]bool{}
	for _, tg := range r.Targets {
		met[tg.Name] = tg.Met
	}
	for name, want := range map[string]bool{
		"sustained end to end":                             true,
		"ratio to the raw MQTT leg":                        true,
		"loss and duplicates, every step":                  false, // the failed step lost 3
		"ingest RSS idle":                                  true,
		"processor RSS idle":                               false,
		"ingest RSS at the sustained rate":                 true,
		"processor RSS at the sustained rate":              false,
		"MQTT receipt → JetStream ack p99 at 5,000 msgs/s": true,
		"window end → InfluxDB p99 at the sustained rate":  true,
	} {
		if got, ok := met[name]; !ok || got != want {
			t.Errorf("%s: met=%v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, ok := met["influxd RSS idle"]; ok {
		t.Error("the RSS targets are for our services, not InfluxDB")
	}
}

func TestParseSteps(t *testing.T) {
	got, err := parseSteps("5000, 10000,15000")
	if err != nil || len(got) != 3 || got[2] != 15000 {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"", "5000,x", "10000,5000", "0", "-5"} {
		if _, err := parseSteps(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEvaluateWithoutLatencyObservationsIsNotMet(t *testing.T) {
	r := &Result{Raw: RawLeg{Rate: 10000}, Steps: []Step{{Rate: 5000, Pass: true, AckP99Ms: -1, WindowP99S: -1, CloseDelayP99S: -1}}}
	r.evaluate()
	for _, tg := range r.Targets {
		if strings.Contains(tg.Name, "p99") && tg.Met {
			t.Errorf("%s met without observations (got %s)", tg.Name, tg.Got)
		}
	}
}
