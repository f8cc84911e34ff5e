package window

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Reconfiguration is what Load did to carry a checkpoint taken with another
// configuration over to the State's own (package comment, "Changing the
// configuration").
type Reconfiguration struct {
	// From is the checkpoint's configuration, To the State's.
	From, To Config
	// Added are the lengths of To that From lacks, Removed those of From
	// that To lacks.
	Added, Removed []time.Duration
	// Dropped is the number of open windows of removed lengths, dropped
	// without being published.
	Dropped int
}

// Changed reports whether the checkpoint's configuration differs from the
// State's.
func (r Reconfiguration) Changed() bool {
	return !slices.Equal(r.From.Sizes, r.To.Sizes) || r.From.Lateness != r.To.Lateness ||
		r.From.IdleGrace != r.To.IdleGrace || r.From.ForgetAfter != r.To.ForgetAfter
}

// LogValue renders r for a log line, with durations as Go writes them (a
// JSON log would otherwise show nanoseconds).
func (r Reconfiguration) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("from", r.From.String()),
		slog.String("to", r.To.String()),
		slog.String("added", fmt.Sprint(r.Added)),
		slog.String("removed", fmt.Sprint(r.Removed)),
		slog.Int("dropped_windows", r.Dropped),
	)
}

// noSince is sizeState.since of a length a device has had from its first
// reading.
const noSince int64 = -1 << 63

// reconfigure carries s, as loaded from a checkpoint, over to cfg: a kept
// length keeps each device's open windows and closed-until mark; an added
// length starts, for each device, at its first boundary after every
// reading the device's windows hold or held; a removed length's open
// windows are dropped. cfg must be valid.
func (s *State) reconfigure(cfg Config) Reconfiguration {
	r := Reconfiguration{From: s.cfg, To: cfg.clone()}
	from := s.sizes
	s.configure(cfg)
	if slices.Equal(from, s.sizes) {
		return r
	}
	// was[i] is the index in from of the State's length i, -1 when added.
	was := make([]int, len(s.sizes))
	for i, size := range s.sizes {
		was[i] = slices.Index(from, size)
		if was[i] < 0 {
			r.Added = append(r.Added, s.cfg.Sizes[i])
		}
	}
	for j, size := range from {
		if !slices.Contains(s.sizes, size) {
			r.Removed = append(r.Removed, r.From.Sizes[j])
		}
	}
	for _, d := range s.devices {
		newest := d.newestHeld()
		sizes := make([]sizeState, len(s.sizes))
		for i, j := range was {
			if j >= 0 {
				sizes[i] = d.sizes[j]
				continue
			}
			since := windowStart(newest, s.sizes[i]) + s.sizes[i]
			sizes[i] = sizeState{closedUntil: max(since, s.floor), since: since}
		}
		for j, size := range from {
			if !slices.Contains(s.sizes, size) {
				r.Dropped += len(d.sizes[j].open)
				s.open -= len(d.sizes[j].open)
			}
		}
		d.sizes = sizes
		s.forgetSeen(d)
	}
	return r
}

// newestHeld returns the newest event time of a reading d's windows hold or
// held: its time, the newest reading of each open window (which may be ahead
// of it, "Device clocks"), and the last millisecond of each window closed.
func (d *device) newestHeld() int64 {
	n := d.maxTS
	for i := range d.sizes {
		ss := &d.sizes[i]
		if ss.closedUntil > n {
			n = ss.closedUntil - 1
		}
		for _, w := range ss.open {
			for j := range w.metrics {
				if w.metrics[j].count > 0 {
					n = max(n, w.metrics[j].lastTS)
				}
			}
		}
	}
	return n
}
