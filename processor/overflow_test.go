package main

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/processor/window"
)

// A window whose values overflow a float64 sum is published and written like
// any other: its aggregate encodes as JSON, and InfluxDB accepts its line
// with the mean exact. (Before, sum and mean were +Inf: json.Marshal failed
// and InfluxDB refused the line.)
func TestOverflowingWindowIsWritten(t *testing.T) {
	p := startInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := NewInflux(InfluxConfig{Config: influx.Config{URL: p.URL, Bucket: "w", Timeout: 10 * time.Second}})
	defer f.Close()
	if err := f.Ensure(ctx); err != nil {
		t.Fatal(err)
	}

	s := window.NewState(window.Config{Sizes: []time.Duration{time.Second}, Lateness: time.Second, IdleGrace: time.Second})
	const ms = 1732560000000
	for i := range int64(2) {
		s.Add(reading.Reading{Site: "lab", Device: "big", TS: ms + i, Received: ms + i, Metrics: map[string]float64{"t": 1e308}})
	}
	s.Listen(time.Hour)
	aggs := s.CloseDue(time.UnixMilli(ms), true)
	if len(aggs) != 1 {
		t.Fatalf("%d windows closed, want 1", len(aggs))
	}
	if data, err := json.Marshal(aggs[0]); err != nil {
		t.Errorf("aggregate does not encode: %v", err)
	} else if a, err := reading.UnmarshalAggregate(data); err != nil || a.Metrics["t"] != aggs[0].Metrics["t"] {
		t.Errorf("aggregate decodes to %+v, %v; want %+v", a.Metrics["t"], err, aggs[0].Metrics["t"])
	}

	var b Batch
	b.AddAggregate(&aggs[0])
	if err := f.Write(ctx, b.Lines(0, b.Len())); err != nil {
		t.Fatalf("InfluxDB refused the window: %v\n%s", err, b.Lines(0, b.Len()))
	}
	db := devenv.InfluxDB{URL: p.URL, Database: "w"}
	for q, want := range map[string]float64{
		`SELECT last(mean) FROM ` + MeasurementWindowPrefix + `1s`:  1e308,
		`SELECT last(sum) FROM ` + MeasurementWindowPrefix + `1s`:   math.MaxFloat64,
		`SELECT last(count) FROM ` + MeasurementWindowPrefix + `1s`: 2,
	} {
		if got, err := db.Scalar(ctx, q); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", q, got, err, want)
		}
	}
}
