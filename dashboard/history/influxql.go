package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client runs InfluxQL over the v1 /query endpoint, which InfluxDB 1.x
// serves, 2.x serves through DBRP mappings (database/retention policy to
// bucket) and 3.x serves natively: the one read API every version a user
// may run has. Flux is served by 1.8 and 2.x only.
type Client struct {
	url   string
	token string
	http  *http.Client
}

// NewClient reads from the InfluxDB at baseURL. token is sent as
// "Authorization: Token <token>", which 1.8 (user:password), 2.x (an API
// token) and 3.x (a database token) all accept on /query; empty sends none.
func NewClient(baseURL, token string, timeout time.Duration) *Client {
	return &Client{url: strings.TrimSuffix(baseURL, "/"), token: token, http: &http.Client{Timeout: timeout}}
}

// Series is one series of an InfluxQL result: rows of columns, times in
// Unix ms (epoch=ms), numbers as json.Number.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// maxResponse bounds what one answer may take: a chart reads a few
// thousand rows, a few hundred kB.
const maxResponse = 32 << 20

// Query runs one statement against db and returns its series. A statement
// error (no such database or retention policy, not authorised) is an error
// like a failed request.
func (c *Client) Query(ctx context.Context, db, q string) ([]Series, error) {
	form := url.Values{"db": {db}, "q": {q}, "epoch": {"ms"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Token "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxdb query: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponse))
	dec.UseNumber()
	derr := dec.Decode(&body)
	switch {
	case body.Error != "":
		return nil, fmt.Errorf("influxdb query: %s: %s", resp.Status, body.Error)
	case resp.StatusCode/100 != 2:
		return nil, fmt.Errorf("influxdb query: %s", resp.Status)
	case derr != nil:
		return nil, fmt.Errorf("influxdb query: decode: %w", derr)
	case len(body.Results) == 0:
		return nil, errors.New("influxdb query: no result")
	case body.Results[0].Error != "":
		return nil, fmt.Errorf("influxdb query: %s", body.Results[0].Error)
	}
	return body.Results[0].Series, nil
}

// quoteIdent quotes s as an InfluxQL identifier: inside double quotes the
// parser reads \\ \" and \n as escapes, and a raw newline is an error.
func quoteIdent(s string) string { return `"` + qlEscaper.Replace(s) + `"` }

// quoteString quotes s as an InfluxQL string literal (single quotes, the
// same escapes).
func quoteString(s string) string { return `'` + qlEscaper.Replace(s) + `'` }

var qlEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `'`, `\'`, "\n", `\n`)

// timeLiteral is t as an RFC 3339 string literal, the form InfluxQL compares
// time with; it is formatted from a time.Time, never from request text.
func timeLiteral(t time.Time) string { return `'` + t.UTC().Format(time.RFC3339Nano) + `'` }

// source is the FROM clause of measurement in bucket: a bucket is
// "database" (its default retention policy) or "database/retention-policy",
// the 1.8 layout that 2.x's DBRP mappings and 3.x's databases follow.
func source(bucket, measurement string) (db, from string) {
	db, rp, _ := strings.Cut(bucket, "/")
	return db, quoteIdent(db) + "." + quoteIdentOrDefault(rp) + "." + quoteIdent(measurement)
}

func quoteIdentOrDefault(rp string) string {
	if rp == "" {
		return "" // "db".."m": the database's default retention policy
	}
	return quoteIdent(rp)
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
