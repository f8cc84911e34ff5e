package devenv

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edgeflow/edgeflow/internal/influx"
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
type InfluxSeries = influx.Series

var influxQueryClient = &http.Client{Timeout: 10 * time.Second}

// Query runs one InfluxQL statement and returns its series.
func (db InfluxDB) Query(ctx context.Context, q string) ([]InfluxSeries, error) {
	form := url.Values{"db": {db.Database}, "q": {q}, "epoch": {"ms"}}
	return influx.QueryClient{URL: db.URL, HTTP: influxQueryClient, User: db.User, Password: db.Password}.Query(ctx, form, strconv.Quote(q))
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
