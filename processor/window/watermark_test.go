package window

import (
	"testing"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// counts10s returns the count of metric t per 10s window start (relative to
// t0) in aggs.
func counts10s(aggs []reading.Aggregate) map[int64]int64 {
	out := map[int64]int64{}
	for _, a := range aggs {
		if a.Window == "10s" {
			out[a.Start-t0] = a.Metrics["t"].Count
		}
	}
	return out
}

// One reading dated 4 minutes ahead among the readings of a device with a
// correct clock (ingest accepts up to 5 minutes ahead) does not move the
// device's watermark: every reading after it counts, and windows close on
// the device's real time. The reading itself counts in its own window.
// (Before, the watermark jumped 4 minutes ahead and every reading of the next
// 4 minutes was late.)
func TestFutureReadingDoesNotMakeTheNextLate(t *testing.T) {
	s := NewState(testConfig())
	var closed []reading.Aggregate
	for i := range int64(120) {
		rx := t0 + i*1_000
		if late, _ := s.Add(rd("lab", "d1", rx, map[string]float64{"t": 1})); late != nil {
			t.Fatalf("reading at t0+%ds late for %v", i, late)
		}
		if i == 20 {
			future := rd("lab", "d1", rx+240_000, map[string]float64{"t": 1})
			future.Received = rx
			if late, _ := s.Add(future); late != nil {
				t.Fatalf("the future reading is late for %v", late)
			}
		}
		closed = append(closed, s.CloseDue(wall(rx), false)...)
	}
	// Newest reading t0+119s, lateness 5s: the 10s windows up to
	// [t0+100s, t0+110s) and the first minute are closed, by event time.
	got := counts10s(closed)
	for start := int64(0); start <= 100_000; start += 10_000 {
		if got[start] != 10 {
			t.Errorf("10s window at t0+%s counts %d, want 10 (closed: %v)", dur(start), got[start], got)
		}
	}
	if len(got) != 11 {
		t.Errorf("closed 10s windows %v, want the 11 up to t0+100s", got)
	}
	if m := find(t, closed, "lab", "d1", "1m", t0).Metrics["t"].Count; m != 60 {
		t.Errorf("first minute counts %d, want 60", m)
	}
	rest := flushAll(s)
	if n := find(t, rest, "lab", "d1", "10s", t0+260_000).Metrics["t"].Count; n != 1 {
		t.Errorf("the future reading's window counts %d, want 1", n)
	}
}

// A device whose clock runs 30 s ahead of ingest's, its readings arriving
// with a varying delay, has its windows closed by its own time: every
// window that ends more than the lateness (and the network jitter) before
// its newest reading is closed and exact, and nothing is late.
func TestDeviceClockAheadClosesWindows(t *testing.T) {
	s := NewState(testConfig())
	const ahead, jitter = 30_000, 300
	var closed []reading.Aggregate
	var ts int64
	for i := range int64(120) {
		ts = t0 + i*1_000
		r := rd("lab", "d1", ts, map[string]float64{"t": 1})
		r.Received = ts - ahead + (i*7919)%jitter // arrives 0–300 ms after it was made
		if late, _ := s.Add(r); late != nil {
			t.Fatalf("reading at t0+%ds late for %v", i, late)
		}
		closed = append(closed, s.CloseDue(wall(r.Received), false)...)
	}
	got := counts10s(closed)
	for start := int64(0); start+10_000 <= ts-t0-5_000-jitter; start += 10_000 {
		if got[start] != 10 {
			t.Errorf("10s window at t0+%s counts %d, want 10 (closed: %v)", dur(start), got[start], got)
		}
	}
}

// A device's first reading, and any reading without a receive time (older
// data), are taken at their word only as far as nothing contradicts them:
// the first reading of a device 30 s ahead moves its watermark to its arrival
// time, the second confirms the offset.
func TestClockOffsetIsConfirmedByTheNextReading(t *testing.T) {
	s := NewState(testConfig())
	r := rd("lab", "d1", t0+30_000, map[string]float64{"t": 1})
	r.Received = t0
	s.Add(r)
	d := s.devices[deviceKey{"lab", "d1"}]
	if d.maxTS != t0 {
		t.Fatalf("first reading moved the watermark to t0%+d, want t0 (its arrival)", d.maxTS-t0)
	}
	r.TS, r.Received = t0+31_000, t0+1_000
	s.Add(r)
	if d.maxTS != t0+31_000 {
		t.Fatalf("confirmed offset: watermark at t0%+d, want t0+31s", d.maxTS-t0)
	}
	r.TS, r.Received = t0+40_000, 0
	s.Add(r)
	if d.maxTS != t0+40_000 {
		t.Fatalf("reading without a receive time: watermark at t0%+d, want its own time", d.maxTS-t0)
	}
}
