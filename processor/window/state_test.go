package window

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

var (
	s10 = 10 * time.Second
	m1  = time.Minute
)

func TestWindowBoundaries(t *testing.T) {
	tests := []struct {
		name             string
		ts               int64
		start10, start1m int64
	}{
		{"exactly at a minute start", t0, t0, t0},
		{"last ms of the first 10s", t0 + 9_999, t0, t0},
		{"exactly at the next 10s start", t0 + 10_000, t0 + 10_000, t0},
		{"last ms of the minute", t0 + 59_999, t0 + 50_000, t0},
		{"exactly at the next minute", t0 + 60_000, t0 + 60_000, t0 + 60_000},
		{"epoch", 0, 0, 0},
		{"before the epoch", -1, -10_000, -60_000},
		{"exactly at a negative start", -10_000, -10_000, -60_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState(testConfig())
			if late, _ := s.Add(temp(tt.ts, 1)); late != nil {
				t.Fatalf("first reading late for %v", late)
			}
			aggs := flushAll(s)
			if len(aggs) != 2 {
				t.Fatalf("got %d aggregates, want 2:\n%s", len(aggs), fingerprint(aggs))
			}
			a10 := find(t, aggs, "lab", "d1", "10s", tt.start10)
			a1m := find(t, aggs, "lab", "d1", "1m", tt.start1m)
			if a10.End != tt.start10+10_000 || a1m.End != tt.start1m+60_000 {
				t.Fatalf("ends %d, %d; want start + size", a10.End, a1m.End)
			}
		})
	}
}

// event is one step of a scripted test: a reading with the lengths it must
// be late for, or a Listen and CloseDue call with the windows it must close.
type event struct {
	ts       int64 // reading at ts (Received = ts)
	wantLate []time.Duration
	// closing, after listening for listen ms (Listen)
	close    bool
	listen   int64
	now      int64
	caughtUp bool
	closes   []string // "window@start-t0", e.g. "10s@0"
}

func playEvents(t *testing.T, s *State, events []event) {
	t.Helper()
	for i, e := range events {
		if e.close {
			s.Listen(time.Duration(e.listen) * time.Millisecond)
			var got []string
			for _, a := range s.CloseDue(wall(e.now), e.caughtUp) {
				got = append(got, a.Window+"@"+dur(a.Start-t0))
			}
			if !slices.Equal(got, e.closes) {
				t.Fatalf("step %d: CloseDue closed %v, want %v", i, got, e.closes)
			}
			continue
		}
		if late, _ := s.Add(temp(e.ts, 1)); !slices.Equal(late, e.wantLate) {
			t.Fatalf("step %d: Add(ts=t0%+d) late for %v, want %v", i, e.ts-t0, late, e.wantLate)
		}
	}
}

// dur renders a span of milliseconds, such as "10s".
func dur(ms int64) string { return time.Duration(ms * int64(time.Millisecond)).String() }

func TestLateness(t *testing.T) {
	both := []time.Duration{s10, m1}
	tests := []struct {
		name   string
		cfg    func(*Config)
		events []event
	}{
		{"in order", nil, []event{{ts: t0}, {ts: t0 + 10_000}, {ts: t0 + 60_000}}},
		{"earlier window within lateness", nil, []event{
			{ts: t0 + 12_000}, {ts: t0 + 9_000},
			{ts: t0 + 14_999}, {ts: t0 + 9_999}, // watermark t0+9999 < end t0+10000
		}},
		{"watermark exactly at the window end", nil, []event{
			{ts: t0 + 15_000}, {ts: t0 + 9_999, wantLate: []time.Duration{s10}},
			{ts: t0 + 10_000}, // next window still open
		}},
		{"late for 10s but not for 1m", nil, []event{
			{ts: t0 + 40_000}, {ts: t0 + 1_000, wantLate: []time.Duration{s10}},
		}},
		{"late for both", nil, []event{
			{ts: t0 + 65_000}, {ts: t0 + 59_999, wantLate: both}, {ts: t0 + 60_000},
		}},
		{"closed by event time, then late", nil, []event{
			{ts: t0 + 1_000}, {ts: t0 + 15_000},
			{close: true, now: t0, closes: []string{"10s@0s"}},
			{ts: t0 + 9_000, wantLate: []time.Duration{s10}},
		}},
		{"zero lateness", func(c *Config) { c.Lateness = 0 }, []event{
			{ts: t0 + 10_000}, {ts: t0 + 9_999, wantLate: []time.Duration{s10}}, {ts: t0 + 10_000},
		}},
		{"closed for silence, then late", nil, []event{
			{ts: t0 + 1_000},
			{close: true, listen: 18_999, caughtUp: true},
			{close: true, listen: 1, caughtUp: true, closes: []string{"10s@0s"}},
			{ts: t0 + 2_000, wantLate: []time.Duration{s10}},
			{ts: t0 + 10_000},
		}},
		{"out of range event time", nil, []event{
			{ts: MaxTS + 1, wantLate: both}, {ts: MinTS - 1, wantLate: both}, {ts: MinTS}, {ts: MaxTS},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			playEvents(t, NewState(cfg), tt.events)
		})
	}
}

