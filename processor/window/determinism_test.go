package window

import (
	"bytes"
	"testing"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// TestCheckpointAtEveryPositionGivesIdenticalResults is the takeover
// guarantee: a run checkpointed at any point, loaded into a fresh State and
// continued emits exactly what an uninterrupted run emits, bit for bit,
// late readings included.
func TestCheckpointAtEveryPositionGivesIdenticalResults(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		steps := randomSteps(seed, 250)
		steps = append(steps, step{close: true, now: MaxTS, caughtUp: true})
		want := run(NewState(testConfig()), steps)
		if want == "" {
			t.Fatal("the uninterrupted run emitted nothing")
		}
		for k := range len(steps) + 1 {
			first := NewState(testConfig())
			got := run(first, steps[:k])
			data, err := first.MarshalBinary()
			if err != nil {
				t.Fatalf("seed %d, split %d: marshal: %v", seed, k, err)
			}
			second := NewState(testConfig())
			if err := second.UnmarshalBinary(data); err != nil {
				t.Fatalf("seed %d, split %d: unmarshal: %v", seed, k, err)
			}
			if second.Open() != first.Open() || second.Devices() != first.Devices() {
				t.Fatalf("seed %d, split %d: loaded %d windows of %d devices, saved %d of %d",
					seed, k, second.Open(), second.Devices(), first.Open(), first.Devices())
			}
			again, _ := second.MarshalBinary()
			if !bytes.Equal(again, data) {
				t.Fatalf("seed %d, split %d: checkpoint not canonical: re-encoding differs", seed, k)
			}
			got += run(second, steps[k:])
			if got != want {
				t.Fatalf("seed %d, split %d: results differ from the uninterrupted run\ngot:\n%s\nwant:\n%s", seed, k, got, want)
			}
		}
	}
}

// TestReplayAfterTakeover replays the stream from a checkpoint with other
// batch boundaries than the first replica (it closes windows at other
// points, never by the clock while catching up): every window closed by
// event time comes out identical.
func TestReplayAfterTakeover(t *testing.T) {
	steps := randomSteps(42, 600)
	var readings []step
	for _, st := range steps {
		if st.r != nil {
			readings = append(readings, st)
		}
	}
	const ckpt = 200
	cfg := testConfig()
	first := NewState(cfg)
	for _, st := range readings[:ckpt] {
		first.Add(*st.r)
	}
	data, _ := first.MarshalBinary()
	// First replica: closes after every 7 readings, then "crashes".
	seen := map[string]string{}
	for i, st := range readings[ckpt:] {
		first.Add(*st.r)
		if i%7 == 0 {
			for _, a := range first.CloseDue(wall(0), false) {
				seen[a.MsgID()] = fingerprint([]reading.Aggregate{a})
			}
		}
	}
	// Second replica: loads the checkpoint, replays the same readings,
	// closing every 50.
	second := NewState(cfg)
	if err := second.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	matched := 0
	for i, st := range readings[ckpt:] {
		second.Add(*st.r)
		if i%50 == 49 || i == len(readings)-ckpt-1 {
			for _, a := range second.CloseDue(wall(0), false) {
				if prev, ok := seen[a.MsgID()]; ok {
					matched++
					if prev != fingerprint([]reading.Aggregate{a}) {
						t.Fatalf("window %s rewritten with other values after the takeover:\nfirst:  %ssecond: %s",
							a.MsgID(), prev, fingerprint([]reading.Aggregate{a}))
					}
				}
			}
		}
	}
	if matched != len(seen) || matched < 50 {
		t.Fatalf("compared %d windows of the %d the first replica closed", matched, len(seen))
	}
}
