package devenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// InfluxDB is where the tests and tools check what the pipeline wrote: an
// InfluxDB 1.8 server's base URL, a database and, when authentication is
// on, a user. One way to ask it, for the end-to-end tests, the bench, the
// chaos run and the cluster test alike.
type InfluxDB struct {
	URL, Database  string
	User, Password string
}

// InfluxSeries is one series of an InfluxQL result; times are Unix
// milliseconds.
type InfluxSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

var influxQueryClient = &http.Client{Timeout: 10 * time.Second}

// Query runs one InfluxQL statement and returns its series.
func (db InfluxDB) Query(ctx context.Context, q string) ([]InfluxSeries, error) {
	form := url.Values{"db": {db.Database}, "q": {q}, "epoch": {"ms"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, db.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if db.User != "" {
		req.SetBasicAuth(db.User, db.Password)
	}
	resp, err := influxQueryClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxql %q: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("influxql %q: %w", q, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("influxql %q: %s: %s", q, resp.Status, body)
	}
	var out struct {
		Error   string `json:"error"`
		Results []struct {
			Error  string         `json:"error"`
			Series []InfluxSeries `json:"series"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("influxql %q: %w", q, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("influxql %q: %s", q, out.Error)
	}
	if len(out.Results) == 0 {
		return nil, nil
	}
	if out.Results[0].Error != "" {
		return nil, fmt.Errorf("influxql %q: %s", q, out.Results[0].Error)
	}
	return out.Results[0].Series, nil
}

// Scalar runs a query that returns one number, such as a sum or a count:
// the first value of the first series, 0 when there is no series (nothing
// written yet).
func (db InfluxDB) Scalar(ctx context.Context, q string) (float64, error) {
	ss, err := db.Query(ctx, q)
	if err != nil || len(ss) == 0 || len(ss[0].Values) == 0 || len(ss[0].Values[0]) < 2 {
		return 0, err
	}
	v, _ := ss[0].Values[0][1].(float64)
	return v, nil
}