func TestOutOfOrderWithinLatenessGivesSameResult(t *testing.T) {
	var in []reading.Reading
	for i := range 40 {
		in = append(in, rd("lab", "d1", t0+int64(i)*700, map[string]float64{"t": float64(i) * 0.1, "h": float64(40 - i)}))
	}
	want := wantAggs(in)
	if len(want) != 4 {
		t.Fatalf("in order: %d aggregates, want 3 of 10s and 1 of 1m", len(want))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		// Shuffle within blocks of 5 readings (2.8 s apart at most, less
		// than the 5 s lateness).
		shuffled := slices.Clone(in)
		for b := 0; b < len(shuffled); b += 5 {
			blk := shuffled[b:min(b+5, len(shuffled))]
			rng.Shuffle(len(blk), func(i, j int) { blk[i], blk[j] = blk[j], blk[i] })
		}
		s := NewState(testConfig())
		for _, r := range shuffled {
			if late, _ := s.Add(r); late != nil {
				t.Fatalf("reading %d late for %v", r.TS-t0, late)
			}
		}
		// A sum may differ in the last bit with the order of addition:
		// compare it approximately, everything else exactly.
		got := flushAll(s)
		if len(got) != len(want) {
			t.Fatalf("got %d aggregates, want %d", len(got), len(want))
		}
		for _, a := range got {
			for name, st := range a.Metrics {
				w := find(t, want, a.Site, a.Device, a.Window, a.Start).Metrics[name]
				sum := st.Sum
				st.Sum, st.Mean = w.Sum, w.Mean
				if st != w || math.Abs(sum-w.Sum) > 1e-9 {
					t.Fatalf("%s@%d %s = %+v (sum %v), want %+v", a.Window, a.Start-t0, name, st, sum, w)
				}
			}
		}
	}
}

// wantAggs is the result of adding in in order and flushing.
func wantAggs(in []reading.Reading) []reading.Aggregate {
	s := NewState(testConfig())
	for _, r := range in {
		s.Add(r)
	}
	return flushAll(s)
}

func TestFirstLastByEventTime(t *testing.T) {
	s := NewState(testConfig())
	for _, r := range []struct {
		ts int64
		v  float64
	}{
		{5_000, 1},
		{2_000, 2}, // earliest so far
		{2_000, 3}, // tie: the first added stays first
		{7_000, 4}, // latest so far
		{7_000, 5}, // tie: the last added becomes last
		{6_000, 6},
		{2_500, 0},
	} {
		s.Add(temp(t0+r.ts, r.v))
	}
	for _, a := range flushAll(s) {
		got := a.Metrics["t"]
		want := reading.Stats{Count: 7, Sum: 21, Min: 0, Max: 6, Mean: 3, First: 2, Last: 5}
		if got != want {
			t.Errorf("%s: %+v, want %+v", a.Window, got, want)
		}
	}
}

