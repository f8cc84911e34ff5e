package window

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// sent is a reading of lab/d1 that carries its sequence number and its own
// time, received 200 ms after it was taken.
func sent(seq uint64, ts int64, v float64) reading.Reading {
	r := temp(ts, v)
	r.Seq, r.DeviceTime, r.Received = &seq, true, ts+200
	return r
}

// seqOnly is a reading of lab/d1 that carries a sequence number but no time:
// its event time is when ingest received it.
func seqOnly(seq uint64, rx int64, v float64) reading.Reading {
	r := temp(rx, v)
	r.Seq = &seq
	return r
}

// mustAdd adds r and fails unless it is a duplicate exactly when dup.
func mustAdd(t *testing.T, s *State, r reading.Reading, dup bool) []time.Duration {
	t.Helper()
	late, gotDup := s.Add(r)
	if gotDup != dup {
		t.Fatalf("reading seq %v at %s: duplicate = %v, want %v", r.Seq, dur(r.TS-t0), gotDup, dup)
	}
	if dup && late != nil {
		t.Fatalf("a duplicate reported late for %v", late)
	}
	return late
}

// counts returns the count of metric t per closed window, "10s@start".
func counts(aggs []reading.Aggregate) map[string]int64 {
	out := map[string]int64{}
	for _, a := range aggs {
		out[a.Window+"@"+dur(a.Start-t0)] += a.Metrics["t"].Count
	}
	return out
}

// datedOf and undatedOf return the identities of lab/dev's readings with
// and without device time.
func datedOf(s *State, dev string) *datedSet  { return &s.devices[deviceKey{"lab", dev}].dated }
func undatedOf(s *State, dev string) *seenSet { return &s.devices[deviceKey{"lab", dev}].undated }

// datedEntries returns the entries of set in order.
func datedEntries(set *datedSet) []seenEntry {
	var entries []seenEntry
	for ts, id := range set.all() {
		entries = append(entries, seenEntry{ts, id})
	}
	return entries
}

func TestDuplicateInOpenWindowsIsDropped(t *testing.T) {
	s := NewState(testConfig())
	for i := range uint64(5) {
		mustAdd(t, s, sent(i, t0+int64(i)*1_000, float64(i)), false)
	}
	// Redelivered after a reconnect: the same readings, received again
	// later; and a QoS 1 retransmission of the newest right after it.
	for i := range uint64(5) {
		r := sent(i, t0+int64(i)*1_000, float64(i))
		r.Received += 3_000
		mustAdd(t, s, r, true)
	}
	mustAdd(t, s, sent(4, t0+4_000, 4), true)
	// Not duplicates: the same seq with another value (a device whose
	// sequence restarted), and the same value at another time.
	mustAdd(t, s, sent(0, t0, 7), false)
	mustAdd(t, s, sent(0, t0+500, 0), false)
	got := counts(flushAll(s))
	if got["10s@0s"] != 7 || got["1m@0s"] != 7 || len(got) != 2 {
		t.Fatalf("counts %v, want 7 readings in each window", got)
	}
}

func TestDuplicateChangesNothing(t *testing.T) {
	s := NewState(testConfig())
	mustAdd(t, s, sent(1, t0+1_000, 1), false)
	mustAdd(t, s, sent(2, t0+2_000, 2), false)
	s.Listen(5 * time.Second)
	before, _ := s.MarshalBinary()
	d := *s.devices[deviceKey{"lab", "d1"}]
	// Received much later, from a clock far ahead: a new reading would move
	// the device's offset, newest received time and time, and restart its
	// silence.
	r := sent(1, t0+1_000, 1)
	r.Received = t0 + 900_000
	mustAdd(t, s, r, true)
	after, _ := s.MarshalBinary()
	a := s.devices[deviceKey{"lab", "d1"}]
	if !bytes.Equal(before, after) || a.maxTS != d.maxTS || a.offset != d.offset || a.lastRx != d.lastRx ||
		a.heardAt != d.heardAt || a.dated.len() != 2 {
		t.Fatalf("a duplicate changed the State: time %d→%d, offset %d→%d, received %d→%d, heard %d→%d, %d identities",
			d.maxTS, a.maxTS, d.offset, a.offset, d.lastRx, a.lastRx, d.heardAt, a.heardAt, a.dated.len())
	}
}

