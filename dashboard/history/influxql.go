package history

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/influx"
)

// Client reads history with InfluxQL (influx.QueryClient says why InfluxQL).
type Client struct {
	q influx.QueryClient
}

// NewClient reads from the InfluxDB at baseURL. token is sent as
// "Authorization: Token <token>"; empty sends none.
func NewClient(baseURL, token string, timeout time.Duration) *Client {
	return &Client{q: influx.QueryClient{URL: baseURL, Token: token, HTTP: &http.Client{Timeout: timeout}, UseNumber: true}}
}

// Series is one series of an InfluxQL result: times in Unix ms
// (epoch=ms), numbers as json.Number.
type Series = influx.Series

// Query runs one statement against db and returns its series.
func (c *Client) Query(ctx context.Context, db, q string) ([]Series, error) {
	return c.q.Query(ctx, url.Values{"db": {db}, "q": {q}, "epoch": {"ms"}}, "query")
}

// timeLiteral is t as an RFC 3339 string literal, the form InfluxQL compares
// time with; it is formatted from a time.Time, never from request text.
func timeLiteral(t time.Time) string { return `'` + t.UTC().Format(time.RFC3339Nano) + `'` }

// source is the FROM clause of measurement in bucket: a bucket is
// "database" (its default retention policy) or "database/retention-policy",
// the 1.8 layout that 2.x's DBRP mappings and 3.x's databases follow.
func source(bucket, measurement string) (db, from string) {
	db, rp, _ := strings.Cut(bucket, "/")
	return db, influx.QuoteIdent(db) + "." + quoteIdentOrDefault(rp) + "." + influx.QuoteIdent(measurement)
}

func quoteIdentOrDefault(rp string) string {
	if rp == "" {
		return "" // "db".."m": the database's default retention policy
	}
	return influx.QuoteIdent(rp)
}

// number reads a value of a row: InfluxQL answers numbers (json.Number)
// or null.
func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil && !isBad(f)
}
