package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// Measurements of the InfluxDB schema in ../shared/ARCHITECTURE.md.
const (
	MeasurementRaw = "telemetry"
	// MeasurementWindowPrefix + window name, e.g. telemetry_1m.
	MeasurementWindowPrefix = "telemetry_"
)

// Influx writes points through the InfluxDB 2.x API, which both InfluxDB 2.x
// and 1.8's compatibility endpoints serve.
type Influx struct {
	client influxdb2.Client
	write  api.WriteAPIBlocking
	cfg    InfluxConfig
	http   *http.Client
}

// NewInflux returns a writer; Ensure must succeed before the first write.
func NewInflux(cfg InfluxConfig) *Influx {
	opts := influxdb2.DefaultOptions().
		SetPrecision(time.Nanosecond). // Batch writes ns: raw points carry RawOffset
		SetHTTPRequestTimeout(uint(cfg.Timeout / time.Second)).
		SetUseGZip(cfg.Gzip)
	c := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &Influx{client: c, write: c.WriteAPIBlocking(cfg.Org, cfg.Bucket), cfg: cfg, http: &http.Client{Timeout: cfg.Timeout}}
}

// Close releases the client.
func (f *Influx) Close() { f.client.Close() }

// Ensure creates the database (1.8) or bucket (2.x) if it does not exist.
// 1.8 has no bucket API: its /ping names the version, and InfluxQL's CREATE
// DATABASE is idempotent.
func (f *Influx) Ensure(ctx context.Context) error {
	version, err := f.version(ctx)
	if err != nil {
		return err
	}
	if strings.HasPrefix(version, "1.") {
		db, _, _ := strings.Cut(f.cfg.Bucket, "/")
		return f.influxQL(ctx, fmt.Sprintf("CREATE DATABASE %q", db))
	}
	if _, err := f.client.BucketsAPI().FindBucketByName(ctx, f.cfg.Bucket); err == nil {
		return nil
	}
	org, err := f.client.OrganizationsAPI().FindOrganizationByName(ctx, f.cfg.Org)
	if err != nil {
		return fmt.Errorf("influxdb organisation %q: %w", f.cfg.Org, err)
	}
	if _, err := f.client.BucketsAPI().CreateBucketWithName(ctx, org, f.cfg.Bucket); err != nil {
		return fmt.Errorf("create influxdb bucket %q: %w", f.cfg.Bucket, err)
	}
	return nil
}

// Ready reports whether InfluxDB answers.
func (f *Influx) Ready(ctx context.Context) error {
	_, err := f.version(ctx)
	return err
}

func (f *Influx) version(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(f.cfg.URL, "/")+"/ping", nil)
	if err != nil {
		return "", err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("influxdb ping: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("influxdb ping: %s", resp.Status)
	}
	return resp.Header.Get("X-Influxdb-Version"), nil
}

func (f *Influx) influxQL(ctx context.Context, q string) error {
	form := url.Values{"q": {q}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(f.cfg.URL, "/")+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if f.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+f.cfg.Token)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("influxql: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 || strings.Contains(string(body), `"error"`) {
		return fmt.Errorf("influxql %q: %s: %s", q, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Write sends line-protocol lines in one request. Points are idempotent
// (same measurement, tags and time overwrite), so a retry after an unclear
// failure is safe.
func (f *Influx) Write(ctx context.Context, lines string) error {
	if lines == "" {
		return nil
	}
	return f.write.WriteRecord(ctx, lines)
}

// Rejected reports whether InfluxDB refused the request's content, as
// opposed to being unavailable: retrying the same points cannot help.
func Rejected(err error) bool {
	var he *ihttp.Error
	if errors.As(err, &he) {
		return he.StatusCode >= 400 && he.StatusCode < 500 &&
			he.StatusCode != http.StatusTooManyRequests && he.StatusCode != http.StatusRequestTimeout &&
			he.StatusCode != http.StatusUnauthorized && he.StatusCode != http.StatusForbidden
	}
	return false
}
