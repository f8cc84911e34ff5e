package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// Measurements of the InfluxDB schema in docs/architecture.md ("InfluxDB").
const (
	MeasurementRaw = "telemetry"
	// MeasurementWindowPrefix + window name, e.g. telemetry_1m.
	MeasurementWindowPrefix = "telemetry_"
	// TagEdgeSite is the tag of the hub's windows naming the site they came
	// from (docs/operations.md#hub).
	TagEdgeSite = "edge_site"
)

// Influx writes points through the InfluxDB 2.x API, which both InfluxDB 2.x
// and 1.8's compatibility endpoints serve.
type Influx struct {
	client influxdb2.Client
	write  api.WriteAPIBlocking
	raw    api.WriteAPIBlocking // nil: raw readings go with the windows
	short  map[string]bool      // measurements written to raw
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
	f := &Influx{client: c, write: c.WriteAPIBlocking(cfg.Org, cfg.Bucket), cfg: cfg, http: &http.Client{Timeout: cfg.Timeout}}
	if cfg.RawBucket != "" && cfg.RawBucket != cfg.Bucket {
		f.raw = c.WriteAPIBlocking(cfg.Org, cfg.RawBucket)
		f.short = map[string]bool{MeasurementRaw: true}
		for _, w := range cfg.short {
			f.short[MeasurementWindowPrefix+reading.WindowName(w)] = true
		}
	}
	return f
}

// buckets are the buckets written.
func (f *Influx) buckets() []string {
	if f.raw == nil {
		return []string{f.cfg.Bucket}
	}
	return []string{f.cfg.Bucket, f.cfg.RawBucket}
}

// Close releases the client.
func (f *Influx) Close() { f.client.Close() }

// Ensure checks that every bucket may be written with this credential,
// which needs no more than the write privilege: the buckets, their
// retention and the users are set up by the holder of the admin credential
// (influxadmin: task up, task deploy). Missing, they are an outage to wait
// for. Only a 1.8 database missing is created here, when the credential is
// the admin's (one credential for everything); a write-only user is refused
// that.
func (f *Influx) Ensure(ctx context.Context) error {
	version, err := f.version(ctx)
	if err != nil {
		return err
	}
	for _, bucket := range f.buckets() {
		err := f.probe(ctx, bucket)
		var we *WriteError
		if errors.As(err, &we) && we.Fault == FaultMissing && strings.HasPrefix(version, "1.") {
			db, _, _ := strings.Cut(bucket, "/")
			if cerr := f.influxQL(ctx, "CREATE DATABASE "+influx.QuoteIdent(db)); cerr != nil {
				return fmt.Errorf("influxdb bucket %q: %w (the admin creates it: %w)", bucket, we, cerr)
			}
			err = f.probe(ctx, bucket)
		}
		if err != nil {
			return fmt.Errorf("influxdb bucket %q: %w", bucket, err)
		}
	}
	return nil
}