// A reading late for one length still counts in the other: its replay is a
// duplicate there too.
func TestDuplicateOfPartlyLateReading(t *testing.T) {
	s := NewState(testConfig())
	mustAdd(t, s, sent(1, t0+16_000, 1), false) // watermark t0+11s: 10s window at 0 is due
	late := mustAdd(t, s, sent(0, t0+5_000, 1), false)
	if !slices.Equal(late, []time.Duration{s10}) {
		t.Fatalf("late for %v, want 10s", late)
	}
	mustAdd(t, s, sent(0, t0+5_000, 1), true)
	if got := counts(flushAll(s)); got["1m@0s"] != 2 || got["10s@10s"] != 1 || len(got) != 2 {
		t.Fatalf("counts %v", got)
	}
}

// Once every window of its event time is closed, a replay is late like any
// reading of those windows: not counted, whether or not its identity is
// still kept. A reading late for every length is not recorded.
func TestDuplicateAfterItsWindowsClosedIsLate(t *testing.T) {
	s := NewState(testConfig())
	mustAdd(t, s, sent(1, t0+1_000, 1), false)
	for sec := int64(2); sec <= 66; sec++ {
		mustAdd(t, s, sent(uint64(sec), t0+sec*1_000, 1), false)
	}
	// Watermark t0+61s: both windows of t0+1s are due, closed or not.
	late := mustAdd(t, s, sent(1, t0+1_000, 1), false)
	if !slices.Equal(late, []time.Duration{s10, m1}) {
		t.Fatalf("late for %v, want both lengths", late)
	}
	n := datedOf(s, "d1").len()
	if n != 66 {
		t.Fatalf("%d identities, want the 66 readings folded", n)
	}
	aggs := s.CloseDue(wall(0), false)
	if got := counts(aggs); got["1m@0s"] != 59 {
		t.Fatalf("counts %v, want the 59 readings of the first minute", got)
	}
	if n := datedOf(s, "d1").len(); n != 7 {
		t.Fatalf("%d identities after the minute closed, want the 7 of t0+60s on", n)
	}
	late = mustAdd(t, s, sent(1, t0+1_000, 1), false)
	if !slices.Equal(late, []time.Duration{s10, m1}) {
		t.Fatalf("late for %v, want both lengths", late)
	}
}

// A reading without a sequence number or its own time has no identity:
// delivered twice, it counts twice (at-least-once).
func TestReadingWithoutIdentityCountsTwice(t *testing.T) {
	s := NewState(testConfig())
	r := temp(t0+1_000, 1)
	mustAdd(t, s, r, false)
	mustAdd(t, s, r, false)
	if n := datedOf(s, "d1").len() + len(undatedOf(s, "d1").entries); n != 0 {
		t.Fatalf("%d identities recorded", n)
	}
	if got := counts(flushAll(s)); got["10s@0s"] != 2 || got["1m@0s"] != 2 {
		t.Fatalf("counts %v, want the reading twice", got)
	}
}