func TestSingleNegativeZeroKeepsItsSign(t *testing.T) {
	s := NewState(testConfig())
	s.Add(temp(t0, math.Copysign(0, -1)))
	st := flushAll(s)[0].Metrics["t"]
	for name, v := range map[string]float64{"sum": st.Sum, "min": st.Min, "first": st.First} {
		if !math.Signbit(v) {
			t.Errorf("%s lost the sign of -0", name)
		}
	}
}

func TestIdleClosing(t *testing.T) {
	const ts = t0 + 3_000 // 10s window [t0, t0+10s), due after 17 s of silence
	tests := []struct {
		name     string
		skew     int64 // Received − ts
		listen   []int64
		caughtUp bool
		want     int // windows closed
	}{
		{"not caught up: silence is ignored", 0, []int64{600_000}, false, 0},
		{"caught up, 1 ms early", 0, []int64{16_999}, true, 0},
		{"caught up, exactly due", 0, []int64{17_000}, true, 1},
		{"silence adds up", 0, []int64{5_000, 0, 12_000}, true, 1},
		{"caught up, 1m due too", 0, []int64{67_000}, true, 2},
		// Silence is the worker's listening time, so the device's clock
		// and the time its reading took to arrive do not matter.
		{"device clock 40s behind", 40_000, []int64{17_000}, true, 1},
		{"device clock 30s ahead", -30_000, []int64{16_999}, true, 0},
		{"reading held up for a minute", 60_000, []int64{16_999}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState(testConfig())
			s.Listen(time.Hour) // listened before the device's first reading: not its silence
			r := temp(ts, 1)
			r.Received = ts + tt.skew
			s.Add(r)
			for _, ms := range tt.listen {
				s.Listen(time.Duration(ms) * time.Millisecond)
			}
			got := s.CloseDue(wall(ts), tt.caughtUp)
			if len(got) != tt.want {
				t.Fatalf("closed %d windows, want %d:\n%s", len(got), tt.want, fingerprint(got))
			}
			if s.Open() != 2-tt.want {
				t.Fatalf("Open() = %d, want %d", s.Open(), 2-tt.want)
			}
		})
	}
}

// The wall clock alone closes nothing: a worker that was blocked, or reading
// a backlog, for an hour has not heard its devices fall silent.
func TestWallClockAloneIsNotSilence(t *testing.T) {
	s := NewState(testConfig())
	s.Add(temp(t0+1_000, 1))
	if got := s.CloseDue(wall(t0+3_600_000), true); len(got) != 0 {
		t.Fatalf("an hour of wall clock without listening closed:\n%s", fingerprint(got))
	}
	// The backlog read afterwards holds the device's next readings: none is late.
	for ts := t0 + 2_000; ts < t0+30_000; ts += 1_000 {
		if late, _ := s.Add(temp(ts, 1)); late != nil {
			t.Fatalf("reading at %s late for %v", dur(ts-t0), late)
		}
	}
}

// A reading restarts its device's silence; other devices stay silent.
func TestReadingRestartsSilence(t *testing.T) {
	s := NewState(testConfig())
	s.Add(rd("lab", "quiet", t0+1_000, map[string]float64{"t": 1}))
	s.Add(rd("lab", "busy", t0+1_000, map[string]float64{"t": 1}))
	s.Listen(16 * time.Second)
	s.Add(rd("lab", "busy", t0+1_500, map[string]float64{"t": 2})) // device clock way behind: silence, not event time, restarts
	s.Listen(3_000 * time.Millisecond)
	got := s.CloseDue(wall(0), true)
	if len(got) != 1 || got[0].Device != "quiet" || got[0].Window != "10s" {
		t.Fatalf("closed, want only quiet's 10s window (silent 19 s):\n%s", fingerprint(got))
	}
}

