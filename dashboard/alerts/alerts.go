// Package alerts is the dashboard's view of the ALERTS stream: the current
// state of every alert (one per site, device and rule) and a bounded history
// of state changes. Alerts come from another service, so every field is
// checked before it is kept.
package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// States of the contract (ALERTS: pending, firing, resolved).
const (
	Pending  = "pending"
	Firing   = "firing"
	Resolved = "resolved"
)

// Alert is one alert state change as published on alerts.{site}.{device}.{rule}.
type Alert struct {
	Rule      string   `json:"rule"`
	Site      string   `json:"site"`
	Device    string   `json:"device"`
	State     string   `json:"state"`
	Severity  string   `json:"severity"`
	Value     *float64 `json:"value,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	Since     int64    `json:"since"` // Unix ms the alert entered State
	At        int64    `json:"at"`    // Unix ms of this change
	Seq       uint64   `json:"seq"`   // ALERTS stream sequence
}

// ErrInvalid reports an alert that does not keep the contract.
var ErrInvalid = errors.New("invalid alert")

// wire is the contract's JSON; times may be Unix ms (or s) or RFC 3339.
type wire struct {
	Rule      string          `json:"rule"`
	Site      string          `json:"site"`
	Device    string          `json:"device"`
	State     string          `json:"state"`
	Severity  string          `json:"severity"`
	Value     *float64        `json:"value"`
	Threshold *float64        `json:"threshold"`
	Since     json.RawMessage `json:"since"`
	At        json.RawMessage `json:"at"`
}

// Parse decodes and validates one message of the ALERTS stream.
func Parse(data []byte, seq uint64) (Alert, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return Alert{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for field, v := range map[string]string{"rule": w.Rule, "site": w.Site, "device": w.Device} {
		if !reading.ValidName(v) {
			return Alert{}, fmt.Errorf("%w: %s %q", ErrInvalid, field, reading.Truncate(v, 80))
		}
	}
	switch w.State {
	case Pending, Firing, Resolved:
	default:
		return Alert{}, fmt.Errorf("%w: state %q", ErrInvalid, reading.Truncate(w.State, 80))
	}
	if w.Severity != "" && !reading.ValidName(w.Severity) {
		return Alert{}, fmt.Errorf("%w: severity %q", ErrInvalid, reading.Truncate(w.Severity, 80))
	}
	a := Alert{Rule: w.Rule, Site: w.Site, Device: w.Device, State: w.State, Severity: w.Severity,
		Value: finite(w.Value), Threshold: finite(w.Threshold), Seq: seq}
	var err error
	if a.Since, err = parseTime(w.Since); err != nil {
		return Alert{}, fmt.Errorf("%w: since: %v", ErrInvalid, err)
	}
	if a.At, err = parseTime(w.At); err != nil {
		return Alert{}, fmt.Errorf("%w: at: %v", ErrInvalid, err)
	}
	return a, nil
}

func finite(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	return v
}

// parseTime accepts Unix milliseconds, Unix seconds (below 1e11) or an
// RFC 3339 string; absent means 0.
func parseTime(raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, err
		}
		t, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return 0, err
		}
		return t.UnixMilli(), nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	if f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("bad time %s", s)
	}
	if f < 1e11 {
		f *= 1000
	}
	return int64(f), nil
}

// Key identifies one alert: site/device/rule.
func (a Alert) Key() string { return a.Site + "/" + a.Device + "/" + a.Rule }

// Book holds the current state of every alert and the latest changes.
// Safe for concurrent use.
type Book struct {
	maxAlerts, maxHistory int

	mu      sync.RWMutex
	current map[string]Alert
	history []Alert // ordered by Seq, at most maxHistory
}

// NewBook keeps at most maxAlerts current alerts (resolved ones are
// forgotten first) and maxHistory changes.
func NewBook(maxAlerts, maxHistory int) *Book {
	return &Book{maxAlerts: maxAlerts, maxHistory: maxHistory, current: map[string]Alert{}}
}

// Apply records a state change. Changes older (by sequence) than what is
// known are kept in the history only. It reports whether the current state
// changed.
func (b *Book) Apply(a Alert) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addHistory(a)
	if old, ok := b.current[a.Key()]; ok && old.Seq >= a.Seq {
		return false
	}
	b.current[a.Key()] = a
	if len(b.current) > b.maxAlerts {
		b.evict()
	}
	return true
}

// AddHistory records a change in the history only (the start-up read of
// the stream's tail).
func (b *Book) AddHistory(a Alert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addHistory(a)
}

func (b *Book) addHistory(a Alert) {
	i := sort.Search(len(b.history), func(i int) bool { return b.history[i].Seq >= a.Seq })
	if i < len(b.history) && b.history[i].Seq == a.Seq {
		return
	}
	b.history = append(b.history, Alert{})
	copy(b.history[i+1:], b.history[i:])
	b.history[i] = a
	if over := len(b.history) - b.maxHistory; over > 0 {
		b.history = append(b.history[:0], b.history[over:]...)
	}
}

// evict forgets the oldest resolved alert, else the oldest of any state.
func (b *Book) evict() {
	var victim string
	var oldest uint64 = math.MaxUint64
	for k, a := range b.current {
		if a.State == Resolved && a.Seq < oldest {
			victim, oldest = k, a.Seq
		}
	}
	if victim == "" {
		for k, a := range b.current {
			if a.Seq < oldest {
				victim, oldest = k, a.Seq
			}
		}
	}
	delete(b.current, victim)
}

// Snapshot is what the browser reads: firing alerts first (the banner),
// then pending, then recently resolved, and the history newest first.
type Snapshot struct {
	Firing   []Alert `json:"firing"`
	Pending  []Alert `json:"pending"`
	Resolved []Alert `json:"resolved"`
	History  []Alert `json:"history,omitempty"`
}

// Snapshot returns the current alerts and, if withHistory, the history.
func (b *Book) Snapshot(withHistory bool) Snapshot {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s := Snapshot{Firing: []Alert{}, Pending: []Alert{}, Resolved: []Alert{}}
	for _, a := range b.current {
		switch a.State {
		case Firing:
			s.Firing = append(s.Firing, a)
		case Pending:
			s.Pending = append(s.Pending, a)
		default:
			s.Resolved = append(s.Resolved, a)
		}
	}
	for _, l := range [][]Alert{s.Firing, s.Pending, s.Resolved} {
		sort.Slice(l, func(i, j int) bool { return l[i].Seq > l[j].Seq })
	}
	if len(s.Resolved) > 50 {
		s.Resolved = s.Resolved[:50]
	}
	if withHistory {
		s.History = make([]Alert, len(b.history))
		for i, a := range b.history {
			s.History[len(b.history)-1-i] = a
		}
	}
	return s
}
