package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/kvmirror"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// LastSeen is when a device was last heard from: Received, the arrival of
// its newest reading (ingest's clock) that its windows carry. Their ends
// are in the device's own time, which drifts: a device whose clock runs
// 20 s slow would look silent while it sends, one running ahead would hide
// an outage. The servers' clocks are assumed synchronised (NTP).
//
// End and Window are those of the newest window of the shortest length the
// device has; they decide alone for windows without Received (from a
// processor that predates it), as they did before: a window closes only if
// the device sent data in it, and a longer window closing for silence would
// overstate how recently it did.
type LastSeen struct {
	Received int64 `json:"received,omitempty"` // Unix ms, 0 when unknown
	End      int64 `json:"end"`                // Unix ms
	Window   int64 `json:"window_ms"`          // length of that window
}

// Heard is when the device was last heard from.
func (l LastSeen) Heard() time.Time {
	if l.Received > 0 {
		return time.UnixMilli(l.Received)
	}
	return time.UnixMilli(l.End)
}

// replacedBy reports whether w, from a window just read, is newer news of
// the device than l. Windows arrive out of order after a redelivery, so
// neither time ever moves back.
func (l LastSeen) replacedBy(w LastSeen) bool {
	if w.Received > 0 {
		return w.Received > l.Received
	}
	return w.Window < l.Window || (w.Window == l.Window && w.End > l.End)
}

const (
	// maxAttempts bounds the compare-and-set retries of one change: each
	// conflict means another writer changed the alert, which is progress.
	maxAttempts = 20
	// publishTimeout bounds one outbox message's publish.
	publishTimeout = 5 * time.Second
)

// Engine evaluates the rules and changes alerts. Every change is a
// compare-and-set on the alert's record in ALERT_STATE that also stores the
// change's messages (its outbox: the ALERTS event and one notification per
// channel). Whoever wins the compare-and-set publishes the outbox and then
// clears it; a replica that loses decides again on the new state, where the
// change has usually been made already. Message IDs derive from the alert's
// sequence, so an outbox published twice (by the winner and by a sweeper
// that found it, or after a crash) is deduplicated by JetStream.
type Engine struct {
	js      jetstream.JetStream
	states  *kvmirror.Mirror[alert.Record]
	seen    *kvmirror.Mirror[LastSeen]
	rules   func() *rules.Set
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	// sweepAge is how old an outbox must be before the sweeper publishes
	// it: younger ones are being published by the replica that wrote them.
	sweepAge time.Duration
	// crashAfterCommit, in tests, stops a change between its commit and the
	// publish of its outbox, as a replica that dies there would.
	crashAfterCommit func(key string) bool
}

var errCrashed = errors.New("stopped after the commit (test)")

// OnAggregate evaluates one closed window: it records that the device sent
// data, resolves its offline alerts, and folds the window into every
// threshold rule that watches it.
func (e *Engine) OnAggregate(ctx context.Context, a reading.Aggregate) error {
	set := e.rules()
	if set == nil {
		return errors.New("no rules loaded")
	}
	if err := e.advance(ctx, a.Site, a.Device, LastSeen{Received: a.Received, End: a.End, Window: a.End - a.Start}); err != nil {
		return err
	}
	start, end, now := time.UnixMilli(a.Start), time.UnixMilli(a.End), e.now()
	for i := range set.Rules {
		r := &set.Rules[i]
		if !r.Matches(a.Site, a.Device) {
			continue
		}
		var step func(alert.State) (alert.State, []alert.Change)
		switch r.Kind {
		case rules.Threshold:
			stats, ok := a.Metrics[r.Metric]
			if r.Window != a.Window || !ok {
				continue
			}
			v := r.Value(stats)
			step = func(s alert.State) (alert.State, []alert.Change) { return alert.Observe(s, r, v, start, end, now) }
		case rules.Offline:
			seen, _ := e.seen.Get(a.Site + "." + a.Device)
			step = func(s alert.State) (alert.State, []alert.Change) {
				return alert.Silence(s, r, seen.Heard(), now, false) // data only ever resolves
			}
		}
		e.metrics.Evaluations.WithLabelValues(string(r.Kind)).Inc()
		if err := e.update(ctx, r, a.Site, a.Device, step); err != nil {
			return err
		}
	}
	return nil
}

// Tick runs what the clock drives: offline rules (firing only when
// caughtUp, i.e. the windows read so far are current), reminders and
// Alertmanager re-sends of firing alerts, the sweep of outboxes left
// behind, and the alert gauges.
func (e *Engine) Tick(ctx context.Context, caughtUp bool) error {
	set := e.rules()
	if set == nil {
		return nil
	}
	now := e.now()
	var errs []error
	e.seen.Each(func(dev string, seen LastSeen, _ uint64) {
		site, device, _ := strings.Cut(dev, ".")
		for i := range set.Rules {
			r := &set.Rules[i]
			if r.Kind != rules.Offline || !r.Matches(site, device) {
				continue
			}
			e.metrics.Evaluations.WithLabelValues(string(rules.Offline)).Inc()
			errs = append(errs, e.update(ctx, r, site, device, func(s alert.State) (alert.State, []alert.Change) {
				return alert.Silence(s, r, seen.Heard(), now, caughtUp)
			}))
		}
	})
	var firing, pending int
	e.states.Each(func(key string, rec alert.Record, rev uint64) {
		r := set.Rule(rec.Rule)
		if r == nil {
			return // a rule that was removed: its alerts are left as they are
		}
		switch rec.Phase {
		case alert.Firing:
			firing++
			if to := set.Reminded(r); r.Repeat > 0 && len(to) > 0 {
				errs = append(errs, e.update(ctx, r, rec.Site, rec.Device, func(s alert.State) (alert.State, []alert.Change) {
					next, cs := alert.Remind(s, r, now)
					for i := range cs {
						cs[i].Channels = to
					}
					return next, cs
				}))
			}
			// Alertmanager forgets an alert that is not sent again (at the
			// endsAt of the last send): the compare-and-set lets one replica
			// re-send it per interval, and the interval counts from the
			// record, so a restart or another replica carries on.
			if every, to := set.Resend(r); every > 0 {
				errs = append(errs, e.update(ctx, r, rec.Site, rec.Device, func(s alert.State) (alert.State, []alert.Change) {
					return alert.Resend(s, every, to, now)
				}))
			}
		case alert.Pending:
			pending++
		}
	})
	e.metrics.Alerts.WithLabelValues("firing").Set(float64(firing))
	e.metrics.Alerts.WithLabelValues("pending").Set(float64(pending))
	errs = append(errs, e.Sweep(ctx, false))
	return errors.Join(errs...)
}

