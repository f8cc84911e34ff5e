// Package alert is the alert state machine: ok → pending → firing →
// resolved, one State per rule and device. Its functions are pure (the
// clock is an argument), so every transition is unit-tested without I/O;
// the notifier keeps the states in a NATS key-value bucket and changes them
// by compare-and-set (../engine.go).
package alert

import (
	"encoding/json"
	"time"
)

// Phase is where an alert is in its life.
type Phase string

// Phases. Resolved behaves as OK; it is kept apart so that readers see that
// the alert was active and ended. ALERTS carries pending, firing and
// resolved; OK is only the state of an alert that never started.
const (
	OK       Phase = "ok"
	Pending  Phase = "pending" // breaching, but not yet for the rule's `for`
	Firing   Phase = "firing"
	Resolved Phase = "resolved"
)

// Key is the KV key of one rule's alert for one device. Every part is a
// validated name, so the key is a valid KV key and subject suffix.
func Key(rule, site, device string) string { return rule + "." + site + "." + device }

// State is one alert: one rule for one device.
type State struct {
	Rule     string `json:"rule"`
	Site     string `json:"site"`
	Device   string `json:"device"`
	Phase    Phase  `json:"state"`
	Severity string `json:"severity,omitempty"`
	// Value is the value of the last change: the aggregate for a threshold
	// rule, seconds of silence for an offline rule.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	// Since is when the condition began (pending, firing: the start of the
	// first breaching window, or an offline device's last data) or ended
	// (resolved, ok), in event time.
	Since time.Time `json:"since,omitzero"`
	// At is when the phase last changed, by the wall clock.
	At time.Time `json:"at,omitzero"`
	// LastEnd is the end (Unix ms) of the newest window that changed the
	// state. A window that ends no later is a redelivery or arrived out of
	// order, and is ignored: this is what makes evaluating a window twice
	// harmless.
	LastEnd int64 `json:"last_end,omitempty"`
	// Notified is when the last firing or repeat notification was made.
	Notified time.Time `json:"notified,omitzero"`
	// Resent is when a firing alert was last re-sent to its rule's
	// alertmanager channels (Resend).
	Resent time.Time `json:"resent,omitzero"`
	// Seq numbers the changes of this alert; message IDs derive from it, so
	// a change published twice is deduplicated by JetStream.
	Seq uint64 `json:"seq"`
}

// Active reports whether the alert is pending or firing.
func (s State) Active() bool { return s.Phase == Pending || s.Phase == Firing }

// Record is what the ALERT_STATE bucket holds for one alert: its state and
// the messages its last change must still publish (an outbox). A change and
// its messages are committed together by one compare-and-set; the messages
// are published afterwards with IDs JetStream deduplicates, and then cleared.
// Whoever finds a record with an outbox (the next change, the sweeper of any
// replica, a restarted replica) publishes it again, so a replica that dies
// between the commit and the publish loses nothing.
type Record struct {
	State
	Outbox []Message `json:"outbox,omitempty"`
	// Written is when the record was committed (wall clock): the sweeper
	// leaves a fresh outbox to the replica that is publishing it.
	Written time.Time `json:"written,omitzero"`
}

// Message is one message of an outbox.
type Message struct {
	Subject string          `json:"subject"`
	ID      string          `json:"id"` // Nats-Msg-Id
	Data    json.RawMessage `json:"data"`
}
