package influxadmin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/devenv/influxadmin"
)

var users = []influxadmin.User{
	{Name: "processor", Password: "w'pw", Privilege: influxadmin.Write},
	{Name: "dashboard", Password: `r\pw`, Privilege: influxadmin.Read},
}

func plan(t *testing.T, r influxadmin.Retention) *influxadmin.Plan {
	t.Helper()
	p, err := influxadmin.NewPlan("edgeflow", "edgeflow/raw", r, users...)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

func start(t *testing.T, dir string, port int, r influxadmin.Retention) *devenv.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: dir, Port: port,
		AdminUser: "admin", AdminPassword: "adm", Plan: plan(t, r)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

// policies returns every retention policy of edgeflow as
// name=duration/shard-group-duration, the default marked with *.
func policies(t *testing.T, db devenv.InfluxDB) string {
	t.Helper()
	ss, err := db.Query(context.Background(), `SHOW RETENTION POLICIES ON edgeflow`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range ss {
		for _, v := range s.Values {
			mark := ""
			if v[4] == true {
				mark = "*"
			}
			out = append(out, fmt.Sprintf("%v%s=%v/%v", v[0], mark, v[1], v[2]))
		}
	}
	return strings.Join(out, " ")
}

func write(t *testing.T, base, token, bucket, lines string) int {
	t.Helper()
	q := url.Values{"bucket": {bucket}, "org": {"x"}, "precision": {"s"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v2/write?"+q.Encode(), strings.NewReader(lines))
	req.Header.Set("Authorization", "Token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Set up from nothing on InfluxDB 1.8.3 with authentication on: the two
// retention policies with the configured durations (windows in the
// default one), points written to a bucket land in its policy, the
// processor's user may only write and the dashboard's only read; started
// again with other durations and passwords, InfluxDB has them.
func TestApplyOnInfluxDB18(t *testing.T) {
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	dir := t.TempDir()
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, ports[0], influxadmin.Retention{RawDays: 7, WindowDays: 400})
	admin := devenv.InfluxDB{URL: p.URL, Database: "edgeflow", User: "admin", Password: "adm"}
	if got, want := policies(t, admin), "autogen*=9600h0m0s/168h0m0s raw=168h0m0s/24h0m0s"; got != want {
		t.Fatalf("retention policies %s, want %s", got, want)
	}

	now := time.Now().Unix()
	for bucket, line := range map[string]string{
		"edgeflow":     fmt.Sprintf("telemetry_10s,site=a,device=b,metric=t count=1i %d", now),
		"edgeflow/raw": fmt.Sprintf("telemetry,site=a,device=b t=1 %d", now),
	} {
		if code := write(t, p.URL, users[0].Token(), bucket, line); code != http.StatusNoContent {
			t.Fatalf("processor writing %s: %d", bucket, code)
		}
	}
	for q, want := range map[string]float64{
		`SELECT count(t) FROM "edgeflow"."raw"."telemetry"`:               1,
		`SELECT count(t) FROM "edgeflow"."autogen"."telemetry"`:           0,
		`SELECT count("count") FROM "edgeflow"."autogen"."telemetry_10s"`: 1,
		`SELECT count("count") FROM "edgeflow"."raw"."telemetry_10s"`:     0,
	} {
		if got, err := admin.Scalar(context.Background(), q); err != nil || got != want {
			t.Errorf("%s: %v (%v), want %v", q, got, err, want)
		}
	}
	if code := write(t, p.URL, users[1].Token(), "edgeflow", fmt.Sprintf("telemetry_10s,site=a,device=c,metric=t count=1i %d", now)); code != http.StatusForbidden {
		t.Errorf("the dashboard's read-only user writing: %d, want 403", code)
	}
	proc := devenv.InfluxDB{URL: p.URL, Database: "edgeflow", User: "processor", Password: users[0].Password}
	if _, err := proc.Query(context.Background(), `SELECT * FROM telemetry_10s`); err == nil || !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("the processor's write-only user reading: %v, want not authorized", err)
	}
	dash := devenv.InfluxDB{URL: p.URL, Database: "edgeflow", User: "dashboard", Password: users[1].Password}
	if n, err := dash.Scalar(context.Background(), `SELECT count("count") FROM telemetry_10s`); err != nil || n != 1 {
		t.Errorf("the dashboard's user reading: %v (%v)", n, err)
	}
	for _, q := range []string{`CREATE DATABASE other`, `DROP MEASUREMENT telemetry_10s`, `CREATE USER x WITH PASSWORD 'x' WITH ALL PRIVILEGES`} {
		for _, who := range []devenv.InfluxDB{proc, dash} {
			if _, err := who.Query(context.Background(), q); err == nil {
				t.Errorf("%s ran %s", who.User, q)
			}
		}
	}

	// A restart with other durations (and a rotated password) applies them.
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	users[0].Password = "rotated"
	p = start(t, dir, ports[0], influxadmin.Retention{RawDays: 3, WindowDays: 30})
	if got, want := policies(t, admin), "autogen*=720h0m0s/24h0m0s raw=72h0m0s/24h0m0s"; got != want {
		t.Fatalf("after a restart with 3 and 30 days: retention policies %s, want %s", got, want)
	}
	if code := write(t, p.URL, users[0].Token(), "edgeflow/raw", fmt.Sprintf("telemetry,site=a,device=b t=2 %d", now+1)); code != http.StatusNoContent {
		t.Fatalf("processor writing with its rotated password: %d", code)
	}
	if code := write(t, p.URL, "processor:w'pw", "edgeflow/raw", fmt.Sprintf("telemetry,site=a,device=b t=2 %d", now+1)); code != http.StatusUnauthorized {
		t.Errorf("processor writing with its old password: %d, want 401", code)
	}
}

func TestNewPlanRefusesBucketsThatCannotBeApart(t *testing.T) {
	r := influxadmin.Retention{RawDays: 7, WindowDays: 400}
	for _, b := range [][2]string{{"edgeflow", "other/raw"}, {"edgeflow", "edgeflow"}, {"edgeflow/x", "edgeflow/x"}, {"", "edgeflow/raw"}} {
		if _, err := influxadmin.NewPlan(b[0], b[1], r); err == nil {
			t.Errorf("windows %q, raw %q: no error", b[0], b[1])
		}
	}
	if _, err := influxadmin.NewPlan("edgeflow", "edgeflow/raw", influxadmin.Retention{}); err == nil {
		t.Error("zero retention: no error")
	}
}
