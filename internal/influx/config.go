// Package influx is the InfluxDB connection configuration the processor
// (writes) and the dashboard (history) share: the same EDGEFLOW_INFLUX_*
// variables, so one Secret serves both.
package influx

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// Config is where InfluxDB is and how to reach it (EDGEFLOW_INFLUX_*).
type Config struct {
	URL    string `envconfig:"URL" default:"http://127.0.0.1:8086" desc:"InfluxDB URL (2.x API; 1.8 compatibility endpoints work)"`
	Token  string `envconfig:"TOKEN" desc:"InfluxDB token (1.8: user:password; never logged)"`
	Org    string `envconfig:"ORG" default:"edgeflow" desc:"InfluxDB organisation (ignored by 1.8)"`
	Bucket string `envconfig:"BUCKET" default:"edgeflow" desc:"InfluxDB bucket (1.8: database or database/retention-policy)"`
	// RawBucket apart from Bucket gives raw readings, the bulk of the disk,
	// and the windows read only over recent hours a retention of their own.
	RawBucket string        `envconfig:"RAW_BUCKET" desc:"InfluxDB bucket of the raw readings and of every window length but the coarsest (1.8: database/retention-policy in EDGEFLOW_INFLUX_BUCKET's database; task up and the manifests: edgeflow/raw), kept EDGEFLOW_INFLUX_RAW_RETENTION_DAYS; empty: all in EDGEFLOW_INFLUX_BUCKET"`
	Timeout   time.Duration `envconfig:"TIMEOUT" default:"10s" desc:"InfluxDB request timeout"`
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INFLUX_URL=%q: want http(s)://host:port", secure.RedactURLs(c.URL)))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("EDGEFLOW_INFLUX_BUCKET is empty"))
	}
	if c.Timeout < time.Second {
		errs = append(errs, errors.New("EDGEFLOW_INFLUX_TIMEOUT must be at least 1s"))
	}
	return errors.Join(errs...)
}

// ShortLived are the window lengths kept with the raw readings (RawBucket):
// every one but the coarsest. The dashboard reads a window length only
// over its last history.MaxRows windows (4 h 10 min of 10 s windows),
// unless it is the coarsest, which it reads over every range and which is
// kept for months.
func ShortLived(windows []time.Duration) []time.Duration {
	if len(windows) == 0 {
		return nil
	}
	coarsest := slices.Max(windows)
	var out []time.Duration
	for _, w := range windows {
		if w != coarsest {
			out = append(out, w)
		}
	}
	return out
}

// BucketOf is the bucket of the windows of length w, given the window
// lengths written.
func (c Config) BucketOf(w time.Duration, windows []time.Duration) string {
	if c.RawBucket != "" && slices.Contains(ShortLived(windows), w) {
		return c.RawBucket
	}
	return c.Bucket
}
