package history

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestChooseMeasurementByRange(t *testing.T) {
	def := []time.Duration{10 * time.Second, time.Minute}
	withHour := []time.Duration{time.Hour, 10 * time.Second, time.Minute}
	tests := []struct {
		rng     string
		windows []time.Duration
		meas    string
		step    time.Duration
	}{
		{"15m", def, "telemetry_10s", 10 * time.Second},
		{"1h", def, "telemetry_10s", 10 * time.Second},
		{"24h", def, "telemetry_1m", 4 * time.Minute},
		{"7d", def, "telemetry_1m", 28 * time.Minute},
		{"7d", withHour, "telemetry_1h", time.Hour},
		{"24h", withHour, "telemetry_1m", 4 * time.Minute},
		// Only 10 s windows: long ranges still read windows, never raw points.
		{"7d", []time.Duration{10 * time.Second}, "telemetry_10s", 28 * time.Minute},
	}
	for _, tt := range tests {
		p, err := Choose(tt.rng, tt.windows)
		if err != nil {
			t.Fatal(err)
		}
		if p.Measurement != tt.meas || p.Step != tt.step {
			t.Errorf("Choose(%s, %v) = %s step %s, want %s step %s", tt.rng, tt.windows, p.Measurement, p.Step, tt.meas, tt.step)
		}
		if n := p.Span / p.Step; n > TargetPoints+1 {
			t.Errorf("%s: %d points", tt.rng, n)
		}
	}
	if _, err := Choose("30d", def); !errors.Is(err, ErrRange) {
		t.Fatalf("Choose(30d) = %v, want ErrRange", err)
	}
	if _, err := Choose("1h", nil); !errors.Is(err, ErrWindows) {
		t.Fatalf("Choose without windows = %v", err)
	}
}

// A query is the fixed template filled with validated names only: anything
// else is refused before a query exists.
func TestInfluxQLOnlyFromValidNames(t *testing.T) {
	p, _ := Choose("1h", []time.Duration{10 * time.Second})
	to := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	db, q, err := p.InfluxQL("edgeflow/raw", "lab", "t-1", to.Add(-time.Hour), to)
	if err != nil {
		t.Fatal(err)
	}
	if db != "edgeflow" {
		t.Errorf("database %q, want edgeflow", db)
	}
	for _, want := range []string{`FROM "edgeflow"."raw"."telemetry_10s"`, `"site" = 'lab' AND "device" = 't-1'`,
		`time >= '2026-11-25T09:00:00Z' AND time <= '2026-11-25T10:00:00Z'`, `GROUP BY time(10s), "metric" fill(none)`} {
		if !strings.Contains(q, want) {
			t.Errorf("query lacks %q:\n%s", want, q)
		}
	}
	if _, q, _ := p.InfluxQL("edgeflow", "lab", "t1", to, to); !strings.Contains(q, `FROM "edgeflow".."telemetry_10s"`) {
		t.Errorf("a bucket without a policy reads the default one: %s", q)
	}
	if strings.Contains(q, `"telemetry"`) {
		t.Error("query reads the raw measurement")
	}
	for _, bad := range []string{`lab' or true or '`, "lab\n", "", "lab;DROP DATABASE x", "<b>", strings.Repeat("a", 65)} {
		if _, _, err := p.InfluxQL("edgeflow", bad, "t1", to, to); !errors.Is(err, ErrName) {
			t.Errorf("site %q: err %v, want ErrName", bad, err)
		}
		if _, _, err := p.InfluxQL("edgeflow", "lab", bad, to, to); !errors.Is(err, ErrName) {
			t.Errorf("device %q: err %v, want ErrName", bad, err)
		}
	}
}

// Configuration is quoted, not trusted: a bucket holding quotes stays one
// identifier (influx TestQuote has the other escapes).
func TestInfluxQLQuotesConfiguration(t *testing.T) {
	db, from := source(`ev"il/r"p`, "telemetry_1m")
	if db != `ev"il` || from != `"ev\"il"."r\"p"."telemetry_1m"` {
		t.Fatalf("source = %s, %s", db, from)
	}
}
