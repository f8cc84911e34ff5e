package history

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api"

	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// MaxConcurrent queries: a dashboard on a small box must not be the thing
// that overloads InfluxDB when many browsers switch ranges at once.
const MaxConcurrent = 4

// Querier is the part of the InfluxDB client the reader uses; tests use the
// real client against a real InfluxDB.
type Querier interface {
	Query(ctx context.Context, query string) (*api.QueryTableResult, error)
}

// Reader runs the history templates.
type Reader struct {
	q       Querier
	buckets influx.Config // Bucket and RawBucket
	windows []time.Duration
	sem     chan struct{}
}

// NewReader reads each window measurement from the bucket the processors
// write it to: the coarsest from bucket, the others from rawBucket (kept
// with the raw readings) unless it is empty. windows are the window
// lengths the processors write (telemetry_{window}).
func NewReader(q Querier, bucket, rawBucket string, windows []time.Duration) *Reader {
	return &Reader{q: q, buckets: influx.Config{Bucket: bucket, RawBucket: rawBucket}, windows: windows,
		sem: make(chan struct{}, MaxConcurrent)}
}

// bucket is where the windows of length w are.
func (r *Reader) bucket(w time.Duration) string { return r.buckets.BucketOf(w, r.windows) }

// Band is one chart point: the min/max band and the count-weighted mean of
// every window in [T, T+step).
type Band struct {
	T    int64 // Unix ms, bucket start
	Min  float64
	Max  float64
	Mean float64
	sum  float64
	n    float64
}

// MarshalJSON encodes a band as [t,min,max,mean].
func (b Band) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 64)
	out = append(out, '[')
	out = fmt.Appendf(out, "%d", b.T)
	for _, v := range []float64{b.Min, b.Max, b.Mean} {
		out = append(out, ',')
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out = append(out, "null"...)
		} else {
			out = fmt.Appendf(out, "%g", v)
		}
	}
	return append(out, ']'), nil
}

// Result is a device's history over one range, per metric.
type Result struct {
	Site        string            `json:"site"`
	Device      string            `json:"device"`
	Range       string            `json:"range"`
	Measurement string            `json:"measurement"`
	StepMillis  int64             `json:"step"`
	From        int64             `json:"from"`
	To          int64             `json:"to"`
	Series      map[string][]Band `json:"series"`
}

func (r *Reader) acquire(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Device reads one device's history over rangeName.
func (r *Reader) Device(ctx context.Context, rangeName, site, device string) (Result, error) {
	plan, err := Choose(rangeName, r.windows)
	if err != nil {
		return Result{}, err
	}
	q, err := plan.Flux(r.bucket(plan.Window), site, device)
	if err != nil {
		return Result{}, err
	}
	if err := r.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer func() { <-r.sem }()
	now := time.Now()
	res := Result{Site: site, Device: device, Range: rangeName, Measurement: plan.Measurement,
		StepMillis: plan.Step.Milliseconds(), From: now.Add(-plan.Span).UnixMilli(), To: now.UnixMilli(),
		Series: map[string][]Band{}}
	tables, err := r.q.Query(ctx, q)
	if err != nil {
		return res, fmt.Errorf("history %s %s/%s: %w", rangeName, site, device, err)
	}
	defer tables.Close()
	bands := map[string]map[int64]*Band{}
	for tables.Next() {
		rec := tables.Record()
		metric, _ := rec.ValueByKey("metric").(string)
		if !reading.ValidName(metric) {
			continue
		}
		v, ok := toFloat(rec.Value())
		if !ok {
			continue
		}
		t := rec.Time().UnixMilli()
		m := bands[metric]
		if m == nil {
			m = map[int64]*Band{}
			bands[metric] = m
		}
		b := m[t]
		if b == nil {
			b = &Band{T: t, Min: math.NaN(), Max: math.NaN(), Mean: math.NaN()}
			m[t] = b
		}
		switch rec.Field() {
		case "min":
			b.Min = v
		case "max":
			b.Max = v
		case "sum":
			b.sum = v
		case "count":
			b.n = v
		}
	}
	if err := tables.Err(); err != nil {
		return res, fmt.Errorf("history %s %s/%s: %w", rangeName, site, device, err)
	}
	for metric, m := range bands {
		out := make([]Band, 0, len(m))
		for _, b := range m {
			if b.n > 0 {
				b.Mean = b.sum / b.n
			}
			out = append(out, *b)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].T < out[j].T })
		res.Series[metric] = out
	}
	return res, nil
}

// latestTemplate reads the newest window of every series of the finest
// measurement over the last day: the dashboard's memory after a restart.
const latestTemplate = `from(bucket: %[1]s)
  |> range(start: -24h)
  |> filter(fn: (r) => r._measurement == %[2]s and r._field == "last")
  |> last()
  |> keep(columns: ["_time", "_value", "site", "device", "metric"])`

// Latest calls fn with the last value of every device's metrics in the
// finest window measurement over the last day, and the end of that window
// (when the device was last heard of).
func (r *Reader) Latest(ctx context.Context, fn func(site, device, metric string, start, end time.Time, v float64)) error {
	if len(r.windows) == 0 {
		return ErrWindows
	}
	w := r.windows[0]
	for _, c := range r.windows {
		w = min(w, c)
	}
	if err := r.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-r.sem }()
	tables, err := r.q.Query(ctx, fmt.Sprintf(latestTemplate, fluxString(r.bucket(w)), fluxString("telemetry_"+reading.WindowName(w))))
	if err != nil {
		return fmt.Errorf("latest values: %w", err)
	}
	defer tables.Close()
	for tables.Next() {
		rec := tables.Record()
		site, _ := rec.ValueByKey("site").(string)
		device, _ := rec.ValueByKey("device").(string)
		metric, _ := rec.ValueByKey("metric").(string)
		v, ok := toFloat(rec.Value())
		if !ok || !reading.ValidName(site) || !reading.ValidName(device) || !reading.ValidName(metric) {
			continue
		}
		fn(site, device, metric, rec.Time(), rec.Time().Add(w), v)
	}
	if err := tables.Err(); err != nil {
		return fmt.Errorf("latest values: %w", err)
	}
	return nil
}

// probeTemplate reads nothing (a measurement no one writes, over a second),
// but fails where a history query would: InfluxDB unreachable, or the
// bucket missing (1.8: "no database", "invalid retention policy"; 2.x:
// "could not find bucket").
const probeTemplate = `from(bucket: %s)
  |> range(start: -1s)
  |> filter(fn: (r) => r._measurement == "edgeflow_probe")
  |> limit(n: 1)`

// Ready reports whether history can be read: InfluxDB answers and the
// buckets exist. A ping alone says the first only.
func (r *Reader) Ready(ctx context.Context) error {
	buckets := []string{r.buckets.Bucket}
	if r.buckets.RawBucket != "" && r.buckets.RawBucket != r.buckets.Bucket && len(influx.ShortLived(r.windows)) > 0 {
		buckets = append(buckets, r.buckets.RawBucket)
	}
	for _, b := range buckets {
		if err := r.probe(ctx, b); err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	return nil
}

func (r *Reader) probe(ctx context.Context, bucket string) error {
	tables, err := r.q.Query(ctx, fmt.Sprintf(probeTemplate, fluxString(bucket)))
	if err != nil {
		return err
	}
	defer tables.Close()
	for tables.Next() {
	}
	return tables.Err()
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}
