package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// A window whose aggregate does not encode (a non-finite value) is never
// published empty on AGGREGATES: it is dead-lettered with its reason and
// counted, and the other windows are published as usual. (Before, the
// encoding error was ignored and an empty message went out, which the
// notifier dead-lettered as invalid without saying where it came from.)
func TestUnencodableWindowIsDeadLettered(t *testing.T) {
	b := newTestBus(t)
	w := &worker{p: 0, js: b.js, metrics: NewMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	const start = 1732560000000
	good := reading.Aggregate{Site: "lab", Device: "ok", Window: "1s", Start: start, End: start + 1000,
		Metrics: map[string]reading.Stats{"t": {Count: 1, Sum: 1, Min: 1, Max: 1, Mean: 1, First: 1, Last: 1}}}
	bad := good
	bad.Device = "inf"
	bad.Metrics = map[string]reading.Stats{"t": {Count: 2, Sum: math.Inf(1), Min: 1e308, Max: 1e308, Mean: math.Inf(1), First: 1e308, Last: 1e308}}
	nan := good
	nan.Device = "nan"
	nan.Metrics = map[string]reading.Stats{"t": {Count: 1, Sum: math.NaN(), Min: math.NaN(), Max: math.NaN(), Mean: math.NaN(), First: math.NaN(), Last: math.NaN()}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.publish(ctx, []reading.Aggregate{bad, good, nan}); err != nil {
		t.Fatal(err)
	}

	aggs := streamMsgs(t, b.js, bus.StreamAggregates)
	if len(aggs) != 1 {
		var bodies []string
		for _, m := range aggs {
			bodies = append(bodies, string(m.Data()))
		}
		t.Fatalf("%d windows on AGGREGATES %q, want 1 (the finite one)", len(aggs), bodies)
	}
	if a, err := reading.UnmarshalAggregate(aggs[0].Data()); err != nil || a.Device != "ok" {
		t.Fatalf("AGGREGATES holds %q (%v), want the finite window", aggs[0].Data(), err)
	}
	dead := streamMsgs(t, b.js, bus.StreamDeadLetter)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for _, m := range dead {
		if r := m.Headers().Get(bus.HeaderReason); r != "invalid_aggregate" {
			t.Errorf("dead letter reason %q, want invalid_aggregate", r)
		}
		if len(m.Data()) == 0 || m.Headers().Get(bus.HeaderDetail) == "" || m.Headers().Get(bus.HeaderSource) == "" {
			t.Errorf("dead letter without body, detail or source: %q %v", m.Data(), m.Headers())
		}
	}
	if n := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("invalid_aggregate")); n != 2 {
		t.Fatalf("%v counted as invalid_aggregate, want 2", n)
	}
}