// A device that sends a sequence number but no time: its replay is
// received later, so it has a later event time. It is a duplicate while
// the original's identity is kept, that is while one of the original's
// windows may still count; beyond that it counts again.
func TestSeqOnlyReplayWithLaterTime(t *testing.T) {
	s := NewState(testConfig())
	for sec := int64(1); sec <= 30; sec++ {
		mustAdd(t, s, seqOnly(uint64(sec), t0+sec*1_000, 1), false)
	}
	// Reconnected 35 s later: the first readings come again, 10s windows of
	// the originals long closed, their 1m window open.
	s.CloseDue(wall(0), false)
	for sec := int64(1); sec <= 5; sec++ {
		mustAdd(t, s, seqOnly(uint64(sec), t0+(35+sec)*1_000, 1), true)
	}
	// Once the first minute closes, the originals are forgotten: a replay
	// received then counts again, in its own windows.
	for sec := int64(41); sec <= 70; sec++ {
		mustAdd(t, s, seqOnly(uint64(sec), t0+sec*1_000, 1), false)
	}
	if got := counts(s.CloseDue(wall(0), false)); got["1m@0s"] != 49 {
		t.Fatalf("counts %v, want the 49 readings of the first minute, no replay", got)
	}
	mustAdd(t, s, seqOnly(3, t0+71_000, 1), false)
	if got := counts(flushAll(s)); got["1m@1m0s"] != 12 {
		t.Fatalf("counts %v, want 11 readings and one replay beyond the horizon in the second minute", got)
	}
}

// The processor's crash case: readings folded, checkpointed, then delivered
// again to the replica that loads the checkpoint.
func TestDuplicateAfterCheckpoint(t *testing.T) {
	s := NewState(testConfig())
	// With and without device time, past indexFrom: the index of the
	// identities without is rebuilt on load.
	for i := range int64(100) {
		mustAdd(t, s, sent(uint64(i), t0+i*90, 1), false)
		mustAdd(t, s, seqOnly(uint64(1_000+i), t0+i*90+50, 1), false)
	}
	loaded := roundTrip(t, s)
	dated, undated := datedOf(loaded, "d1"), undatedOf(loaded, "d1")
	if dated.len() != 100 || len(undated.entries) != 100 || len(undated.index) != 100 {
		t.Fatalf("loaded %d and %d identities, %d indexed", dated.len(), len(undated.entries), len(undated.index))
	}
	for i := range int64(100) {
		mustAdd(t, loaded, sent(uint64(i), t0+i*90, 1), true)
		mustAdd(t, loaded, seqOnly(uint64(1_000+i), t0+9_000+i, 1), true) // received again later
	}
	mustAdd(t, loaded, sent(100, t0+10_000, 1), false)
	if got := counts(flushAll(loaded)); got["10s@0s"] != 200 || got["10s@10s"] != 1 || got["1m@0s"] != 201 {
		t.Fatalf("counts %v", got)
	}
}

// Identities are forgotten as windows close; a fast device's, with device
// time, are found by time, with no index.
func TestIdentitiesAreForgotten(t *testing.T) {
	s := NewState(testConfig())
	const hz = 100
	for i := range int64(70 * hz) {
		mustAdd(t, s, sent(uint64(i), t0+i*1_000/hz, 1), false)
		if i%hz == 0 {
			s.CloseDue(wall(0), false)
		}
	}
	seen := datedOf(s, "d1")
	if seen.len() != 10*hz {
		t.Fatalf("%d identities, want the 10 s since the first minute closed", seen.len())
	}
	// Out of order within the lateness: kept sorted.
	mustAdd(t, s, sent(1<<40, t0+62_345, 2), false)
	if !slices.IsSortedFunc(datedEntries(seen), compareEntries[seenEntry]) {
		t.Fatal("identities not sorted")
	}
	mustAdd(t, s, sent(1<<40, t0+62_345, 2), true)
	mustAdd(t, s, sent(6_500, t0+65_000, 1), true)
	// Silent: every window closes, every identity goes.
	flushAll(s)
	if seen.len() != 0 {
		t.Fatalf("%d identities after every window closed", seen.len())
	}
}

