package window

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// A checkpoint taken with 10s and 1m windows loads into a State computing
// 10s and 5m windows (a rolling change of EDGEFLOW_PROCESSOR_WINDOWS): the
// kept 10s windows go on exactly, the new 5m windows start at the first 5m
// boundary after the device's newest reading (the one the switch fell in
// would lack the readings before it), and the removed 1m length's open
// window is dropped and reported.
func TestReconfigureKeepsAddsAndRemovesLengths(t *testing.T) {
	oldCfg, newCfg := testConfig(), testConfig()
	newCfg.Sizes = []time.Duration{10 * time.Second, 5 * time.Minute}

	counts := map[string]int64{} // "10s@80s" → count
	collect := func(s *State, now int64) {
		for _, a := range s.CloseDue(wall(now), false) {
			counts[a.Window+"@"+dur(a.Start-t0)] += a.Metrics["t"].Count
		}
	}
	add := func(s *State, ts int64) {
		t.Helper()
		if late, _ := s.Add(temp(ts, 1)); late != nil {
			t.Fatalf("reading at t0+%s late for %v", dur(ts-t0), late)
		}
		collect(s, ts)
	}

	before := NewState(oldCfg)
	for sec := range int64(91) { // t0 … t0+90s
		add(before, t0+sec*1_000)
	}
	data, err := before.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	after := NewState(newCfg)
	r, err := after.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Added, []time.Duration{5 * time.Minute}) || !slices.Equal(r.Removed, []time.Duration{time.Minute}) || r.Dropped != 1 {
		t.Fatalf("reported %+v; want 5m added, 1m removed, its window at t0+1m dropped", r)
	}
	var log strings.Builder
	slog.New(slog.NewJSONHandler(&log, nil)).Warn("changed", "change", r)
	if want := `"change":{"from":"windows [10s 1m0s], lateness 5s, idle grace 5s, forget after 24h0m0s",` +
		`"to":"windows [10s 5m0s], lateness 5s, idle grace 5s, forget after 24h0m0s","added":"[5m0s]","removed":"[1m0s]","dropped_windows":1}`; !strings.Contains(log.String(), want) {
		t.Errorf("logged %s\nwant %s", log.String(), want)
	}
	if after.Open() != 2 { // 10s at 80 s and 90 s; no 5m yet
		t.Fatalf("%d windows open after the switch, want 2", after.Open())
	}
	add(after, t0+88_500) // within lateness: counts in the open 10s window; before the 5m start, not late
	for sec := int64(91); sec <= 700; sec++ {
		add(after, t0+sec*1_000)
	}
	for _, a := range flushAll(after) {
		counts[a.Window+"@"+dur(a.Start-t0)] += a.Metrics["t"].Count
	}

	want := map[string]int64{"1m@0s": 60, "5m@5m0s": 300, "5m@10m0s": 101}
	for start := int64(0); start < 700_000; start += 10_000 {
		want["10s@"+dur(start)] = 10
	}
	want["10s@1m20s"] = 11
	want["10s@11m40s"] = 1
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("window %s counts %d, want %d", k, counts[k], n)
		}
	}
	for k, n := range counts {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected window %s (count %d)", k, n)
		}
	}
}

// lengthRun is what a run emitted for one window length: its closed windows
// and late readings in order (as in run), and the same lines as a set.
type lengthRun struct {
	lines string
	set   map[string]bool
}

// runByLength feeds steps to s like run, and splits what it emitted by
// window length.
func runByLength(s *State, steps []step) map[string]*lengthRun {
	out := map[string]*lengthRun{}
	emit := func(window, line string) {
		r := out[window]
		if r == nil {
			r = &lengthRun{set: map[string]bool{}}
			out[window] = r
		}
		r.lines += line
		r.set[line] = true
	}
	for _, st := range steps {
		switch {
		case st.close:
			for _, a := range s.CloseDue(wall(st.now), st.caughtUp) {
				emit(a.Window, fingerprint([]reading.Aggregate{a}))
			}
		case st.r == nil:
			s.Listen(time.Duration(st.listen) * time.Millisecond)
		default:
			late, _ := s.Add(*st.r)
			for _, d := range late {
				emit(reading.WindowName(d), fmt.Sprintf("late %s/%s %d\n", st.r.Site, st.r.Device, st.r.TS))
			}
		}
	}
	return out
}

