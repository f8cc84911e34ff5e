package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/devenv/influxadmin"
	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// startAuthInflux starts InfluxDB 1.8 with authentication on, as the dev
// cluster runs it, and sets up what the admin sets up (influxadmin): the
// database w, its retention policy raw, a write-only user processor and a
// read-only user dashboard.
func startAuthInflux(t *testing.T) (*devenv.Process, devenv.InfluxDB) {
	t.Helper()
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(t.TempDir(), "influxdb"),
		Env: []string{"INFLUXDB_HTTP_AUTH_ENABLED=true"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	// 1.8 takes this one statement without credentials while it has no admin.
	if err := influxadmin.CreateAdmin(ctx, influxadmin.Admin{URL: p.URL, User: "admin", Password: "adm"}); err != nil {
		t.Fatalf("create the admin: %v", err)
	}
	admin := devenv.InfluxDB{URL: p.URL, Database: "w", User: "admin", Password: "adm"}
	for _, q := range []string{
		`CREATE DATABASE w`,
		`CREATE RETENTION POLICY raw ON w DURATION 7d REPLICATION 1`,
		`CREATE USER processor WITH PASSWORD 'wpw'`, `GRANT WRITE ON w TO processor`,
		`CREATE USER dashboard WITH PASSWORD 'rpw'`, `GRANT READ ON w TO dashboard`,
	} {
		if _, err := admin.Query(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return p, admin
}

// The processor works with a user that may only write the database (the
// admin created it): Ensure does not need to create anything, raw readings
// and the windows but the coarsest go to the raw bucket's retention policy
// and the coarsest windows to the other, and the user can read nothing
// back. (Before, Ensure ran CREATE DATABASE, which
// only an admin may, so the processor never started with less than the
// admin's credential; and raw points had no bucket of their own.)
func TestWriteOnlyUserWritesRawAndWindowsApart(t *testing.T) {
	p, admin := startAuthInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("EDGEFLOW_INFLUX_URL", p.URL)
	t.Setenv("EDGEFLOW_INFLUX_TOKEN", "processor:wpw")
	t.Setenv("EDGEFLOW_INFLUX_BUCKET", "w")
	t.Setenv("EDGEFLOW_INFLUX_RAW_BUCKET", "w/raw")
	var cfg InfluxConfig
	if err := envconfig.Process("edgeflow_influx", &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.short = influx.ShortLived([]time.Duration{10 * time.Second, time.Minute})
	f := NewInflux(cfg)
	defer f.Close()
	if err := f.Ensure(ctx); err != nil {
		t.Fatalf("Ensure with a write-only user: %v", err)
	}
	now := time.Now().Truncate(time.Second).UnixMilli()
	r := reading.Reading{Site: "lab", Device: "t1", TS: now, DeviceTime: true, Metrics: map[string]float64{"temperature": 21.5}}
	a := reading.Aggregate{Site: "lab", Device: "t1", Window: "10s", Start: now - 10_000, End: now,
		Metrics: map[string]reading.Stats{"temperature": {Count: 1, Sum: 21.5, Min: 21.5, Max: 21.5, Mean: 21.5, First: 21.5, Last: 21.5}}}
	a1m := a
	a1m.Window, a1m.Start = "1m", now-60_000
	var b Batch
	b.AddReading(&r)
	b.AddAggregate(&a)
	b.AddAggregate(&a1m)
	if err := f.Write(ctx, b.Lines(0, b.Len())); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]float64{
		`SELECT count(temperature) FROM "w"."raw"."telemetry"`:     1,
		`SELECT count(temperature) FROM "w"."autogen"."telemetry"`: 0,
		`SELECT count("count") FROM "w"."autogen"."telemetry_10s"`: 0,
		`SELECT count("count") FROM "w"."raw"."telemetry_10s"`:     1,
		`SELECT count("count") FROM "w"."autogen"."telemetry_1m"`:  1,
		`SELECT count("count") FROM "w"."raw"."telemetry_1m"`:      0,
	} {
		if got, err := admin.Scalar(ctx, q); err != nil || got != want {
			t.Errorf("%s: %v (%v), want %v", q, got, err, want)
		}
	}
	proc := devenv.InfluxDB{URL: p.URL, Database: "w", User: "processor", Password: "wpw"}
	if _, err := proc.Query(ctx, `SELECT * FROM "w"."raw"."telemetry"`); err == nil || !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("the write-only user queried the database: %v", err)
	}
}

// With the default windows (10s,1m), the raw readings and the 10 s windows
// go to the raw bucket, the 1 m windows to the other; without a raw bucket
// everything goes to the one.
func TestShortLivedWindowsGoWithTheRawReadings(t *testing.T) {
	t.Setenv("EDGEFLOW_INFLUX_RAW_BUCKET", "edgeflow/raw")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	lines := "telemetry,device=a,site=s t=1 1\ntelemetry_10s,device=a,metric=t,site=s count=1i 1\ntelemetry_1m,device=a,metric=t,site=s count=1i 1\n"
	f := NewInflux(cfg.Influx)
	defer f.Close()
	raw, windows := f.split(lines)
	if raw != "telemetry,device=a,site=s t=1 1\ntelemetry_10s,device=a,metric=t,site=s count=1i 1\n" ||
		windows != "telemetry_1m,device=a,metric=t,site=s count=1i 1\n" {
		t.Errorf("raw bucket:\n%swindow bucket:\n%s", raw, windows)
	}
	cfg.Influx.RawBucket = ""
	g := NewInflux(cfg.Influx)
	defer g.Close()
	if g.raw != nil {
		t.Error("no raw bucket, yet a writer for it")
	}
}