// A forgotten device's identities go with it: the forget floor keeps its
// replays late.
func TestForgottenDeviceReplayIsLate(t *testing.T) {
	cfg := testConfig()
	cfg.ForgetAfter = time.Hour
	s := NewState(cfg)
	mustAdd(t, s, sent(1, t0+1_000, 1), false)
	s.Listen(time.Hour)
	s.CloseDue(wall(t0+2*3_600_000), true)
	if s.Devices() != 0 {
		t.Fatalf("%d devices, want the device forgotten", s.Devices())
	}
	if late := mustAdd(t, s, sent(1, t0+1_000, 1), false); len(late) != 2 {
		t.Fatalf("late for %v, want both lengths", late)
	}
}

// Loading into another configuration keeps the identities and forgets them
// by the new lengths.
func TestReconfigureKeepsIdentities(t *testing.T) {
	s := NewState(testConfig())
	for sec := int64(0); sec < 80; sec++ {
		mustAdd(t, s, sent(uint64(sec), t0+sec*1_000, 1), false)
	}
	s.CloseDue(wall(0), false) // 10s windows until 70 s and the first minute closed
	if n := datedOf(s, "d1").len(); n != 20 {
		t.Fatalf("%d identities, want the 20 of the second minute", n)
	}
	data, _ := s.MarshalBinary()

	cfg := testConfig()
	cfg.Sizes = []time.Duration{10 * time.Second}
	only10s := NewState(cfg)
	if _, err := only10s.Load(data); err != nil {
		t.Fatal(err)
	}
	if n := datedOf(only10s, "d1").len(); n != 10 {
		t.Fatalf("%d identities with 10s windows only, want the 10 of the open one", n)
	}
	mustAdd(t, only10s, sent(72, t0+72_000, 1), true)
	if late := mustAdd(t, only10s, sent(65, t0+65_000, 1), false); len(late) != 1 {
		t.Fatalf("late for %v", late)
	}

	cfg.Sizes = []time.Duration{time.Minute, time.Hour}
	wider := NewState(cfg)
	if _, err := wider.Load(data); err != nil {
		t.Fatal(err)
	}
	if n := datedOf(wider, "d1").len(); n != 20 {
		t.Fatalf("%d identities with an hour added, want the 20 kept", n)
	}
	mustAdd(t, wider, sent(61, t0+61_000, 1), true)
}

// A seq-only reading replayed after its original's windows are due (not yet
// closed) counts again, in its own window; it is then recorded under the
// same identity as the original, and a further replay is a duplicate,
// before and after the original's entry is forgotten. With few identities
// they are scanned, with many indexed.
func TestSeqOnlyIdentityRecordedTwice(t *testing.T) {
	for _, n := range []int64{3, 100} {
		s := NewState(testConfig())
		for i := range n {
			mustAdd(t, s, seqOnly(uint64(1_000+i), t0+i*10, 1), false) // within the first 10 s
		}
		mustAdd(t, s, seqOnly(1, t0+1_000, 1), false)
		for sec := int64(61); sec <= 66; sec++ { // watermark t0+61s: the first minute is due
			mustAdd(t, s, seqOnly(uint64(sec), t0+sec*1_000, 1), false)
		}
		seen := undatedOf(s, "d1")
		if (seen.index != nil) != (n > indexFrom) {
			t.Fatalf("%d readings: index %v", n, seen.index != nil)
		}
		mustAdd(t, s, seqOnly(1, t0+66_500, 1), false) // its original is past: counts again
		mustAdd(t, s, seqOnly(1, t0+66_600, 1), true)
		before := len(seen.entries)
		closed := s.CloseDue(wall(0), false)
		if len(seen.entries) != before-int(n)-1 {
			t.Fatalf("%d readings: %d identities after the first minute closed, want %d", n, len(seen.entries), before-int(n)-1)
		}
		mustAdd(t, s, seqOnly(1, t0+66_700, 1), true)
		if got := counts(append(closed, flushAll(s)...)); got["1m@0s"] != n+1 || got["1m@1m0s"] != 7 {
			t.Fatalf("%d readings: counts %v", n, got)
		}
	}
}
