package window

import (
	"cmp"
	"slices"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// CloseDue closes and returns every complete window (package comment,
// "Closing"): by event time, a window whose end is at or before its
// device's watermark; and, only when caughtUp (the worker has just read
// everything currently in its partition), the windows of devices that have
// been silent, while the worker listened (Listen), for Lateness + IdleGrace
// past the window's end. With caughtUp it also forgets devices silent for
// ForgetAfter by the wall clock now.
//
// Called with caughtUp false, CloseDue depends only on the readings added:
// it returns windows whose contents are already final, and calling it more
// or less often changes no result.
//
// The aggregates are sorted by window end, length, site and device.
func (s *State) CloseDue(now time.Time, caughtUp bool) []reading.Aggregate {
	nowMs := min(max(now.UnixMilli(), MinTS), MaxTS)
	var out []reading.Aggregate
	for key, d := range s.devices {
		watermark := d.maxTS - s.lateness
		limit := watermark
		if caughtUp {
			limit = max(limit, s.idleLimit(d))
		}
		open := s.open
		for i, size := range s.sizes {
			out = s.closeUntil(out, d, i, limit-size)
			// Past the watermark, since no longer changes anything (Add).
			if ss := &d.sizes[i]; ss.since != noSince && ss.since <= watermark {
				ss.since = noSince
			}
		}
		// Only closing windows moves the closed-until marks.
		if s.open != open {
			s.forgetSeen(d)
		}
		if caughtUp && s.forgettable(d, nowMs) {
			for i := range d.sizes {
				s.floor = max(s.floor, d.sizes[i].closedUntil)
			}
			delete(s.devices, key)
		}
	}
	slices.SortFunc(out, compareAggregates)
	return out
}

// idleLimit returns the latest window end that silence closes for d: had d
// kept sending, its time would read what it reads now plus the time it has
// been silent while the worker listened.
func (s *State) idleLimit(d *device) int64 {
	return d.maxTS + s.silence(d) - s.lateness - s.idleGrace
}

// closeUntil closes the windows of length index i of d that start at or
// before lastStart, appending their aggregates to out.
func (s *State) closeUntil(out []reading.Aggregate, d *device, i int, lastStart int64) []reading.Aggregate {
	ss := &d.sizes[i]
	size := s.sizes[i]
	n := 0
	for n < len(ss.open) && ss.open[n].start <= lastStart {
		w := ss.open[n]
		end := w.start + size
		if w.used() > 0 {
			out = append(out, reading.Aggregate{
				Site:    d.site,
				Device:  d.name,
				Window:  s.names[i],
				Start:   w.start,
				End:     end,
				Metrics: w.stats(),
				// The notifier's offline rules: when the device was last
				// heard from, whatever its clock says.
				Received: d.lastRx,
			})
		}
		ss.closedUntil = max(ss.closedUntil, end)
		if ss.spare == nil {
			w.reset()
			ss.spare = w
		}
		n++
	}
	if n > 0 {
		rest := copy(ss.open, ss.open[n:])
		clear(ss.open[rest:])
		ss.open = ss.open[:rest]
		s.open -= n
	}
	return out
}

// forgettable reports whether d may be dropped at nowMs (package comment,
// "Forgetting"): no open window, and nothing known of it newer than the
// horizon.
func (s *State) forgettable(d *device, nowMs int64) bool {
	if s.forgetAfter == 0 {
		return false
	}
	horizon := nowMs - s.forgetAfter
	if d.maxTS > horizon || d.lastRx > horizon {
		return false
	}
	for i := range d.sizes {
		if len(d.sizes[i].open) > 0 || d.sizes[i].closedUntil > horizon {
			return false
		}
	}
	return true
}

// compareAggregates orders closed windows by end, length, site and device:
// a total order, since no two closed windows share all four.
func compareAggregates(a, b reading.Aggregate) int {
	return cmp.Or(
		cmp.Compare(a.End, b.End),
		cmp.Compare(a.End-a.Start, b.End-b.Start),
		cmp.Compare(a.Site, b.Site),
		cmp.Compare(a.Device, b.Device),
	)
}
