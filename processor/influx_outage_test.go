package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// influxProxy stands between a worker and InfluxDB: it counts write
// requests, and while denyQL is set it refuses InfluxQL (CREATE DATABASE)
// as InfluxDB refuses it to a user without admin rights.
type influxProxy struct {
	URL    string
	writes atomic.Int64
	denyQL atomic.Bool
}

func startInfluxProxy(t *testing.T, target string) *influxProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	fwd := httputil.NewSingleHostReverseProxy(u)
	fwd.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	p := &influxProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v2/write":
			p.writes.Add(1)
		case r.URL.Path == "/query" && p.denyQL.Load():
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":"error authorizing query: edgeflow not authorized to execute statement 'CREATE DATABASE w', requires admin privilege"}`)
			return
		}
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// windowCountsSince sums the counts of metric "t" in the 1 s windows on
// AGGREGATES that start at or after since.
func windowCountsSince(t *testing.T, b *testBus, since time.Time) int64 {
	t.Helper()
	seen := map[string]bool{}
	var n int64
	for _, m := range streamMsgs(t, b.js, bus.StreamAggregates) {
		a, err := reading.UnmarshalAggregate(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if a.Window == "1s" && a.Start >= since.UnixMilli() && !seen[a.MsgID()] {
			seen[a.MsgID()] = true
			n += a.Metrics["t"].Count
		}
	}
	return n
}

// waitFor polls cond every 100 ms until it holds or within has passed.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A database dropped under a running pipeline is an outage, not bad data:
// the worker creates it again and writes on, nothing is dead-lettered, and
// while it cannot be created the partition is stalled and readiness names
// it. (Before, InfluxDB's 404 counted as a refusal of the points: every
// reading and window was dead-lettered one line at a time, checkpointed and
// purged, and the database stayed missing.)
func TestDroppedDatabaseIsCreatedAgain(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	proxy := startInfluxProxy(t, in.URL)
	w := testWorker(t, b, proxy.URL, nil)
	db := devenv.InfluxDB{URL: in.URL, Database: "w"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stopSending := startSender(t, b)
	time.Sleep(2 * time.Second)
	proxy.denyQL.Store(true)
	if _, err := db.Query(ctx, `DROP DATABASE "w"`); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now()
	time.Sleep(3 * time.Second)
	if dead := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("influx_rejected")); dead != 0 {
		t.Errorf("%v dead-lettered as influx_rejected while the database was missing", dead)
	}
	if err := w.metrics.Stalls.Check(ctx); err == nil || !strings.Contains(err.Error(), "partition 0") || !strings.Contains(err.Error(), "database not found") {
		t.Fatalf("readiness says %v while the database is missing, want it to name partition 0 and why", err)
	} else {
		t.Logf("while the database cannot be created: %v", err)
	}
	proxy.denyQL.Store(false)
	waitFor(t, 15*time.Second, "the partition advances once the database can be created", func() bool {
		return w.metrics.Stalls.Check(ctx) == nil
	})
	time.Sleep(2 * time.Second)
	n := stopSending()
	expectExact(t, b, w.worker, n)
	if dead := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("influx_rejected")); dead != 0 {
		t.Fatalf("%v dead-lettered as influx_rejected while the database was missing", dead)
	}

	// What was written before the drop is gone with it; every window
	// starting after it holds readings made after it, all in InfluxDB.
	since := dropped.Truncate(time.Second).Add(time.Second)
	want := windowCountsSince(t, b, since)
	if want == 0 {
		t.Fatal("no window after the drop: the test tested nothing")
	}
	at := fmt.Sprintf(" WHERE time >= %dms", since.UnixMilli())
	for q, what := range map[string]string{
		`SELECT count(t) FROM ` + MeasurementRaw + at:                     "raw readings",
		`SELECT sum("count") FROM ` + MeasurementWindowPrefix + `1s` + at: "readings in 1 s windows",
	} {
		got, err := db.Scalar(ctx, q)
		if err != nil || int64(got) != want {
			t.Errorf("%s since the drop: %v (%v), want %d", what, got, err, want)
		}
	}
}

