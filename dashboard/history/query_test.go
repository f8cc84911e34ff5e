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
func TestFluxOnlyFromValidNames(t *testing.T) {
	p, _ := Choose("1h", []time.Duration{10 * time.Second})
	q, err := p.Flux("edgeflow/autogen", "lab", "t-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`from(bucket: "edgeflow/autogen")`, `range(start: -3600s)`, `r._measurement == "telemetry_10s"`,
		`r.site == "lab" and r.device == "t-1"`, `every: 10s`} {
		if !strings.Contains(q, want) {
			t.Errorf("query lacks %q:\n%s", want, q)
		}
	}
	if strings.Contains(q, `"telemetry"`) {
		t.Error("query reads the raw measurement")
	}
	for _, bad := range []string{`lab" or true or "`, "lab\n", "", "lab)|>drop()", "<b>", strings.Repeat("a", 65)} {
		if _, err := p.Flux("edgeflow", bad, "t1"); !errors.Is(err, ErrName) {
			t.Errorf("site %q: err %v, want ErrName", bad, err)
		}
		if _, err := p.Flux("edgeflow", "lab", bad); !errors.Is(err, ErrName) {
			t.Errorf("device %q: err %v, want ErrName", bad, err)
		}
	}
}

func TestFluxStringEscapesConfiguration(t *testing.T) {
	if got := fluxString(`a"b\c${d}`); got != `"a\"b\\c\${d}"` {
		t.Fatalf("fluxString = %s", got)
	}
}
