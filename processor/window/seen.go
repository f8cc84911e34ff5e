package window

import (
	"iter"
	"slices"
)

// datedSet is the identities of the readings with device time a device's
// windows hold or may still count (package comment, "Duplicates"). A copy
// of such a reading has its event time, so an identity only has to tell
// apart the readings of one device at one millisecond: it is kept in 32
// bits (fold32), and the event time in the 32 low bits of its span, 8
// bytes an entry.
type datedSet struct {
	// spans, sorted by hi, none empty but a lone one kept for its buffer.
	// Event times a device's windows can hold are mostly within 2^32 ms
	// (49 days) of each other, so there is mostly one span, two across a
	// boundary.
	spans []datedSpan
}

// datedSpan holds the entries whose event times have the high bits hi
// (event time >> 32), sorted by event time then identity, unique. Readings
// come mostly in event-time order, so an entry is mostly appended.
type datedSpan struct {
	hi      int64
	entries []datedEntry
}

// datedEntry is the low 32 bits of an event time and a folded identity.
type datedEntry struct{ lo, id uint32 }

func (a datedEntry) less(b datedEntry) bool { return a.lo < b.lo || a.lo == b.lo && a.id < b.id }

// compareEntries orders entries by their less, for the slices package.
func compareEntries[E interface{ less(E) bool }](a, b E) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// fold32 folds an identity (reading.Identity) to the 32 bits a datedSet
// keeps.
func fold32(id uint64) uint32 { return uint32(id ^ id>>32) }

func splitTS(ts int64) (hi int64, lo uint32) { return ts >> 32, uint32(ts) }

// span returns the index of the span of high bits hi, or -1.
func (s *datedSet) span(hi int64) int {
	for j := len(s.spans) - 1; j >= 0 && s.spans[j].hi >= hi; j-- {
		if s.spans[j].hi == hi && len(s.spans[j].entries) > 0 {
			return j
		}
	}
	return -1
}

// holds reports whether the set holds identity id at event time ts.
func (s *datedSet) holds(id uint64, ts int64) bool {
	hi, lo := splitTS(ts)
	j := s.span(hi)
	if j < 0 {
		return false
	}
	e := s.spans[j].entries
	if lo > e[len(e)-1].lo {
		return false // the common case: a reading newer than every other
	}
	_, found := slices.BinarySearchFunc(e, datedEntry{lo, fold32(id)}, compareEntries)
	return found
}

// add records identity id at event time ts; the set must not hold it yet.
func (s *datedSet) add(id uint64, ts int64) { s.insert(ts, fold32(id)) }

func (s *datedSet) insert(ts int64, id uint32) {
	hi, lo := splitTS(ts)
	j := s.span(hi)
	if j < 0 {
		j = s.newSpan(hi)
	}
	sp := &s.spans[j]
	e := datedEntry{lo, id}
	i := len(sp.entries)
	for i > 0 && e.less(sp.entries[i-1]) {
		i--
	}
	sp.entries = grow(sp.entries)
	copy(sp.entries[i+1:], sp.entries[i:])
	sp.entries[i] = e
}

