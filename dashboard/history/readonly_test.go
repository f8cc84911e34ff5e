package history

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/devenv/influxadmin"
)

// The dashboard reads history with a user that may only read the database,
// as task deploy sets it up (influxadmin, InfluxDB 1.8.3 with
// authentication on): readiness, the last values and a device's history
// all work, each measurement read from the bucket it is written to (10 s
// windows kept with the raw readings, 1 m windows for months), and the user
// cannot write.
func TestHistoryWithReadOnlyUser(t *testing.T) {
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	users := []influxadmin.User{{Name: "processor", Password: "wpw", Privilege: influxadmin.Write},
		{Name: "dashboard", Password: "rpw", Privilege: influxadmin.Read}}
	plan, err := influxadmin.NewPlan("edgeflow", "edgeflow/raw", influxadmin.Retention{RawDays: 7, WindowDays: 400}, users...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(t.TempDir(), "influxdb"),
		AdminUser: "admin", AdminPassword: "adm", Plan: &plan})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	proc := influxdb2.NewClient(p.URL, users[0].Token())
	defer proc.Close()
	start := time.Now().Add(-time.Minute).Truncate(10 * time.Second)
	line := func(w string, i int) string {
		return fmt.Sprintf("telemetry_%s,device=t1,metric=temperature,site=lab count=10i,sum=215,min=21,max=22,mean=21.5,first=21,last=%d %d",
			w, 20+i, start.Add(time.Duration(i)*10*time.Second).UnixNano())
	}
	for i := range 3 {
		if err := proc.WriteAPIBlocking("", "edgeflow/raw").WriteRecord(ctx, line("10s", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := proc.WriteAPIBlocking("", "edgeflow").WriteRecord(ctx, line("1m", 0)); err != nil {
		t.Fatal(err)
	}

	dash := influxdb2.NewClient(p.URL, users[1].Token())
	defer dash.Close()
	r := NewReader(NewClient(p.URL, users[1].Token(), 10*time.Second), "edgeflow", "edgeflow/raw", []time.Duration{10 * time.Second, time.Minute})
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("ready with the read-only user: %v", err)
	}
	var last []string
	if err := r.Latest(ctx, func(site, device, metric string, _, _ time.Time, v float64) {
		last = append(last, fmt.Sprintf("%s/%s/%s=%g", site, device, metric, v))
	}); err != nil || fmt.Sprint(last) != "[lab/t1/temperature=22]" {
		t.Fatalf("latest with the read-only user: %v (%v)", last, err)
	}
	for rng, want := range map[string]int{"15m": 3, "24h": 1} {
		res, err := r.Device(ctx, rng, "lab", "t1")
		if err != nil || len(res.Series["temperature"]) != want {
			t.Errorf("%s of history (%s) with the read-only user: %+v (%v), want %d points", rng, res.Measurement, res.Series, err, want)
		}
	}
	if err := dash.WriteAPIBlocking("", "edgeflow").WriteRecord(ctx, line("1m", 5)); err == nil {
		t.Fatal("the dashboard's read-only user wrote a point")
	} else {
		t.Logf("the read-only user writing: %v", err)
	}
}
