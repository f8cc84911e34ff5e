// Package reading is the normalised measurement that ingest publishes on the
// TELEMETRY stream and every other service reads. It is the one payload model
// the services share; docs/architecture.md is its contract.
package reading

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Reading is one device's measurements at one instant of event time.
type Reading struct {
	Site   string `json:"site"`
	Device string `json:"device"`
	// TS is the event time in Unix milliseconds: the device's own time when it
	// sent one, else the time ingest received the message.
	TS int64 `json:"ts"`
	// Seq is the device's own sequence number, when it sends one.
	Seq *uint64 `json:"seq,omitempty"`
	// Metrics maps a validated metric name to a finite value.
	Metrics map[string]float64 `json:"metrics"`
	// Received is when ingest received the message, Unix milliseconds.
	Received int64 `json:"rx"`
	// DeviceTime is true when TS came from the device, false when ingest
	// stamped it. Deduplication relies only on what the device sent.
	DeviceTime bool `json:"dt,omitempty"`
	// Units maps a metric to the unit the device sent with it (SenML u or
	// bu), when it sent a valid one (ValidUnit); only the dashboard reads it.
	Units map[string]string `json:"units,omitempty"`
}

// Errors returned by Validate and Unmarshal.
var (
	ErrName    = errors.New("invalid name")
	ErrMetrics = errors.New("invalid metrics")
)

// Validate checks the invariants every reading on the stream holds. Ingest
// validates before it publishes, and consumers validate again after they
// decode: a name is a NATS token, an InfluxDB tag and HTML text downstream.
func (r *Reading) Validate() error {
	if !ValidName(r.Site) {
		return fmt.Errorf("site %q: %w", Truncate(r.Site, 80), ErrName)
	}
	if !ValidName(r.Device) {
		return fmt.Errorf("device %q: %w", Truncate(r.Device, 80), ErrName)
	}
	if len(r.Metrics) == 0 {
		return fmt.Errorf("no metrics: %w", ErrMetrics)
	}
	for name, v := range r.Metrics {
		if !ValidName(name) {
			return fmt.Errorf("metric %q: %w", Truncate(name, 80), ErrName)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("metric %q is not finite: %w", name, ErrMetrics)
		}
	}
	for name, u := range r.Units {
		if _, ok := r.Metrics[name]; !ok || !ValidUnit(u) {
			return fmt.Errorf("unit %q of metric %q: %w", Truncate(u, 80), Truncate(name, 80), ErrMetrics)
		}
	}
	return nil
}

// Marshal encodes r for the TELEMETRY stream.
func (r *Reading) Marshal() ([]byte, error) { return json.Marshal(r) }

// Unmarshal decodes and validates a reading from the TELEMETRY stream.
func Unmarshal(data []byte) (Reading, error) {
	var r Reading
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("decode reading: %w", err)
	}
	return r, r.Validate()
}
