package main

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func hist(counts ...uint64) Histogram {
	// Bounds 1, 2, 4, 8 and +Inf; counts are cumulative.
	bounds := []float64{1, 2, 4, 8, math.Inf(1)}
	h := Histogram{}
	for i, c := range counts {
		h.Buckets = append(h.Buckets, Bucket{UpperBound: bounds[i], Count: c})
		h.Count = c
	}
	return h
}

func TestQuantileInterpolatesInTheBucket(t *testing.T) {
	h := hist(0, 50, 90, 100, 100)
	for _, c := range []struct{ q, want float64 }{
		{0.5, 2},    // rank 50: the top of (1,2]
		{0.25, 1.5}, // rank 25: half-way through (1,2], which holds 50
		{0.7, 3},    // rank 70: half-way through (2,4], which holds 40
		{0.99, 7.6}, // rank 99: 9 of 10 through (4,8]
	} {
		if got := h.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	if h.Overflows(0.99) {
		t.Error("p99 within the buckets reported as overflowing")
	}
}

func TestQuantileFirstBucketStartsAtZero(t *testing.T) {
	if got := hist(10, 10, 10, 10, 10).Quantile(0.5); got != 0.5 {
		t.Errorf("got %v, want 0.5", got)
	}
}

func TestQuantileBeyondTheLastBucket(t *testing.T) {
	h := hist(0, 0, 0, 90, 100)
	if got := h.Quantile(0.99); got != 8 {
		t.Errorf("got %v, want the last finite bound 8", got)
	}
	if !h.Overflows(0.99) || h.Overflows(0.5) {
		t.Error("overflow: want p99 beyond, p50 within")
	}
}

func TestQuantileWithoutObservationsIsNaN(t *testing.T) {
	if got := hist(0, 0, 0, 0, 0).Quantile(0.5); !math.IsNaN(got) {
		t.Errorf("got %v, want NaN", got)
	}
	if got := (Histogram{}).Quantile(0.99); !math.IsNaN(got) {
		t.Errorf("empty: got %v, want NaN", got)
	}
}

func TestHistogramSubIsTheStepsObservations(t *testing.T) {
	before := hist(10, 20, 30, 40, 40)
	after := hist(10, 70, 130, 140, 140)
	d := after.Sub(before)
	if d.Count != 100 || d.Buckets[0].Count != 0 || d.Buckets[1].Count != 50 || d.Buckets[2].Count != 100 {
		t.Fatalf("delta %+v", d)
	}
	if got := d.Quantile(0.5); got != 2 {
		t.Errorf("p50 of the delta %v, want 2", got)
	}
	// A restarted service (counts went down) gives its own histogram.
	if got := before.Sub(after); got.Count != before.Count {
		t.Errorf("reset: %+v", got)
	}
}

func TestScrapeReadsCountersAndHistograms(t *testing.T) {
	text := `# TYPE edgeflow_ingest_messages_in_total counter
edgeflow_ingest_messages_in_total 42
# TYPE edgeflow_ingest_messages_deadlettered_total counter
edgeflow_ingest_messages_deadlettered_total{reason="empty"} 2
edgeflow_ingest_messages_deadlettered_total{reason="bad_topic"} 3
# TYPE edgeflow_ingest_ack_latency_seconds histogram
edgeflow_ingest_ack_latency_seconds_bucket{le="0.001"} 5
edgeflow_ingest_ack_latency_seconds_bucket{le="0.002"} 9
edgeflow_ingest_ack_latency_seconds_bucket{le="+Inf"} 10
edgeflow_ingest_ack_latency_seconds_sum 0.02
edgeflow_ingest_ack_latency_seconds_count 10
`
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	s := Scrape(fams)
	if s.Value(metricIngestIn) != 42 || s.Value(metricIngestDeadLets) != 5 || s.Value("absent") != 0 {
		t.Errorf("values: in %v, dead-lettered %v", s.Value(metricIngestIn), s.Value(metricIngestDeadLets))
	}
	h := s.Histogram(metricIngestLatency)
	if h.Count != 10 || len(h.Buckets) != 3 || h.Buckets[1].Count != 9 {
		t.Fatalf("histogram %+v", h)
	}
	if got := h.Quantile(0.5); got != 0.001 {
		t.Errorf("p50 %v", got)
	}
}