// probe writes no points to bucket: InfluxDB looks the bucket up (1.8: its
// database and retention policy) and checks the credential may write it
// before it reads the body. 1.8 answers 204; 2.x may refuse the empty body
// (400), which it reads only past those checks.
func (f *Influx) probe(ctx context.Context, bucket string) error {
	q := url.Values{"org": {f.cfg.Org}, "bucket": {bucket}, "precision": {"ns"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(f.cfg.URL, "/")+"/api/v2/write?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if f.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+f.cfg.Token)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb write: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusBadRequest {
		return nil
	}
	var msg struct{ Error, Message string }
	_ = json.Unmarshal(body, &msg)
	he := &ihttp.Error{StatusCode: resp.StatusCode, Code: resp.Status, Message: msg.Error + msg.Message}
	if he.Message == "" {
		he.Message = strings.TrimSpace(string(body))
	}
	return classify(he)
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
	_, err := influx.QueryClient{URL: f.cfg.URL, HTTP: f.http, Token: f.cfg.Token}.Query(ctx, url.Values{"q": {q}}, q)
	return err
}

// Write sends line-protocol lines in one request, or two when raw readings
// have a bucket of their own (raw lines and the short-lived windows to it,
// the coarsest windows to the other).
// Points are idempotent (same measurement, tags and time overwrite), so a
// retry after an unclear failure is safe. A request InfluxDB answered
// without taking it whole fails with a *WriteError that says what to do
// about it; of two, an outage is reported before refused points.
func (f *Influx) Write(ctx context.Context, lines string) error {
	if lines == "" {
		return nil
	}
	if f.raw == nil {
		return classify(f.write.WriteRecord(ctx, lines))
	}
	raw, windows := f.split(lines)
	var errs [2]error
	if windows != "" {
		errs[0] = classify(f.write.WriteRecord(ctx, windows))
	}
	if raw != "" {
		errs[1] = classify(f.raw.WriteRecord(ctx, raw))
	}
	for _, err := range errs {
		var we *WriteError
		if err != nil && (!errors.As(err, &we) || we.Fault != FaultPoints) {
			return err
		}
	}
	return cmp.Or(errs[0], errs[1])
}

// split parts lines into those of the raw bucket's measurements and the
// others, each in order. Measurement names need no escaping (telemetry,
// telemetry_{window}): a line's measurement ends at its first comma.
func (f *Influx) split(lines string) (raw, windows string) {
	var r, w strings.Builder
	for line := range strings.Lines(lines) {
		m, _, _ := strings.Cut(line, ",")
		if f.short[m] {
			r.WriteString(line)
		} else {
			w.WriteString(line)
		}
	}
	return r.String(), w.String()
}

// WriteFault is why InfluxDB did not take a write whole, by what it takes
// to write the points after all.
type WriteFault int

const (
	// FaultUnavailable: the request was not taken for a reason of the
	// server's (5xx, 429, an authorisation error, a retention policy
	// missing on 1.8): the same request succeeds once the server is well.
	FaultUnavailable WriteFault = iota
	// FaultMissing: the database or bucket does not exist (404): dropped by
	// an operator, or not created yet. Once it is (Ensure), the same
	// request succeeds.
	FaultMissing
	// FaultLimit: a limit configured on the server refused points
	// (max-values-per-tag, max-series-per-database): they are refused
	// whatever they hold, until an operator raises the limit.
	FaultLimit
	// FaultTooLarge: the request is larger than the server takes (413):
	// smaller ones pass.
	FaultTooLarge
	// FaultPoints: points refused for what they are (a field type
	// conflict, a time beyond the retention policy, line protocol the
	// server cannot parse): retrying them cannot help. The other points of
	// the request were written (1.8), or none were (2.x parse errors).
	FaultPoints
)

// WriteError is a write InfluxDB answered without taking it whole.
type WriteError struct {
	Fault WriteFault
	// Dropped is how many points the server says it refused, from
	// InfluxDB's "partial write: <reason> dropped=<n>"; -1 when it does
	// not say.
	Dropped int
	Err     *ihttp.Error
}

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Reasons of InfluxDB's partial writes (tsdb.PartialWriteError) that are
// limits configured on the server, as 1.8's inmem index words them; and a
// shard being deleted, which passes.
const (
	reasonMaxValuesPerTag   = "max-values-per-tag limit exceeded"
	reasonMaxSeriesPerDB    = "max-series-per-database limit exceeded"
	reasonShardDeleted      = " is pending deletion"
	partialWritePrefix      = "partial write: "
	partialWriteDroppedMark = " dropped="
)

// classify turns an answer of InfluxDB's that refused a write into a
// *WriteError, by its status code first: only 400 and 422 refuse points,
// and then InfluxDB's partial-write text says which and how many. Errors
// without an answer (connection refused, timeouts) are returned as they
// are: InfluxDB is unavailable.
func classify(err error) error {
	var he *ihttp.Error
	if !errors.As(err, &he) || he.StatusCode == 0 {
		return err
	}
	we := &WriteError{Fault: FaultUnavailable, Dropped: -1, Err: he}
	switch he.StatusCode {
	case http.StatusNotFound:
		we.Fault = FaultMissing
	case http.StatusRequestEntityTooLarge:
		we.Fault = FaultTooLarge
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		reason, dropped, partial := partialWrite(he.Message)
		we.Dropped = dropped
		switch {
		case partial && (strings.HasPrefix(reason, reasonMaxValuesPerTag) || strings.HasPrefix(reason, reasonMaxSeriesPerDB)):
			we.Fault = FaultLimit
		case partial && strings.HasPrefix(reason, "shard ") && strings.HasSuffix(reason, reasonShardDeleted):
			we.Fault = FaultUnavailable
		default:
			we.Fault = FaultPoints
		}
	}
	return we
}

// partialWrite parses InfluxDB's text of a partial write, "partial write:
// <reason> dropped=<n>", as 1.8 answers it and 2.x quotes it in its
// message. dropped is -1 when the text gives no count.
func partialWrite(msg string) (reason string, dropped int, ok bool) {
	_, reason, ok = strings.Cut(msg, partialWritePrefix)
	if !ok {
		return "", -1, false
	}
	i := strings.LastIndex(reason, partialWriteDroppedMark)
	if i < 0 {
		return reason, -1, true
	}
	n, err := strconv.Atoi(strings.TrimSpace(reason[i+len(partialWriteDroppedMark):]))
	if err != nil {
		return reason, -1, true
	}
	return reason[:i], n, true
}
