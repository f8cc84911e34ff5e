package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// series is one series of an InfluxQL result (times in Unix milliseconds).
type series = devenv.InfluxSeries

// influxQL runs one query on the chaos database and returns its series
// (times as Unix milliseconds).
func influxQL(ctx context.Context, base, q string) ([]series, error) {
	return devenv.InfluxDB{URL: base, Database: influxDatabase}.Query(ctx, q)
}

// number reads a value of a result row.
func number(v any) float64 {
	f, _ := v.(float64)
	return f
}

// sumCounts is the sum of the window counts of metric in one window
// measurement, in all and by device.
func sumCounts(ctx context.Context, base, window, metric string) (int64, map[string]int64, error) {
	ss, err := influxQL(ctx, base, fmt.Sprintf(`SELECT sum("count") FROM "telemetry_%s" WHERE "metric" = '%s' GROUP BY "site", "device"`, window, metric))
	if err != nil {
		return 0, nil, err
	}
	var total int64
	byDevice := map[string]int64{}
	for _, s := range ss {
		if len(s.Values) == 0 || len(s.Values[0]) < 2 {
			continue
		}
		n := int64(number(s.Values[0][1]))
		byDevice[s.Tags["site"]+"/"+s.Tags["device"]] += n
		total += n
	}
	return total, byDevice, nil
}

// sample is one look at the pipeline's freshness.
type sample struct {
	at time.Time
	// lag is how old the stalest device's newest reading in InfluxDB was;
	// ok is false when the query failed or a device had none yet.
	lag time.Duration
	ok  bool
}

// freshness samples, every second while the load runs, how far behind the
// pipeline is end to end: the age of the oldest "newest raw reading" over
// all devices (the load generator stamps each reading with its publish time).
type freshness struct {
	base    string
	devices int

	mu      sync.Mutex
	samples []sample
}

func (f *freshness) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		f.measure(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (f *freshness) measure(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ss, err := influxQL(qctx, f.base, `SELECT last("temperature") FROM "telemetry" WHERE time > now() - 10m GROUP BY "device"`)
	now := time.Now()
	s := sample{at: now}
	if err == nil && len(ss) >= f.devices {
		s.ok = true
		for _, x := range ss {
			if len(x.Values) == 0 {
				s.ok = false
				break
			}
			newest := time.UnixMilli(int64(number(x.Values[0][0])))
			s.lag = max(s.lag, now.Sub(newest))
		}
	}
	if ctx.Err() != nil {
		return
	}
	f.mu.Lock()
	f.samples = append(f.samples, s)
	f.mu.Unlock()
}

func (f *freshness) all() []sample {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sample(nil), f.samples...)
}

// recovery fills in each fault's drain time and peak lag from the samples:
// drained at the first fresh sample after the target was ready again.
func recovery(faults []Fault, samples []sample, within time.Duration) {
	for i := range faults {
		f := &faults[i]
		if f.ready.IsZero() {
			continue
		}
		for _, s := range samples {
			if s.at.Before(f.injected) {
				continue
			}
			if s.ok {
				f.PeakLag = max(f.PeakLag, s.lag)
			}
			if !s.at.Before(f.ready) && s.ok && s.lag <= within {
				f.DrainedAfter = s.at.Sub(f.injected)
				break
			}
		}
	}
}

// steadyLag is the median lag before the first fault.
func steadyLag(samples []sample, first time.Time) time.Duration {
	var lags []time.Duration
	for _, s := range samples {
		if s.ok && (first.IsZero() || s.at.Before(first)) {
			lags = append(lags, s.lag)
		}
	}
	if len(lags) == 0 {
		return 0
	}
	for i := 1; i < len(lags); i++ {
		for j := i; j > 0 && lags[j] < lags[j-1]; j-- {
			lags[j], lags[j-1] = lags[j-1], lags[j]
		}
	}
	return lags[len(lags)/2]
}
