package reading

import (
	"encoding/json"
	"fmt"
	"time"
)

// Alert is one alert state change, as the notifier publishes it on ALERTS
// (AlertSubject) for the dashboard: which rule, for which device, entered
// which state, with the value that made it.
type Alert struct {
	Rule   string `json:"rule"`
	Site   string `json:"site"`
	Device string `json:"device"`
	// State is pending, firing or resolved (also a pending alert whose
	// condition cleared before it fired).
	State    string  `json:"state"`
	Severity string  `json:"severity"`
	Value    float64 `json:"value"`
	// Threshold is the rule's threshold; for a device-offline rule, Value
	// and Threshold are seconds of silence.
	Threshold float64 `json:"threshold"`
	// Since is when the condition began (pending, firing; for an offline
	// alert the device's last data) or ended (resolved), in event time.
	Since time.Time `json:"since"`
	// At is when the notifier made the change (wall clock).
	At time.Time `json:"at"`
	// Summary is one human-readable line.
	Summary string `json:"summary,omitempty"`
}

// UnmarshalAlert decodes and validates an alert from ALERTS.
func UnmarshalAlert(data []byte) (Alert, error) {
	var a Alert
	if err := json.Unmarshal(data, &a); err != nil {
		return a, fmt.Errorf("decode alert: %w", err)
	}
	if !ValidName(a.Rule) || !ValidName(a.Site) || !ValidName(a.Device) {
		return a, fmt.Errorf("alert names: %w", ErrName)
	}
	return a, nil
}
