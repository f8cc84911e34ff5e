package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestRateLine(t *testing.T) {
	byCount := DefaultConfig()
	byCount.Count = 24000
	byTime := DefaultConfig()
	byTime.Duration = time.Minute
	both := byCount
	both.Duration = 20 * time.Second
	for _, tc := range []struct {
		name     string
		cfg      Config
		c, prev  Counts
		dt, el   time.Duration
		draining bool
		want     string
	}{
		{"count: a quarter done in 6s leaves 18s", byCount, Counts{Sent: 6100, Attempted: 6000, Acked: 5900, Failed: 2}, Counts{Sent: 2100},
			2 * time.Second, 6 * time.Second, false,
			"sent 6100, acked 5900, failed 2, 2000 msgs/s, 6000/24000 messages, about 18s left"},
		{"count: nothing sent yet, no estimate", byCount, Counts{}, Counts{}, 5 * time.Second, 5 * time.Second, false,
			"sent 0, acked 0, failed 0, 0 msgs/s, 0/24000 messages"},
		{"duration: what is left of it", byTime, Counts{Sent: 5000, Acked: 5000}, Counts{}, 5 * time.Second, 5 * time.Second, false,
			"sent 5000, acked 5000, failed 0, 1000 msgs/s, about 55s left"},
		{"duration past: 0s", byTime, Counts{Sent: 5}, Counts{Sent: 5}, time.Second, 2 * time.Minute, false,
			"sent 5, acked 0, failed 0, 0 msgs/s, about 0s left"},
		{"both: the first to end", both, Counts{Sent: 1000, Attempted: 1000}, Counts{}, 10 * time.Second, 10 * time.Second, false,
			"sent 1000, acked 0, failed 0, 100 msgs/s, 1000/24000 messages, about 10s left"},
		{"draining: what is still in flight, no estimate", byCount, Counts{Sent: 24000, Attempted: 24000, Acked: 23000, Failed: 10}, Counts{Sent: 24000},
			5 * time.Second, 30 * time.Second, true,
			"sent 24000, acked 23000, failed 10, 0 msgs/s, draining 990 unacknowledged"},
	} {
		if got := rateLine(tc.cfg, tc.c, tc.prev, tc.dt, tc.el, tc.draining); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// Run writes a rate line at each tick while it publishes, on the clock it is given,
// and counts in it what it publishes.
func TestRunWritesRateLines(t *testing.T) {
	b := startMosquitto(t)
	cfg := testConfig(b.URL)
	cfg.Devices, cfg.Rate, cfg.Duration = 10, 500, 3*time.Second
	gen, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	clock := func() time.Time { return t0 }
	ticks := make(chan time.Time)
	var out bytes.Buffer // written by the reporter only, read after it stopped
	gen.SetProgress(Progress{W: &out, Ticks: ticks, Now: clock})

	done := make(chan Report, 1)
	go func() {
		rep, err := gen.Run(t.Context())
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	// A tick is taken only while the run publishes or drains (the reporter exists
	// from the first publish to the end of the drain); the run lasts 3 s. The first
	// tick carries the reporter's start on its clock, the second a second later.
	for _, at := range []time.Duration{0, time.Second} {
		select {
		case ticks <- t0.Add(at):
		case <-done:
			t.Fatal("the run ended before taking two ticks")
		}
	}
	rep := <-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^loadgen: sent \d+, acked \d+, failed 0, \d+ msgs/s, about 3s left, elapsed 0s$`),
		regexp.MustCompile(`^loadgen: sent \d+, acked \d+, failed 0, \d+ msgs/s, about 2s left, elapsed 1s$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("rate lines %q, want %d", lines, len(want))
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("rate line %q, want it to match %s", lines[i], re)
		}
	}
	if rep.Totals.Acked == 0 || rep.Totals.Failed != 0 {
		t.Fatalf("totals %+v", rep.Totals)
	}
}

// The rate line goes to stderr, never into the summary on stdout, and -progress 0
// turns it off.
func TestProgressFlag(t *testing.T) {
	b := startMosquitto(t)
	for _, tc := range []struct {
		every string
		lines bool
	}{{"50ms", true}, {"0", false}} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"-broker", b.URL, "-devices", "4", "-rate", "400", "-duration", "1s",
			"-client-prefix", "progress-flag", "-progress", tc.every}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("-progress %s: exit %d\n%s", tc.every, code, stderr.String())
		}
		if got := strings.Contains(stderr.String(), "loadgen: sent "); got != tc.lines {
			t.Errorf("-progress %s: rate lines on stderr %v, want %v:\n%s", tc.every, got, tc.lines, stderr.String())
		}
		if strings.Contains(stdout.String(), "loadgen: sent ") || !strings.Contains(stdout.String(), "failed 0") {
			t.Errorf("-progress %s: stdout is not the summary alone:\n%s", tc.every, stdout.String())
		}
	}
}
