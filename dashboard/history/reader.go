package history

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// MaxConcurrent queries: a dashboard on a small box must not be the thing
// that overloads InfluxDB when many browsers switch ranges at once.
const MaxConcurrent = 4

// Querier runs one InfluxQL statement in a database (Client); tests use
// the real client against a real InfluxDB.
type Querier interface {
	Query(ctx context.Context, db, q string) ([]Series, error)
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
	if err := r.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer func() { <-r.sem }()
	now := time.Now()
	from := now.Add(-plan.Span)
	db, q, err := plan.InfluxQL(r.bucket(plan.Window), site, device, from, now)
	if err != nil {
		return Result{}, err
	}
	res := Result{Site: site, Device: device, Range: rangeName, Measurement: plan.Measurement,
		StepMillis: plan.Step.Milliseconds(), From: from.UnixMilli(), To: now.UnixMilli(),
		Series: map[string][]Band{}}
	series, err := r.q.Query(ctx, db, q)
	if err != nil {
		return res, fmt.Errorf("history %s %s/%s: %w", rangeName, site, device, err)
	}
	bands := map[string]map[int64]*Band{}
	for _, s := range series {
		metric := s.Tags["metric"]
		if !reading.ValidName(metric) {
			continue
		}
		col := columns(s.Columns)
		for _, row := range s.Values {
			t, ok := number(col(row, "time"))
			if !ok {
				continue
			}
			m := bands[metric]
			if m == nil {
				m = map[int64]*Band{}
				bands[metric] = m
			}
			b := m[int64(t)]
			if b == nil {
				b = &Band{T: int64(t), Min: math.NaN(), Max: math.NaN(), Mean: math.NaN()}
				m[int64(t)] = b
			}
			if v, ok := number(col(row, "min")); ok {
				b.Min = v
			}
			if v, ok := number(col(row, "max")); ok {
				b.Max = v
			}
			if v, ok := number(col(row, "sum")); ok {
				b.sum = v
			}
			if v, ok := number(col(row, "count")); ok {
				b.n = v
			}
		}
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

// Latest calls fn with the last value of every device's metrics in the
// finest window measurement over the last day, and the end of that window
// (when the device was last heard of): the dashboard's memory after a
// restart. last() is a selector, so each row's time is its window's start.
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
	db, src := source(r.bucket(w), "telemetry_"+reading.WindowName(w))
	q := fmt.Sprintf(`SELECT last("last") AS "last" FROM %s WHERE time >= %s GROUP BY "site", "device", "metric"`,
		src, timeLiteral(time.Now().Add(-24*time.Hour)))
	series, err := r.q.Query(ctx, db, q)
	if err != nil {
		return fmt.Errorf("latest values: %w", err)
	}
	for _, s := range series {
		site, device, metric := s.Tags["site"], s.Tags["device"], s.Tags["metric"]
		if !reading.ValidName(site) || !reading.ValidName(device) || !reading.ValidName(metric) {
			continue
		}
		col := columns(s.Columns)
		for _, row := range s.Values {
			t, ok1 := number(col(row, "time"))
			v, ok2 := number(col(row, "last"))
			if !ok1 || !ok2 {
				continue
			}
			start := time.UnixMilli(int64(t))
			fn(site, device, metric, start, start.Add(w), v)
		}
	}
	return nil
}

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

// probe reads nothing (a measurement no one writes, over a second), but
// fails where a history query would: InfluxDB unreachable, the credential
// refused, or the bucket missing (1.x: "database not found", "retention
// policy not found"; 2.x: no DBRP mapping for it).
func (r *Reader) probe(ctx context.Context, bucket string) error {
	db, src := source(bucket, "edgeflow_probe")
	_, err := r.q.Query(ctx, db, fmt.Sprintf(`SELECT * FROM %s WHERE time >= %s LIMIT 1`, src, timeLiteral(time.Now().Add(-time.Second))))
	return err
}

// columns returns a reader of a row's value by column name: nil when the
// column is absent or the row short.
func columns(names []string) func(row []any, name string) any {
	idx := make(map[string]int, len(names))
	for i, n := range names {
		idx[n] = i
	}
	return func(row []any, name string) any {
		i, ok := idx[name]
		if !ok || i >= len(row) {
			return nil
		}
		return row[i]
	}
}

func isBad(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