func TestIdleClosingOnlyClosesSilentDevices(t *testing.T) {
	// An active device whose clock lags 2 minutes behind ingest keeps its
	// current windows open under caught-up closing; a silent one closes.
	s := NewState(testConfig())
	s.Add(rd("lab", "silent", t0+1_000, map[string]float64{"t": 1}))
	silentClosed := 0
	for i := range int64(90) {
		ts := t0 + i*1_000
		r := rd("lab", "lagging", ts, map[string]float64{"t": 1})
		r.Received = ts + 120_000
		s.Listen(time.Second)
		if late, _ := s.Add(r); late != nil {
			t.Fatalf("reading %d of a lagging but active device late for %v", i, late)
		}
		for _, a := range s.CloseDue(wall(r.Received), true) {
			if a.Device == "silent" {
				silentClosed++
			} else if a.End > ts-5_000 {
				t.Fatalf("closed a window the lagging device may still fill: %s@%s at ts %s", a.Window, dur(a.Start-t0), dur(ts-t0))
			}
		}
	}
	if silentClosed != 2 {
		t.Fatalf("closed %d windows of the silent device, want 2", silentClosed)
	}
}

func TestMultipleDevicesAndMetrics(t *testing.T) {
	s := NewState(testConfig())
	s.Add(rd("site-b", "x", t0+1_000, map[string]float64{"t": 10, "h": 50}))
	s.Add(rd("site-a", "y", t0+2_000, map[string]float64{"t": 20}))
	s.Add(rd("site-a", "x", t0+3_000, map[string]float64{"p": 1013}))
	s.Add(rd("site-b", "x", t0+4_000, map[string]float64{"t": 12}))
	s.Add(rd("site-a", "x", t0+12_000, map[string]float64{"p": 1000})) // next 10s window
	got := flushAll(s)
	var order []string
	for _, a := range got {
		order = append(order, a.Window+" "+a.Site+"/"+a.Device+" "+dur(a.Start-t0))
	}
	want := []string{
		"10s site-a/x 0s", "10s site-a/y 0s", "10s site-b/x 0s",
		"10s site-a/x 10s",
		"1m site-a/x 0s", "1m site-a/y 0s", "1m site-b/x 0s",
	}
	if !slices.Equal(order, want) {
		t.Fatalf("order\n%q\nwant\n%q", order, want)
	}
	bx := find(t, got, "site-b", "x", "10s", t0)
	if len(bx.Metrics) != 2 || bx.Metrics["t"].Count != 2 || bx.Metrics["t"].Mean != 11 || bx.Metrics["h"].Count != 1 {
		t.Fatalf("site-b/x 10s metrics %+v", bx.Metrics)
	}
	ax := find(t, got, "site-a", "x", "1m", t0)
	if p := ax.Metrics["p"]; len(ax.Metrics) != 1 || p.Count != 2 || p.First != 1013 || p.Last != 1000 || p.Min != 1000 {
		t.Fatalf("site-a/x 1m metrics %+v", ax.Metrics)
	}
}

func TestCloseTimingDoesNotChangeResults(t *testing.T) {
	for seed := range uint64(20) {
		var readings []step
		for _, st := range randomSteps(seed, 400) {
			if st.r != nil {
				readings = append(readings, st)
			}
		}
		// Close after every reading, at random points, or only at the end:
		// without the wall clock, the results must be the same.
		rng := rand.New(rand.NewPCG(seed, 7))
		var results []string
		for _, every := range []int{1, 0, -1} {
			s := NewState(testConfig())
			var out []reading.Aggregate
			var late []string
			for _, st := range readings {
				if l, _ := s.Add(*st.r); l != nil {
					late = append(late, dur(st.r.TS-t0)+fmtSizes(l))
				}
				if every == 1 || every == -1 && rng.IntN(10) == 0 {
					out = append(out, s.CloseDue(wall(0), false)...)
				}
			}
			out = append(out, flushAll(s)...)
			slices.SortStableFunc(out, compareAggregates)
			results = append(results, fingerprint(out)+fmtStrings(late))
		}
		if results[0] != results[1] || results[1] != results[2] {
			t.Fatalf("seed %d: results depend on when CloseDue is called", seed)
		}
	}
}

func fmtSizes(ds []time.Duration) string {
	out := ""
	for _, d := range ds {
		out += " " + d.String()
	}
	return out
}

func fmtStrings(ss []string) string {
	out := ""
	for _, s := range ss {
		out += s + "\n"
	}
	return out
}

