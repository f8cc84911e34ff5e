// Package influx is the InfluxDB connection configuration the processor
// (writes) and the dashboard (history) share: the same EDGEFLOW_INFLUX_*
// variables, so one Secret serves both.
package influx

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// Config is where InfluxDB is and how to reach it (EDGEFLOW_INFLUX_*).
type Config struct {
	URL     string        `envconfig:"URL" default:"http://127.0.0.1:8086" desc:"InfluxDB URL (2.x API; 1.8 compatibility endpoints work)"`
	Token   string        `envconfig:"TOKEN" desc:"InfluxDB token (1.8: user:password; never logged)"`
	Org     string        `envconfig:"ORG" default:"edgeflow" desc:"InfluxDB organisation (ignored by 1.8)"`
	Bucket  string        `envconfig:"BUCKET" default:"edgeflow" desc:"InfluxDB bucket (1.8: database or database/retention-policy)"`
	Timeout time.Duration `envconfig:"TIMEOUT" default:"10s" desc:"InfluxDB request timeout"`
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
