package reading_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func TestAlertRoundTrip(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	a := reading.Alert{Rule: "hot", Site: "lab", Device: "t1", State: "firing", Severity: "critical", Value: 42.5,
		Threshold: 40, Since: since, At: since.Add(time.Minute), Summary: "hot"}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	// The field names of the contract (docs/architecture.md, ALERTS).
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rule", "site", "device", "state", "severity", "value", "threshold", "since", "at"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("no %q in %s", k, data)
		}
	}
	got, err := reading.UnmarshalAlert(data)
	if err != nil || got != a {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	for _, bad := range []string{`{"rule":"a.b","site":"s","device":"d"}`, `{"rule":"r","site":"","device":"d"}`, `{"rule":"r","site":"s","device":"<d>"}`} {
		if _, err := reading.UnmarshalAlert([]byte(bad)); !errors.Is(err, reading.ErrName) {
			t.Errorf("UnmarshalAlert(%s) = %v, want ErrName", bad, err)
		}
	}
	if _, err := reading.UnmarshalAlert([]byte(`{`)); err == nil || errors.Is(err, reading.ErrName) {
		t.Errorf("truncated: %v", err)
	}
}
