package alert

import (
	"time"

	"github.com/edgeflow/edgeflow/notifier/rules"
)

// Change is one step of an alert that something must hear about.
type Change struct {
	// Phase entered: Pending, Firing or Resolved.
	Phase Phase
	// From is the phase left: a Resolved change from Pending is a breach
	// that cleared before it fired.
	From Phase
	// Repeat marks a reminder of an alert that stays firing: a
	// notification, not a state change.
	Repeat bool
	// Resend marks a firing alert sent again to the channels that need to
	// hear of it while it lasts (Alertmanager): not a state change either.
	Resend bool
	// Channels, when set, are the channels the change goes to instead of
	// all of the rule's.
	Channels []string
	// Seq is the alert's Seq after the change.
	Seq uint64
}

// Notifies reports whether the change goes to the rule's channels: firing,
// its reminders and its resolution do; pending, and a pending alert that
// cleared before it fired, only go on ALERTS.
func (c Change) Notifies() bool {
	return c.Phase == Firing || (c.Phase == Resolved && c.From == Firing)
}

func (s *State) change(p Phase, now time.Time) Change {
	from := s.Phase
	s.Phase = p
	s.At = now
	s.Seq++
	if p == Firing {
		s.Notified = now
	}
	return Change{Phase: p, From: from, Seq: s.Seq}
}

// Observe folds the value v of one closed window [start, end) into the alert
// of a threshold rule; now is the wall clock. Durations (`for`) are measured
// in event time, from the start of the first breaching window to the end of
// the latest, so a replay of the same windows takes the same steps.
//
//   - ok, resolved: a breach starts pending, or fires at once when the window
//     alone covers `for`;
//   - pending: a value past the clear level resolves it, without a
//     notification (nothing was notified); otherwise
//     the breach goes on (hysteresis: between the clear level and the
//     threshold counts as still breaching) and fires once it has lasted `for`.
//     A gap of more than one window (the device sent nothing) restarts the
//     count;
//   - firing: a value past the clear level resolves.
//
// A window that ends no later than the last one that changed the state is
// ignored.
func Observe(s State, r *rules.Rule, v float64, start, end, now time.Time) (State, []Change) {
	endMs := end.UnixMilli()
	if endMs <= s.LastEnd {
		return s, nil
	}
	length := end.Sub(start)
	switch s.Phase {
	case Pending:
		if r.Clears(v) {
			s.Value, s.Since, s.LastEnd = v, start, endMs
			return s, []Change{s.change(Resolved, now)}
		}
		if start.UnixMilli() > s.LastEnd+length.Milliseconds() {
			s.Since = start // a gap: the breach starts again here
		}
		s.Value, s.LastEnd, s.Threshold, s.Severity = v, endMs, r.Threshold, r.Severity
		if end.Sub(s.Since) >= r.For {
			return s, []Change{s.change(Firing, now)}
		}
		return s, nil // the breach goes on: LastEnd moved
	case Firing:
		if r.Clears(v) {
			s.Value, s.Since, s.LastEnd = v, start, endMs
			return s, []Change{s.change(Resolved, now)}
		}
		return s, nil
	default: // ok, resolved, or new
		if !r.Breaches(v) {
			return s, nil
		}
		s.Value, s.Since, s.LastEnd, s.Threshold, s.Severity = v, start, endMs, r.Threshold, r.Severity
		if length >= r.For {
			return s, []Change{s.change(Firing, now)}
		}
		return s, []Change{s.change(Pending, now)}
	}
}

// Silence checks the alert of an offline rule against when the device was
// last heard from (lastSeen: when its newest reading arrived, by the
// servers' clock, not the device's): silent for the rule's `after` fires,
// data again resolves. mayFire is false while the notifier is still
// catching up on windows, when an old lastSeen means nothing.
func Silence(s State, r *rules.Rule, lastSeen, now time.Time, mayFire bool) (State, []Change) {
	silent := now.Sub(lastSeen)
	if s.Phase == Firing {
		if silent >= r.After {
			return s, nil
		}
		s.Value, s.Since = silent.Seconds(), lastSeen
		return s, []Change{s.change(Resolved, now)}
	}
	if silent < r.After || !mayFire {
		return s, nil
	}
	s.Value, s.Threshold, s.Since, s.Severity = silent.Seconds(), r.After.Seconds(), lastSeen, r.Severity
	return s, []Change{s.change(Firing, now)}
}

// Resend returns a re-send of a firing alert to channels (the rule's
// alertmanager channels) when it was neither sent nor re-sent for every.
// Unlike a reminder it keeps Seq: it says the same again.
func Resend(s State, every time.Duration, channels []string, now time.Time) (State, []Change) {
	if s.Phase != Firing || every <= 0 || len(channels) == 0 {
		return s, nil
	}
	last := s.At // when it fired
	if s.Resent.After(last) {
		last = s.Resent
	}
	if now.Sub(last) < every {
		return s, nil
	}
	s.Resent = now
	return s, []Change{{Phase: Firing, From: Firing, Resend: true, Seq: s.Seq, Channels: channels}}
}

// Remind returns a repeat notification when a firing alert has not been
// notified for the rule's repeat interval.
func Remind(s State, r *rules.Rule, now time.Time) (State, []Change) {
	if s.Phase != Firing || r.Repeat <= 0 || now.Sub(s.Notified) < r.Repeat {
		return s, nil
	}
	s.Notified = now
	s.Seq++
	return s, []Change{{Phase: Firing, From: Firing, Repeat: true, Seq: s.Seq}}
}
