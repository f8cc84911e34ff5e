package chaos

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func testSummary() *Summary {
	at := time.Date(2026, 11, 25, 23, 56, 8, 0, time.UTC)
	return &Summary{
		Seed: 42, Started: at, Elapsed: 353 * time.Second, SteadyLag: 400 * time.Millisecond, Pass: false,
		Config:   RunConfig{Duration: "5m0s", Devices: 60, Rate: 600, Processors: 3, NATSServers: 1, Windows: []string{"10s", "1m"}},
		Problems: []string{"telemetry_10s counts 9 temperature readings, the broker acknowledged 10 (-1)"},
		Faults: []Fault{{N: 1, Time: at, At: 15 * time.Second, Target: "nats-1", Kind: KindKill, Down: 1757 * time.Millisecond,
			ReadyAfter: 1760 * time.Millisecond, DrainedAfter: 2020 * time.Millisecond, PeakLag: 2120 * time.Millisecond, Late: 3}},
		Load:    LoadTotals{Attempted: 10, Acked: 10},
		Counted: map[string]map[string]int64{"10s": {"temperature": 9, "humidity": 10, "pressure": 10}},
		Ready:   map[string]bool{"nats-1": true, "ingest": false},
	}
}

// The JSON summary gives durations once, in seconds, under stable names.
func TestSummaryJSON(t *testing.T) {
	b, err := json.Marshal(testSummary())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["elapsed_seconds"] != 353.0 || got["steady_lag_seconds"] != 0.4 || got["seed"] != 42.0 {
		t.Fatalf("summary JSON %s", b)
	}
	for _, k := range []string{"Elapsed", "SteadyLag"} {
		if _, ok := got[k]; ok {
			t.Errorf("summary JSON has %s in nanoseconds: %s", k, b)
		}
	}
	f := got["faults"].([]any)[0].(map[string]any)
	want := map[string]any{"n": 1.0, "target": "nats-1", "kind": "kill", "at_seconds": 15.0, "down_seconds": 1.76,
		"ready_after_seconds": 1.76, "drained_after_seconds": 2.02, "peak_lag_seconds": 2.12, "late": 3.0}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("fault %s = %v, want %v (%s)", k, f[k], v, b)
		}
	}
	for _, k := range []string{"At", "Down", "ReadyAfter", "DrainedAfter", "PeakLag"} {
		if _, ok := f[k]; ok {
			t.Errorf("fault JSON has %s in nanoseconds", k)
		}
	}
}

// The text and Markdown summaries carry the verdict, each fault and what
// is not ready.
func TestSummaryText(t *testing.T) {
	var text, md bytes.Buffer
	s := testSummary()
	s.WriteText(&text)
	s.WriteMarkdown(&md)
	for _, want := range []string{"chaos FAIL  seed 42", "nats-1", "kill", "1.8s", "NOT ready at the end: ingest", "temperature 9 (-1)", "PROBLEM: telemetry_10s"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{"seed 42: **FAIL**", "| 1 | 15.0s | 23:56:08.000 | nats-1 | kill | 1.8s | 1.8s | 2.0s | 2.1s | 3 |  |", "| ready at the end | 1 of 2 |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown summary lacks %q:\n%s", want, md.String())
		}
	}
}
