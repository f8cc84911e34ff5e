package reading

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Stats are the aggregates of one metric over one closed window.
type Stats struct {
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
	First float64 `json:"first"`
	Last  float64 `json:"last"`
}

// Aggregate is one closed window of one device, as published on AGGREGATES
// and written to InfluxDB as one point per metric.
type Aggregate struct {
	Site   string `json:"site"`
	Device string `json:"device"`
	// Window is the window's name, such as "10s" or "1m" (WindowName).
	Window string `json:"window"`
	// Start and End bound the window in Unix milliseconds, [Start, End).
	Start   int64            `json:"start"`
	End     int64            `json:"end"`
	Metrics map[string]Stats `json:"metrics"`
	// Received is when ingest received the device's newest reading (Unix
	// ms, ingest's clock: Reading.Received), as of the window's close, so
	// at least that of the window's own readings. It says when the device
	// was last heard from whatever its own clock says; 0 from a processor
	// that predates it.
	Received int64 `json:"received,omitempty"`
}

// MsgID is the deduplication ID of the aggregate: a window flushed again
// after a takeover is the same message.
func (a *Aggregate) MsgID() string {
	return "agg." + a.Window + "." + a.Site + "." + a.Device + "." + strconv.FormatInt(a.Start, 10)
}

// UnmarshalAggregate decodes and validates an aggregate from AGGREGATES.
func UnmarshalAggregate(data []byte) (Aggregate, error) {
	var a Aggregate
	if err := json.Unmarshal(data, &a); err != nil {
		return a, fmt.Errorf("decode aggregate: %w", err)
	}
	if !ValidName(a.Site) || !ValidName(a.Device) || !ValidName(a.Window) {
		return a, fmt.Errorf("aggregate names: %w", ErrName)
	}
	for name := range a.Metrics {
		if !ValidName(name) {
			return a, fmt.Errorf("aggregate metric %q: %w", Truncate(name, 80), ErrName)
		}
	}
	return a, nil
}

// WindowName is the canonical short name of a window length ("10s", "1m",
// "1h", "500ms"): it is a subject token and part of the InfluxDB measurement
// name (telemetry_1m).
func WindowName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
}