// TestExactness checks published = counted: per length and metric, the
// counts of all closed windows plus the late readings equal the readings.
func TestExactness(t *testing.T) {
	cfg := testConfig()
	for seed := range uint64(20) {
		s := NewState(cfg)
		added := map[string]int64{}
		counted := map[string]int64{}
		lateN, dups := 0, 0
		for _, st := range randomSteps(seed, 1000) {
			if st.close {
				for _, a := range s.CloseDue(wall(st.now), st.caughtUp) {
					for name, m := range a.Metrics {
						counted[a.Window+" "+name] += m.Count
					}
				}
				continue
			}
			if st.r == nil {
				s.Listen(time.Duration(st.listen) * time.Millisecond)
				continue
			}
			late, dup := s.Add(*st.r)
			if dup {
				if late != nil {
					t.Fatalf("seed %d: a duplicate reported late", seed)
				}
				dups++
				continue
			}
			for _, d := range cfg.Sizes {
				for name := range st.r.Metrics {
					added[reading.WindowName(d)+" "+name]++
					if slices.Contains(late, d) {
						counted[reading.WindowName(d)+" "+name]++
					}
				}
			}
			if late != nil {
				lateN++
			}
		}
		for _, a := range flushAll(s) {
			for name, m := range a.Metrics {
				counted[a.Window+" "+name] += m.Count
			}
		}
		if s.Open() != 0 {
			t.Fatalf("seed %d: %d windows open after flushing", seed, s.Open())
		}
		if lateN == 0 || dups == 0 {
			t.Fatalf("seed %d: the stream has %d late readings and %d duplicates; the test proves little", seed, lateN, dups)
		}
		for k, n := range added {
			if counted[k] != n {
				t.Errorf("seed %d %s: closed + late = %d, added %d", seed, k, counted[k], n)
			}
		}
	}
}

func TestForgetting(t *testing.T) {
	cfg := testConfig()
	cfg.ForgetAfter = time.Hour
	hour := int64(3_600_000)
	events := []event{
		{ts: t0 + 1_000},
		{close: true, listen: 69_000, now: t0 + 70_000, caughtUp: true, closes: []string{"10s@0s", "1m@0s"}},
		// One ms before the horizon (closed-until t0+60s, horizon now-1h).
		{close: true, now: t0 + 60_000 + hour - 1, caughtUp: true},
	}
	s := NewState(cfg)
	playEvents(t, s, events)
	if s.Devices() != 1 {
		t.Fatalf("device forgotten too early")
	}
	// Not caught up: nothing is forgotten.
	s.CloseDue(wall(t0+10*hour), false)
	if s.Devices() != 1 {
		t.Fatalf("device forgotten while not caught up")
	}
	s.CloseDue(wall(t0+60_000+hour), true)
	if s.Devices() != 0 {
		t.Fatalf("device not forgotten at the horizon")
	}
	// The floor keeps the published windows closed, for this device and
	// any other device not tracked.
	playEvents(t, s, []event{
		{ts: t0 + 2_000, wantLate: []time.Duration{s10, m1}},
		{ts: t0 + 59_000, wantLate: []time.Duration{s10, m1}},
		{ts: t0 + 60_000},
	})
	if late, _ := s.Add(rd("lab", "new", t0+30_000, map[string]float64{"t": 1})); !slices.Equal(late, []time.Duration{s10, m1}) {
		t.Fatalf("untracked device reading before the floor: late %v, want both", late)
	}
	if late, _ := s.Add(rd("lab", "new2", t0+61_000, map[string]float64{"t": 1})); late != nil {
		t.Fatalf("untracked device reading after the floor: late %v", late)
	}
}

func TestDeviceWithClockAheadIsNotForgotten(t *testing.T) {
	cfg := testConfig()
	cfg.ForgetAfter = time.Hour
	s := NewState(cfg)
	for i := range int64(2) { // clock two days ahead, confirmed by the second reading
		r := temp(t0+48*3_600_000+i*1_000, 1)
		r.Received = t0 + i*1_000
		s.Add(r)
	}
	s.Listen(3 * time.Hour)
	s.CloseDue(wall(t0+3*3_600_000), true) // silent three hours: windows close
	if s.Open() != 0 {
		t.Fatalf("windows of the silent device not closed")
	}
	if s.Devices() != 1 {
		t.Fatalf("device whose clock is ahead was forgotten; the floor would move into the future")
	}
}

