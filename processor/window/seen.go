package window

import "slices"

// seenEntry is the identity (reading.Identity) of a reading folded into a
// device's windows, and the reading's event time.
type seenEntry struct {
	ts int64
	id uint64
}

func (a seenEntry) less(b seenEntry) bool { return a.ts < b.ts || a.ts == b.ts && a.id < b.id }

// indexFrom is the number of entries beyond which a seenSet keeps an index:
// up to it, a linear scan is as fast as a map lookup.
const indexFrom = 32

// seenSet is the identities of the readings a device's windows hold or may
// still count (package comment, "Duplicates"), of the readings with device
// time (device.dated) or of those without (device.undated).
type seenSet struct {
	// entries, sorted by event time then identity, unique. Readings come
	// mostly in event-time order, so an entry is mostly appended.
	entries []seenEntry
	// index maps an identity to the newest event time of its entries, once
	// there were more than indexFrom of them; nil when empty, and always
	// in a set of readings with device time (looked up with holds).
	index map[uint64]int64
}

// holds reports whether the set holds identity id at event time ts: a copy
// of a reading with device time has the reading's event time, so it is
// found by time, without an index.
func (s *seenSet) holds(id uint64, ts int64) bool {
	if len(s.entries) == 0 || ts > s.entries[len(s.entries)-1].ts {
		return false // the common case: a reading newer than every other
	}
	_, found := slices.BinarySearchFunc(s.entries, seenEntry{ts: ts, id: id}, compareSeen)
	return found
}

func compareSeen(a, b seenEntry) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
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
// indexed: the set is looked up by identity (newest), and keeps an index
// beyond indexFrom entries.
func (s *seenSet) add(id uint64, ts int64, indexed bool) {
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
	case indexed && len(s.entries) > indexFrom:
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