// newSpan makes an empty span of high bits hi, reusing a lone empty one,
// and returns its index.
func (s *datedSet) newSpan(hi int64) int {
	if len(s.spans) == 1 && len(s.spans[0].entries) == 0 {
		s.spans[0].hi = hi
		return 0
	}
	j, _ := slices.BinarySearchFunc(s.spans, hi, func(sp datedSpan, hi int64) int {
		return compareInt(sp.hi, hi)
	})
	s.spans = slices.Insert(s.spans, j, datedSpan{hi: hi})
	return j
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// grow returns entries one longer, growing its capacity by a quarter when
// full: a device's entries rise and fall between the same bounds as its
// windows close, so the capacity stays near the most it kept, not up to
// twice that.
func grow(entries []datedEntry) []datedEntry {
	if len(entries) < cap(entries) {
		return entries[:len(entries)+1]
	}
	n := make([]datedEntry, len(entries)+1, len(entries)+len(entries)/4+4)
	copy(n, entries)
	return n
}

// len returns the number of identities in the set.
func (s *datedSet) len() int {
	n := 0
	for _, sp := range s.spans {
		n += len(sp.entries)
	}
	return n
}

// all yields the entries in order: event time, folded identity.
func (s *datedSet) all() iter.Seq2[int64, uint64] {
	return func(yield func(int64, uint64) bool) {
		for _, sp := range s.spans {
			for _, e := range sp.entries {
				if !yield(sp.hi<<32|int64(e.lo), uint64(e.id)) {
					return
				}
			}
		}
	}
}

// forgetBefore drops the entries older than cutoff.
func (s *datedSet) forgetBefore(cutoff int64) {
	hi, lo := splitTS(cutoff)
	k := 0 // spans wholly before cutoff
	for k < len(s.spans) && s.spans[k].hi < hi {
		k++
	}
	if k == len(s.spans) {
		if k > 0 {
			last := s.spans[k-1]
			s.spans = append(s.spans[:0], datedSpan{hi: last.hi, entries: last.entries[:0]})
			clear(s.spans[1:k])
		}
		return
	}
	s.spans = slices.Delete(s.spans, 0, k)
	if sp := &s.spans[0]; sp.hi == hi {
		n := 0
		for n < len(sp.entries) && sp.entries[n].lo < lo {
			n++
		}
		if n > 0 {
			sp.entries = sp.entries[:copy(sp.entries, sp.entries[n:])]
		}
		if len(sp.entries) == 0 && len(s.spans) > 1 {
			s.spans = slices.Delete(s.spans, 0, 1)
		}
	}
}

// seenEntry is the identity (reading.Identity) of a reading without device
// time folded into a device's windows, and the reading's event time.
type seenEntry struct {
	ts int64
	id uint64
}

func (a seenEntry) less(b seenEntry) bool { return a.ts < b.ts || a.ts == b.ts && a.id < b.id }

// indexFrom is the number of entries beyond which a seenSet keeps an index:
// up to it, a linear scan is as fast as a map lookup.
const indexFrom = 32

// seenSet is the identities of the readings without device time a
// device's windows hold or may still count (package comment,
// "Duplicates"). A copy of such a reading has a later event time, so it is
// looked for by its whole identity.
type seenSet struct {
	// entries, sorted by event time then identity, unique. Readings come
	// mostly in event-time order, so an entry is mostly appended.
	entries []seenEntry
	// index maps an identity to the newest event time of its entries, once
	// there were more than indexFrom of them; nil when empty.
	index map[uint64]int64
}

// newest returns the newest event time of the entries of identity id.
func (s *seenSet) newest(id uint64) (ts int64, ok bool) {
	if s.index != nil {
		ts, ok = s.index[id]
		return ts, ok
	}
	for i := len(s.entries) - 1; i >= 0; i-- {
		if s.entries[i].id == id {
			return s.entries[i].ts, true
		}
	}
	return 0, false
}

// add records identity id at event time ts; the set must not hold it yet.
func (s *seenSet) add(id uint64, ts int64) {
	e := seenEntry{ts: ts, id: id}
	i := len(s.entries)
	for i > 0 && e.less(s.entries[i-1]) {
		i--
	}
	s.entries = append(s.entries, seenEntry{})
	copy(s.entries[i+1:], s.entries[i:])
	s.entries[i] = e
	switch {
	case s.index != nil:
		s.indexAdd(e)
	case len(s.entries) > indexFrom:
		s.reindex()
	}
}

// reindex builds the index when there are more than indexFrom entries.
func (s *seenSet) reindex() {
	s.index = nil
	if len(s.entries) > indexFrom {
		s.index = make(map[uint64]int64, 2*len(s.entries))
		for _, e := range s.entries {
			s.indexAdd(e)
		}
	}
}

func (s *seenSet) indexAdd(e seenEntry) {
	if ts, ok := s.index[e.id]; !ok || e.ts > ts {
		s.index[e.id] = e.ts
	}
}

func (s *seenSet) len() int { return len(s.entries) }

// forgetBefore drops the entries older than cutoff.
func (s *seenSet) forgetBefore(cutoff int64) {
	n := 0
	for n < len(s.entries) && s.entries[n].ts < cutoff {
		if e := s.entries[n]; s.index != nil && s.index[e.id] == e.ts {
			delete(s.index, e.id)
		}
		n++
	}
	if n == 0 {
		return
	}
	rest := copy(s.entries, s.entries[n:])
	s.entries = s.entries[:rest]
	if rest == 0 {
		s.index = nil
	}
}

// all yields the entries in order: event time, identity.
func (s *seenSet) all() iter.Seq2[int64, uint64] {
	return func(yield func(int64, uint64) bool) {
		for _, e := range s.entries {
			if !yield(e.ts, e.id) {
				return
			}
		}
	}
}
