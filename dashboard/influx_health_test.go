package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// The pipeline view's InfluxDB status says whether history can be read, not
// only whether InfluxDB answers: a database dropped under the dashboard
// shows, naming the bucket, until it is back. (Before, a ping answered and
// the status said "ok" while every history query failed.)
func TestPipelineReportsMissingDatabase(t *testing.T) {
	e := newEnv(t)
	e.start()
	var p struct{ InfluxDB string }
	eventually(t, 10*time.Second, "InfluxDB ok", func() bool {
		e.get("/api/pipeline", &p)
		return p.InfluxDB == "ok"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := devenv.InfluxDB{URL: e.influx, Database: e.db}
	if _, err := db.Query(ctx, `DROP DATABASE "`+e.db+`"`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "InfluxDB status names the missing database", func() bool {
		e.get("/api/pipeline", &p)
		return p.InfluxDB != "ok" && strings.Contains(p.InfluxDB, e.db)
	})
	t.Logf("InfluxDB status: %s", p.InfluxDB)
	if err := devenv.CreateInfluxDatabase(ctx, e.influx, e.db); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "InfluxDB ok again", func() bool {
		e.get("/api/pipeline", &p)
		return p.InfluxDB == "ok"
	})
}
