package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names the bench reads from the services.
const (
	metricIngestIn       = "edgeflow_ingest_messages_in_total"
	metricIngestBacklog  = "edgeflow_ingest_backlog"
	metricIngestLatency  = "edgeflow_ingest_ack_latency_seconds"
	metricProcessorIn    = "edgeflow_processor_messages_in_total"
	metricProcBacklog    = "edgeflow_processor_backlog"
	metricWindowLatency  = "edgeflow_processor_window_latency_seconds"
	metricCloseDelay     = "edgeflow_processor_window_close_delay_seconds"
	metricIngestDropped  = "edgeflow_ingest_messages_dropped_total"
	metricIngestDeadLets = "edgeflow_ingest_messages_deadlettered_total"
	metricProcessorLate  = "edgeflow_processor_late_total"
)

// Scrape is one reading of a service's /metrics.
type Scrape map[string]*dto.MetricFamily

// scrape reads and parses the Prometheus text exposition at url.
func scrape(ctx context.Context, url string) (Scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return Scrape(fams), nil
}

// Value is the sum over all label sets of a counter, gauge or untyped
// metric; 0 when the metric is absent (a counter with labels that was never
// incremented is absent too).
func (s Scrape) Value(name string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	var v float64
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	}
	return v
}

// Histogram returns the cumulative buckets of a histogram without labels
// (the first series when it has some).
func (s Scrape) Histogram(name string) Histogram {
	f := s[name]
	if f == nil || len(f.Metric) == 0 || f.Metric[0].Histogram == nil {
		return Histogram{}
	}
	h := f.Metric[0].Histogram
	out := Histogram{Count: h.GetSampleCount(), Sum: h.GetSampleSum()}
	for _, b := range h.Bucket {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: b.GetUpperBound(), Count: b.GetCumulativeCount()})
	}
	return out
}

// Bucket is a cumulative histogram bucket: Count observations were <= UpperBound.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      uint64  `json:"count"`
}

// Histogram is a Prometheus histogram: cumulative buckets in increasing
// order of UpperBound (the +Inf bucket implied by Count).
type Histogram struct {
	Buckets []Bucket
	Count   uint64
	Sum     float64
}

// Sub returns the observations made between an earlier reading and h. The
// two must have the same buckets; a reset (h smaller) yields h itself.
func (h Histogram) Sub(earlier Histogram) Histogram {
	if len(earlier.Buckets) != len(h.Buckets) || earlier.Count > h.Count {
		return h
	}
	d := Histogram{Count: h.Count - earlier.Count, Sum: h.Sum - earlier.Sum}
	for i, b := range h.Buckets {
		d.Buckets = append(d.Buckets, Bucket{UpperBound: b.UpperBound, Count: b.Count - earlier.Buckets[i].Count})
	}
	return d
}

// Quantile estimates the q-quantile (0 < q < 1) the way Prometheus's
// histogram_quantile does: find the bucket holding rank q×Count and
// interpolate linearly inside it, the first bucket starting at 0. A rank in
// the +Inf bucket returns the highest finite bound (the true value is
// larger: the report says so with ">"). NaN when there are no observations.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	bs := slices.Clone(h.Buckets)
	slices.SortFunc(bs, func(a, b Bucket) int {
		switch {
		case a.UpperBound < b.UpperBound:
			return -1
		case a.UpperBound > b.UpperBound:
			return 1
		}
		return 0
	})
	rank := q * float64(h.Count)
	lower, below := 0.0, uint64(0)
	for _, b := range bs {
		if math.IsInf(b.UpperBound, 1) {
			break
		}
		if float64(b.Count) >= rank {
			inBucket := b.Count - below
			if inBucket == 0 {
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(rank-float64(below))/float64(inBucket)
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower
}

// Overflows reports whether the q-quantile lies beyond the last finite
// bucket, so that Quantile is only a lower bound.
func (h Histogram) Overflows(q float64) bool {
	if h.Count == 0 {
		return false
	}
	var last uint64
	for _, b := range h.Buckets {
		if !math.IsInf(b.UpperBound, 1) {
			last = b.Count
		}
	}
	return float64(last) < q*float64(h.Count)
}