// Wherever the switch falls in a stream (several devices, skewed clocks,
// readings beyond the lateness, silences; no replays: how long a duplicate
// is recognised depends on the lengths, package comment "Duplicates"), the
// kept length emits bit for bit
// what a run that never switched emits, and every window and late reading
// of the added length is one a run with the new configuration from the
// start has too: an added length's window holds every reading of its span.
func TestReconfigureAnywhereKeepsResultsExact(t *testing.T) {
	oldCfg, newCfg := testConfig(), testConfig()
	newCfg.Sizes = []time.Duration{10 * time.Second, 25 * time.Second} // 25 s: not aligned with 1 min
	steps := append(withoutReplays(randomSteps(5, 600)), step{close: true, now: MaxTS, caughtUp: true})
	kept := runByLength(NewState(oldCfg), steps)["10s"].lines
	added := runByLength(NewState(newCfg), steps)["25s"].set
	var addedAfter int
	for k := range len(steps) + 1 {
		before := NewState(oldCfg)
		got := runByLength(before, steps[:k])
		data, err := before.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		after := NewState(newCfg)
		if _, err := after.Load(data); err != nil {
			t.Fatalf("split %d: %v", k, err)
		}
		rest := runByLength(after, steps[k:])
		var gotKept string
		for _, r := range []*lengthRun{got["10s"], rest["10s"]} {
			if r != nil {
				gotKept += r.lines
			}
		}
		if gotKept != kept {
			t.Fatalf("split %d: the kept 10s length differs from a run without the switch\ngot:\n%s\nwant:\n%s", k, gotKept, kept)
		}
		if r := rest["25s"]; r != nil {
			for line := range r.set {
				if !added[line] {
					t.Fatalf("split %d: the added 25s length emitted %q, which a run with 25s windows from the start does not", k, line)
				}
			}
			addedAfter += len(r.set)
		}
	}
	if addedAfter < 2*len(steps) {
		t.Fatalf("the added length emitted %d lines over %d splits: the test proves little", addedAfter, len(steps)+1)
	}
}

// A change of lateness, idle grace or forgetting horizon alone carries
// every window over and is reported.
func TestReconfigureOtherSettings(t *testing.T) {
	s := NewState(testConfig())
	s.Add(temp(t0+1_000, 1))
	data, _ := s.MarshalBinary()
	cfg := testConfig()
	cfg.Lateness, cfg.IdleGrace, cfg.ForgetAfter = 20*time.Second, time.Minute, 48*time.Hour
	loaded := NewState(cfg)
	r, err := loaded.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Changed() || r.Added != nil || r.Removed != nil || r.Dropped != 0 || r.From.Lateness != DefaultLateness || r.To.Lateness != cfg.Lateness {
		t.Fatalf("reported %+v", r)
	}
	if loaded.Open() != 2 || loaded.lateness != 20_000 || loaded.Config().ForgetAfter != 48*time.Hour {
		t.Fatalf("%d windows, lateness %d ms, config %+v", loaded.Open(), loaded.lateness, loaded.Config())
	}
}

// A reading dated in the future sits in an open window past the device's
// time (package comment, "Device clocks"): a length added then starts after
// it too, or its window there would lack it.
func TestReconfigureAfterAFutureReading(t *testing.T) {
	before := NewState(testConfig())
	for sec := range int64(31) {
		before.Add(temp(t0+sec*1_000, 1))
	}
	future := temp(t0+310_000, 1) // 4 min 50 s ahead of its arrival
	future.Received = t0 + 20_000
	before.Add(future)
	data, _ := before.MarshalBinary()
	cfg := testConfig()
	cfg.Sizes = []time.Duration{10 * time.Second, 5 * time.Minute}
	after := NewState(cfg)
	if _, err := after.Load(data); err != nil {
		t.Fatal(err)
	}
	for sec := int64(31); sec <= 700; sec++ {
		if late, _ := after.Add(temp(t0+sec*1_000, 1)); late != nil {
			t.Fatalf("reading at t0+%ds late for %v", sec, late)
		}
	}
	for _, a := range flushAll(after) {
		if a.Window == "5m" && a.Start < t0+600_000 {
			t.Errorf("5m window at t0+%s opened: it lacks the reading at t0+5m10s folded before the switch", dur(a.Start-t0))
		}
	}
}