// Sweep publishes the outboxes that their writer left behind (it died, or
// NATS failed), or every outbox when all is set (at start-up).
func (e *Engine) Sweep(ctx context.Context, all bool) error {
	now := e.now()
	var errs []error
	e.states.Each(func(key string, rec alert.Record, rev uint64) {
		if len(rec.Outbox) == 0 || (!all && now.Sub(rec.Written) < e.sweepAge) {
			return
		}
		e.log.Info("publishing an outbox left behind", "alert", key, "messages", len(rec.Outbox), "written", rec.Written)
		if err := e.publish(ctx, rec.Outbox); err != nil {
			errs = append(errs, err)
			return
		}
		e.clearOutbox(ctx, key, rec, rev)
	})
	return errors.Join(errs...)
}

// update applies one step of the state machine to an alert by
// compare-and-set, then publishes the step's messages.
func (e *Engine) update(ctx context.Context, r *rules.Rule, site, device string,
	step func(alert.State) (alert.State, []alert.Change)) error {
	key := alert.Key(r.Name, site, device)
	rec, rev := e.states.Get(key)
	for range maxAttempts {
		if len(rec.Outbox) > 0 {
			// An earlier change was committed but maybe not published:
			// publish it first, so messages go out in order.
			if err := e.publish(ctx, rec.Outbox); err != nil {
				return err
			}
		}
		cur := rec.State
		if rev == 0 {
			cur = alert.State{Rule: r.Name, Site: site, Device: device, Phase: alert.OK}
		}
		next, changes := step(cur)
		if next == cur {
			if len(rec.Outbox) > 0 {
				e.clearOutbox(ctx, key, rec, rev)
			}
			return nil
		}
		out, err := alert.Messages(next, r, changes)
		if err != nil {
			return err
		}
		written := alert.Record{State: next, Outbox: out, Written: e.now()}
		newRev, err := e.states.Save(ctx, key, written, rev)
		if errors.Is(err, kvmirror.ErrConflict) {
			e.metrics.Conflicts.Inc()
			if rec, rev, err = e.states.Load(ctx, key); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, c := range changes {
			state := string(c.Phase)
			switch {
			case c.Repeat:
				state = "repeat"
			case c.Resend:
				// Not a change, and every minute per firing alert: counted
				// (edgeflow_notifier_resends_total), not logged.
				e.metrics.Resends.Inc()
				continue
			}
			e.metrics.Transitions.WithLabelValues(state).Inc()
			e.log.Info("alert "+state, "alert", key, "value", next.Value, "threshold", next.Threshold,
				"since", next.Since, "seq", c.Seq, "severity", next.Severity)
		}
		if e.crashAfterCommit != nil && e.crashAfterCommit(key) {
			return errCrashed
		}
		if len(out) == 0 {
			return nil
		}
		if err := e.publish(ctx, out); err != nil {
			return err // committed: the next change or the sweeper publishes it
		}
		e.clearOutbox(ctx, key, written, newRev)
		return nil
	}
	return fmt.Errorf("alert %s: still conflicting after %d attempts", key, maxAttempts)
}

// publish sends an outbox. JetStream drops a message whose ID it has seen
// within the streams' duplicate window, so publishing twice is harmless.
func (e *Engine) publish(ctx context.Context, out []alert.Message) error {
	for _, m := range out {
		msg := nats.NewMsg(m.Subject)
		msg.Data = m.Data
		msg.Header.Set(jetstream.MsgIDHeader, m.ID)
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		_, err := e.js.PublishMsg(pctx, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("publish %s on %s: %w", m.ID, m.Subject, err)
		}
	}
	return nil
}

// clearOutbox removes a published outbox. Losing the compare-and-set is
// fine: whoever changed the record published the outbox first.
func (e *Engine) clearOutbox(ctx context.Context, key string, rec alert.Record, rev uint64) {
	rec.Outbox = nil
	if _, err := e.states.Save(ctx, key, rec, rev); err != nil && !errors.Is(err, kvmirror.ErrConflict) {
		e.log.Warn("clear outbox; the sweeper will publish it again (deduplicated)", "alert", key, "err", err)
	}
}

// advance records that a device was heard from, as a window tells
// (LastSeen.replacedBy).
func (e *Engine) advance(ctx context.Context, site, device string, w LastSeen) error {
	key := site + "." + device
	cur, rev := e.seen.Get(key)
	for range maxAttempts {
		if rev != 0 && !cur.replacedBy(w) {
			return nil
		}
		_, err := e.seen.Save(ctx, key, w, rev)
		if !errors.Is(err, kvmirror.ErrConflict) {
			return err
		}
		if cur, rev, err = e.seen.Load(ctx, key); err != nil {
			return err
		}
	}
	return fmt.Errorf("last seen %s: still conflicting after %d attempts", key, maxAttempts)
}