func TestOpenCountsWindows(t *testing.T) {
	s := NewState(testConfig())
	s.Add(temp(t0+8_000, 1))
	s.Add(temp(t0+12_000, 1)) // second 10s window, same 1m window
	s.Add(rd("lab", "d2", t0, map[string]float64{"t": 1}))
	if s.Open() != 5 || s.Devices() != 2 {
		t.Fatalf("Open() = %d, Devices() = %d; want 5, 2", s.Open(), s.Devices())
	}
	s.Add(temp(t0+15_000, 1)) // watermark t0+10s: first 10s window due
	if n := len(s.CloseDue(wall(0), false)); n != 1 || s.Open() != 4 {
		t.Fatalf("closed %d, Open() = %d; want 1, 4", n, s.Open())
	}
	flushAll(s)
	if s.Open() != 0 {
		t.Fatalf("Open() = %d after flush", s.Open())
	}
}

func TestReadingWithoutMetricsChangesNothing(t *testing.T) {
	s := NewState(testConfig())
	if late, _ := s.Add(rd("lab", "d1", t0, nil)); late != nil || s.Devices() != 0 || s.Open() != 0 {
		t.Fatalf("late %v, devices %d, open %d", late, s.Devices(), s.Open())
	}
}

func TestAddDoesNotAllocateOnceWindowsExist(t *testing.T) {
	s := NewState(testConfig())
	r := rd("lab", "d1", t0, map[string]float64{"t": 1, "h": 2, "p": 3})
	s.Add(r)
	ts := t0
	allocs := testing.AllocsPerRun(1000, func() {
		ts += 1 // stays in the window
		r.TS = ts
		s.Add(r)
	})
	if allocs != 0 {
		t.Fatalf("Add allocates %.1f times per reading", allocs)
	}
	// Rolling over to the next window reuses the closed one.
	ts = t0
	allocs = testing.AllocsPerRun(200, func() {
		ts += 10_000
		r.TS = ts
		s.Add(r)
		s.closeDueNoResult()
	})
	if allocs > 0 {
		t.Fatalf("Add allocates %.1f times per new window once windows are recycled", allocs)
	}
}

// closeDueNoResult closes due windows like CloseDue, minus building the
// result, to measure Add alone.
func (s *State) closeDueNoResult() {
	for _, d := range s.devices {
		for i, size := range s.sizes {
			ss := &d.sizes[i]
			limit := d.maxTS - s.lateness - size
			n := 0
			for n < len(ss.open) && ss.open[n].start <= limit {
				w := ss.open[n]
				ss.closedUntil = w.start + size
				if ss.spare == nil {
					w.reset()
					ss.spare = w
				}
				n++
			}
			rest := copy(ss.open, ss.open[n:])
			clear(ss.open[rest:])
			ss.open = ss.open[:rest]
			s.open -= n
		}
	}
}

func TestMetricNamesOfReusedWindowsDoNotGrow(t *testing.T) {
	// A new metric name every 10 s: a recycled window keeps the names its
	// last use held, and drops the others.
	s := NewState(testConfig())
	for i := range int64(100) {
		s.Add(rd("lab", "d1", t0+i*10_000, map[string]float64{"m" + strconv.FormatInt(i, 10): 1}))
		s.CloseDue(wall(0), false)
	}
	for i, limit := range []int{2, 12} {
		ss := s.devices[deviceKey{"lab", "d1"}].sizes[i]
		for _, w := range append(slices.Clone(ss.open), ss.spare) {
			if w != nil && len(w.metrics) > limit {
				t.Fatalf("%v window keeps %d metric slots, want at most %d", s.cfg.Sizes[i], len(w.metrics), limit)
			}
		}
	}
}
