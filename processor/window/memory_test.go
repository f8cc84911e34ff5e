package window

import (
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// identityHeap returns the heap bytes per identity kept by 1000 devices
// sending with their own time once a second for 125 s (65 identities
// each, the most the default lengths keep at 1 Hz): the heap of that State
// less the heap of one fed the same readings without identities.
func identityHeap(t *testing.T) (perIdentity float64, identities int) {
	t.Helper()
	feed := func(identified bool) *State {
		s := NewState(testConfig())
		rs := benchReadings()
		seqs := make([]uint64, len(rs))
		for i := range rs {
			rs[i].DeviceTime = identified
			if identified {
				rs[i].Seq = &seqs[i]
			}
		}
		for sec := range int64(125) {
			ts := t0 + sec*1_000
			for i := range rs {
				seqs[i]++
				rs[i].TS, rs[i].Received = ts+int64(i), ts+int64(i)
				rs[i].Metrics["temperature"] += 0.125
				s.Add(rs[i])
			}
			s.Listen(time.Second)
			s.CloseDue(wall(ts), true)
		}
		return s
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	without := feed(false)
	mid := heap()
	with := feed(true)
	end := heap()
	for _, d := range with.devices {
		identities += d.dated.len() + d.undated.len()
	}
	runtime.KeepAlive(without)
	runtime.KeepAlive(with)
	return (float64(end-mid) - float64(mid-base)) / float64(identities), identities
}

// TestIdentityMemory pins the memory of the identities of readings with
// device time, the common case: 8 bytes each in the set, plus the growth
// margin of its slice (a quarter at most) and a span per device.
func TestIdentityMemory(t *testing.T) {
	if size := unsafe.Sizeof(datedEntry{}); size != 8 {
		t.Fatalf("an identity with device time takes %d bytes, want 8", size)
	}
	per, n := identityHeap(t)
	t.Logf("%d identities, %.1f heap bytes each", n, per)
	if n != 65*benchDevices {
		t.Fatalf("%d identities, want %d", n, 65*benchDevices)
	}
	if per > 11 {
		t.Fatalf("%.1f heap bytes per identity, want at most 11", per)
	}
}

// Readings with device time further apart than 2^32 ms (a clock far ahead)
// are kept in two spans, found, checkpointed and forgotten like the rest.
func TestDatedIdentitiesFarApart(t *testing.T) {
	s := NewState(testConfig())
	far := t0 + 3<<32 + 5
	ahead := func(seq uint64, v float64) reading.Reading {
		r := sent(seq, far, v)
		r.Received = t0 + 500 // dated far ahead of its arrival
		return r
	}
	mustAdd(t, s, sent(1, t0, 1), false)
	mustAdd(t, s, ahead(2, 2), false) // counts in its own window
	mustAdd(t, s, sent(3, t0+1_000, 3), false)
	if dated := datedOf(s, "d1"); dated.len() != 3 || len(dated.spans) != 2 {
		t.Fatalf("%d identities in %d spans, want 3 in 2", dated.len(), len(dated.spans))
	}
	for _, st := range []*State{s, roundTrip(t, s)} {
		mustAdd(t, st, sent(1, t0, 1), true)
		mustAdd(t, st, ahead(2, 2), true)
		mustAdd(t, st, sent(3, t0+1_000, 3), true)
		mustAdd(t, st, ahead(4, 4), false)
		flushAll(st)
		if d := st.devices[deviceKey{"lab", "d1"}]; d != nil && d.dated.len() != 0 {
			t.Fatalf("%d identities after every window closed", d.dated.len())
		}
	}
}

// A datedSet agrees with a plain set of (event time, folded identity),
// across span boundaries and negative times, through adds and forgets.
func TestDatedSetMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var set datedSet
		model := make(map[seenEntry]bool)
		base := int64(rng.IntN(5)-2) << 32
		cutoff := int64(math.MinInt64)
		for range 300 {
			ts := base + rng.Int64N(1<<34) - 1<<33
			id := rng.Uint64() % 8 // collide often at one time
			if rng.IntN(4) == 0 && len(model) > 0 {
				for e := range model { // a known time
					ts = e.ts
					break
				}
			}
			e := seenEntry{ts, uint64(fold32(id))}
			if ts < cutoff {
				continue
			}
			if got := set.holds(id, ts); got != model[e] {
				t.Fatalf("round %d: holds(%d, %d) = %v, want %v", round, id, ts, got, model[e])
			}
			if !model[e] {
				set.add(id, ts)
				model[e] = true
			}
			if rng.IntN(20) == 0 {
				cutoff = max(cutoff, ts-rng.Int64N(1<<33))
				set.forgetBefore(cutoff)
				for e := range model {
					if e.ts < cutoff {
						delete(model, e)
					}
				}
			}
			want := slices.SortedFunc(maps.Keys(model), compareEntries[seenEntry])
			if got := datedEntries(&set); !slices.Equal(got, want) || set.len() != len(want) {
				t.Fatalf("round %d: entries %v, want %v", round, got, want)
			}
			for j, sp := range set.spans {
				if len(sp.entries) == 0 && len(set.spans) > 1 || j > 0 && sp.hi <= set.spans[j-1].hi {
					t.Fatalf("round %d: spans %v", round, set.spans)
				}
			}
		}
	}
}
