package alert

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// Notification is what a channel delivers: the body of a webhook, the
// source of a Slack message and of an e-mail. Its JSON is the documented
// webhook schema (README, "Webhook body").
type Notification struct {
	// ID is the same on every attempt to deliver this notification, and
	// differs between notifications: a receiver that may see a retry twice
	// (delivery is at least once) deduplicates by it.
	ID string `json:"id"`
	reading.Alert
	// Repeat marks a reminder of an alert that is still firing.
	Repeat bool `json:"repeat"`
	// Resend marks a firing alert sent again to Alertmanager (only
	// alertmanager channels get these).
	Resend bool `json:"resend,omitempty"`
	// Kind is the rule's type, threshold or offline.
	Kind string `json:"kind"`
	// The comparison of a threshold rule.
	Metric    string   `json:"metric,omitempty"`
	Aggregate string   `json:"aggregate,omitempty"`
	Window    string   `json:"window,omitempty"`
	Op        string   `json:"op,omitempty"`
	Clear     *float64 `json:"clear,omitempty"`
	// Seq numbers the changes of this alert (rule, site, device).
	Seq uint64 `json:"seq"`
}

// Event returns the ALERTS message of the alert's current state.
func Event(s State, r *rules.Rule, c Change) reading.Alert {
	return reading.Alert{
		Rule: s.Rule, Site: s.Site, Device: s.Device, State: string(c.Phase), Severity: s.Severity,
		Value: s.Value, Threshold: s.Threshold, Since: s.Since, At: s.At, Summary: Summary(s, r, c),
	}
}

// Notify returns the notification of one change.
func Notify(s State, r *rules.Rule, c Change) Notification {
	n := Notification{
		ID:    notificationID(s, c),
		Alert: Event(s, r, c), Repeat: c.Repeat, Resend: c.Resend, Kind: string(r.Kind), Seq: c.Seq,
	}
	if c.Repeat {
		n.At = s.Notified
	}
	if c.Resend {
		n.At = s.Resent
	}
	if r.Kind == rules.Threshold {
		n.Metric, n.Aggregate, n.Window, n.Op = r.Metric, r.Aggregate, r.Window, string(r.Op)
		if r.HasClear {
			clear := r.Clear
			n.Clear = &clear
		}
	}
	return n
}

// notificationID is {rule}.{site}.{device}.{seq}, and for a re-send, which
// keeps the seq, .r{Unix ms of the re-send} after it.
func notificationID(s State, c Change) string {
	id := Key(s.Rule, s.Site, s.Device) + "." + strconv.FormatUint(c.Seq, 10)
	if c.Resend {
		id += ".r" + strconv.FormatInt(s.Resent.UnixMilli(), 10)
	}
	return id
}

// Messages is the outbox of one step: every state change on ALERTS, and
// every notification on each of the rule's channels (or the change's own).
func Messages(s State, r *rules.Rule, changes []Change) ([]Message, error) {
	var out []Message
	for _, c := range changes {
		id := notificationID(s, c)
		if !c.Repeat && !c.Resend {
			data, err := json.Marshal(Event(s, r, c))
			if err != nil {
				return nil, fmt.Errorf("encode alert %s: %w", id, err)
			}
			out = append(out, Message{Subject: reading.AlertSubject(s.Site, s.Device, s.Rule), ID: id, Data: data})
		}
		if !c.Notifies() {
			continue
		}
		data, err := json.Marshal(Notify(s, r, c))
		if err != nil {
			return nil, fmt.Errorf("encode notification %s: %w", id, err)
		}
		channels := r.Channels
		if c.Channels != nil {
			channels = c.Channels
		}
		for _, ch := range channels {
			out = append(out, Message{Subject: reading.NotificationSubject(ch), ID: id + "." + ch, Data: data})
		}
	}
	return out, nil
}

// Summary is one line for people: what, where, how much.
func Summary(s State, r *rules.Rule, c Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s ", s.Severity, s.Rule)
	switch {
	case c.Repeat:
		b.WriteString("still firing")
	case c.Resend:
		b.WriteString("firing") // the same words every time: Alertmanager's annotation
	case c.Phase == Resolved && c.From == Pending:
		b.WriteString("cleared before firing")
	default:
		b.WriteString(string(c.Phase))
	}
	fmt.Fprintf(&b, ": %s/%s ", s.Site, s.Device)
	if r.Kind == rules.Offline {
		if c.Phase == Resolved {
			b.WriteString("sends data again")
		} else {
			fmt.Fprintf(&b, "sent nothing for %ss (limit %s)", num(s.Value), r.After)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s %s over %s is %s", r.Metric, r.Aggregate, r.Window, num(s.Value))
	switch c.Phase {
	case Resolved:
		if r.HasClear {
			if r.Op == rules.Above || r.Op == rules.AtLeast {
				fmt.Fprintf(&b, " (clears below %s)", num(r.Clear))
			} else {
				fmt.Fprintf(&b, " (clears above %s)", num(r.Clear))
			}
		}
	case Pending:
		fmt.Fprintf(&b, " (%s %s, firing after %s)", r.Op, num(r.Threshold), r.For)
	default:
		fmt.Fprintf(&b, " (%s %s)", r.Op, num(r.Threshold))
	}
	return b.String()
}

// num prints a value with at most two decimals.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
