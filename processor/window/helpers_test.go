package window

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// t0 is an event time on a minute boundary, in Unix ms.
const t0 int64 = 1_732_560_000_000

// testConfig is 10 s and 1 min windows, 5 s lateness, 5 s idle grace.
func testConfig() Config { return DefaultConfig() }

func rd(site, dev string, ts int64, metrics map[string]float64) reading.Reading {
	return reading.Reading{Site: site, Device: dev, TS: ts, Metrics: metrics, Received: ts}
}

// temp is a reading of one metric "t" from lab/d1.
func temp(ts int64, v float64) reading.Reading {
	return rd("lab", "d1", ts, map[string]float64{"t": v})
}

func wall(ms int64) time.Time { return time.UnixMilli(ms) }

// fingerprint renders aggregates with every float as its bits, so that two
// runs compare bit for bit (reflect.DeepEqual would equate -0 and +0).
func fingerprint(aggs []reading.Aggregate) string {
	var b strings.Builder
	for _, a := range aggs {
		fmt.Fprintf(&b, "%s/%s/%s [%d,%d)", a.Site, a.Device, a.Window, a.Start, a.End)
		names := make([]string, 0, len(a.Metrics))
		for n := range a.Metrics {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			st := a.Metrics[n]
			fmt.Fprintf(&b, " %s:%d/%x/%x/%x/%x/%x/%x", n, st.Count,
				math.Float64bits(st.Sum), math.Float64bits(st.Min), math.Float64bits(st.Max),
				math.Float64bits(st.Mean), math.Float64bits(st.First), math.Float64bits(st.Last))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// find returns the aggregate of one device and window, failing if absent.
func find(t *testing.T, aggs []reading.Aggregate, site, dev, window string, start int64) reading.Aggregate {
	t.Helper()
	for _, a := range aggs {
		if a.Site == site && a.Device == dev && a.Window == window && a.Start == start {
			return a
		}
	}
	t.Fatalf("no aggregate %s/%s %s start %d in:\n%s", site, dev, window, start, fingerprint(aggs))
	return reading.Aggregate{}
}

// step is one input of a scripted run: a reading, a Listen call (listen
// ms), or a CloseDue call.
type step struct {
	r        *reading.Reading
	replay   bool // r is a replay of an earlier reading
	listen   int64
	close    bool
	now      int64
	caughtUp bool
}

// randomSteps returns a reproducible stream of n readings from several
// devices (two with a skewed clock), mostly in order with jitter that is
// sometimes beyond the lateness, ties in event time, a metric set that
// varies, negative zeros, replays of recent readings (received again later;
// for a device that sends no time of its own, with a later event time too),
// and Listen and CloseDue calls in between, some of these caught up.
func randomSteps(seed uint64, n int) []step {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	lrng := rand.New(rand.NewPCG(seed, 7))  // Listen calls; rng makes the same readings as without them
	rrng := rand.New(rand.NewPCG(seed, 11)) // replays, likewise
	type dev struct {
		site, name string
		skew       int64 // Received − device time
		ts         int64
		silentTill int
		// seq and deviceTime: what the device sends, hence its identity.
		seq        *uint64
		deviceTime bool
	}
	devs := []*dev{
		{site: "lab", name: "d1", seq: new(uint64), deviceTime: true},
		{site: "lab", name: "d2", skew: 40_000, deviceTime: true},
		{site: "plant", name: "d1", skew: -30_000, seq: new(uint64)},
		{site: "plant", name: "p7"},
		{site: "yard", name: "y", seq: new(uint64), deviceTime: true},
	}
	var recent []reading.Reading
	for _, d := range devs {
		d.ts = t0 + rng.Int64N(20_000)
	}
	metricNames := []string{"t", "h", "p"}
	var steps []step
	wallNow := t0
	for i := range n {
		d := devs[rng.IntN(len(devs))]
		if i < d.silentTill {
			d = devs[0]
		}
		if rng.IntN(40) == 0 {
			d.silentTill = i + 30 // goes silent for a while
		}
		d.ts += rng.Int64N(1500)
		ts := d.ts
		switch rng.IntN(10) {
		case 0:
			ts -= rng.Int64N(4_000) // late but within lateness
		case 1:
			ts -= 3_000 + rng.Int64N(15_000) // often beyond it
		case 2:
			ts = d.ts // tie
		}
		ms := make(map[string]float64)
		for _, m := range metricNames {
			if rng.IntN(3) > 0 {
				v := math.Round(rng.NormFloat64()*1000) / 64
				if rng.IntN(20) == 0 {
					v = math.Copysign(0, -1)
				}
				ms[m] = v
			}
		}
		if len(ms) == 0 {
			ms["t"] = rng.Float64()
		}
		wallNow += rng.Int64N(300) // device clocks advance 150 ms a step on average
		if lrng.IntN(4) == 0 {
			steps = append(steps, step{listen: lrng.Int64N(1_200)}) // caught up: 150 ms a step on average
		}
		r := reading.Reading{Site: d.site, Device: d.name, TS: ts, Metrics: ms, Received: ts + d.skew, DeviceTime: d.deviceTime}
		if d.seq != nil {
			*d.seq++
			r.Seq = new(*d.seq)
		}
		steps = append(steps, step{r: &r})
		recent = append(recent, r)
		if len(recent) > 40 {
			recent = recent[1:]
		}
		if rrng.IntN(8) == 0 {
			replay := recent[rrng.IntN(len(recent))]
			for _, rd := range devs {
				if rd.site == replay.Site && rd.name == replay.Device {
					replay.Received = rd.ts + rd.skew
					if !replay.DeviceTime {
						replay.TS = rd.ts
					}
				}
			}
			steps = append(steps, step{r: &replay, replay: true})
		}
		if rng.IntN(6) == 0 {
			steps = append(steps, step{close: true, now: wallNow, caughtUp: rng.IntN(3) == 0})
		}
	}
	return steps
}

// withoutReplays returns steps without the replays.
func withoutReplays(steps []step) []step {
	var out []step
	for _, st := range steps {
		if !st.replay {
			out = append(out, st)
		}
	}
	return out
}

// run feeds steps to s and returns the fingerprint of everything it
// emitted, late results included.
func run(s *State, steps []step) string {
	var b strings.Builder
	for _, st := range steps {
		if st.close {
			b.WriteString(fingerprint(s.CloseDue(wall(st.now), st.caughtUp)))
			continue
		}
		if st.r == nil {
			s.Listen(time.Duration(st.listen) * time.Millisecond)
			continue
		}
		late, dup := s.Add(*st.r)
		if late != nil {
			fmt.Fprintf(&b, "late %s/%s %d %v\n", st.r.Site, st.r.Device, st.r.TS, late)
		}
		if dup {
			fmt.Fprintf(&b, "duplicate %s/%s %d\n", st.r.Site, st.r.Device, st.r.TS)
		}
	}
	return b.String()
}

// flushAll closes every window left: every device silent for ages.
func flushAll(s *State) []reading.Aggregate {
	s.Listen(math.MaxInt64)
	return s.CloseDue(wall(MaxTS), true)
}

// roundTrip saves s in a checkpoint and loads it into a new State, which
// must encode to the same bytes.
func roundTrip(t *testing.T, s *State) *State {
	t.Helper()
	data, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	loaded := NewState(testConfig())
	if err := loaded.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if again, _ := loaded.MarshalBinary(); !bytes.Equal(again, data) {
		t.Fatal("a loaded checkpoint encodes differently")
	}
	return loaded
}
