package window

import "testing"

// A closed window carries when ingest received the device's newest reading
// as of its close (Received), in the servers' time whatever the device's
// clock says: the notifier's offline rules go by it.
func TestAggregateCarriesNewestArrival(t *testing.T) {
	s := NewState(testConfig())
	const slow = 25_000 // the device's clock runs 25 s behind
	first := temp(t0+1_000, 1)
	first.Received = first.TS + slow
	s.Add(first)
	next := temp(t0+16_000, 2) // its watermark passes the first 10 s window
	next.Received = next.TS + slow
	s.Add(next)
	a := find(t, s.CloseDue(wall(next.Received), false), "lab", "d1", "10s", t0)
	if a.Received != next.Received {
		t.Fatalf("Received = %d, want %d: the newest arrival when the window closed", a.Received, next.Received)
	}
}