// startLimitedInflux starts InfluxDB with database w allowing 10 values per
// tag (devices, here) in a measurement. Only the in-memory index enforces
// the limit.
func startLimitedInflux(t *testing.T, dir string, port int) *devenv.Process {
	t.Helper()
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: dir, Port: port, Database: "w",
		Env: []string{"INFLUXDB_DATA_INDEX_VERSION=inmem", "INFLUXDB_DATA_MAX_VALUES_PER_TAG=10"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

// A limit InfluxDB sets refuses every point past it, for a reason that is
// the server's, not the points': the partition stalls, readiness names it,
// the batch is retried with backoff (one request at a time, not one per
// point), nothing is dead-lettered, and once the limit is raised everything
// is written. (Before, the batch was halved down to single lines, each
// dead-lettered: a request per refused point.)
func TestInfluxLimitStallsThePartition(t *testing.T) {
	b := newTestBus(t)
	dir := filepath.Join(t.TempDir(), "influxdb")
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	in := startLimitedInflux(t, dir, ports[0])
	proxy := startInfluxProxy(t, in.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// InfluxDB already holds 10 devices: every new one is past the limit.
	// (A request creating more than 10 at once passes: the limit counts
	// the values that existed before it.)
	var pre strings.Builder
	for d := range 10 {
		fmt.Fprintf(&pre, "%s,site=old,device=old%d t=0 %d\n", MeasurementRaw, d, time.Now().UnixNano())
	}
	resp, err := http.Post(in.URL+"/write?db=w", "text/plain", strings.NewReader(pre.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("writing the first 10 devices: %s", resp.Status)
	}

	// 30 new devices, 5 readings each.
	const devices, each = 30, 5
	made := time.Now().Add(-5 * time.Second).UnixMilli()
	for i := range int64(each) {
		for d := range devices {
			ts := made + i*200
			b.publish(t, reading.Reading{Site: "lab", Device: fmt.Sprintf("d%02d", d), TS: ts, Received: ts,
				Metrics: map[string]float64{"t": float64(i)}})
		}
	}
	w := testWorker(t, b, proxy.URL, nil)
	time.Sleep(11 * time.Second)
	writes := proxy.writes.Load()
	t.Logf("%d write requests in the first 11 s for %d readings", writes, devices*each)
	if writes > 20 {
		t.Errorf("%d write requests in 11 s: the refused batch is split or not retried with backoff", writes)
	}
	if dead := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("influx_rejected")); dead != 0 {
		t.Errorf("%v dead-lettered as influx_rejected: a server limit is not bad data", dead)
	}
	if err := w.metrics.Stalls.Check(ctx); err == nil || !strings.Contains(err.Error(), "partition 0") || !strings.Contains(err.Error(), "max-values-per-tag") {
		t.Fatalf("readiness says %v, want it to name partition 0 and the limit", err)
	} else {
		t.Logf("stalled: %v", err)
	}

	// The operator raises the limit: InfluxDB again on the same data, without it.
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	raised, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: dir, Port: ports[0], Database: "w"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raised.Stop(context.Background()) })
	expectExact(t, b, w.worker, devices*each)
	db := devenv.InfluxDB{URL: raised.URL, Database: "w"}
	waitFor(t, 10*time.Second, "every reading in InfluxDB", func() bool {
		got, err := db.Scalar(ctx, `SELECT count(t) FROM `+MeasurementRaw+` WHERE site = 'lab'`)
		return err == nil && got == devices*each
	})
}

// Points InfluxDB refuses for what they are, all of a request (by its own
// count of those dropped), are dead-lettered together: a request and a
// record per batch, every line kept, not a request and a record per point.
func TestEveryPointRefusedIsDeadLetteredTogether(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	proxy := startInfluxProxy(t, in.URL)
	db := devenv.InfluxDB{URL: in.URL, Database: "w"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Kept an hour: readings of three hours ago are beyond it.
	if _, err := db.Query(ctx, `CREATE RETENTION POLICY "hour" ON "w" DURATION 1h REPLICATION 1 DEFAULT`); err != nil {
		t.Fatal(err)
	}
	const n = 200
	made := time.Now().Add(-3 * time.Hour).UnixMilli()
	for i := range int64(n) {
		ts := made + i*10
		b.publish(t, reading.Reading{Site: "lab", Device: "old", TS: ts, Received: ts, Metrics: map[string]float64{"t": float64(i)}})
	}
	w := testWorker(t, b, proxy.URL, nil)
	expectExact(t, b, w.worker, n)
	records := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("influx_rejected"))
	t.Logf("%d write requests, %v dead-letter records for %d readings and their windows", proxy.writes.Load(), records, n)
	if writes := proxy.writes.Load(); writes > 10 {
		t.Errorf("%d write requests for %d readings refused whole", writes, n)
	}
	raw := 0
	for _, m := range streamMsgs(t, b.js, bus.StreamDeadLetter) {
		if m.Headers().Get(bus.HeaderReason) == "influx_rejected" {
			raw += strings.Count(string(m.Data()), MeasurementRaw+",")
		}
	}
	if raw != n {
		t.Errorf("dead letters hold %d raw lines, want %d", raw, n)
	}
	if records > 10 {
		t.Errorf("%v dead-letter records: one per point, not per request", records)
	}
}
