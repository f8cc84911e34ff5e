package history

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// A database whose name is an injection attempt (quotes of both kinds, a
// statement separator, a second statement) is read as one identifier by
// the real InfluxDB: history, the last values and readiness work in it,
// and the database the attempt names survives.
func TestHistoryFromHostileDatabaseName(t *testing.T) {
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(t.TempDir(), "influxdb")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	const victim = "victim"
	hostile := `x"; DROP DATABASE "victim"; SELECT * FROM "y' OR '1'='1`
	for _, db := range []string{victim, hostile} {
		if err := devenv.CreateInfluxDatabase(ctx, p.URL, db); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Minute).Truncate(10 * time.Second)
	var lines []string
	for i := range 3 {
		lines = append(lines, fmt.Sprintf("telemetry_10s,device=t1,metric=temperature,site=lab count=10i,sum=215,min=21,max=22,last=%d %d",
			20+i, start.Add(time.Duration(i)*10*time.Second).UnixNano()))
	}
	resp, err := http.Post(p.URL+"/write?"+url.Values{"db": {hostile}}.Encode(), "text/plain", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %s", resp.Status)
	}

	r := NewReader(NewClient(p.URL, "", 10*time.Second), hostile, "", []time.Duration{10 * time.Second, time.Minute})
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	res, err := r.Device(ctx, "15m", "lab", "t1")
	if err != nil || len(res.Series["temperature"]) != 3 {
		t.Fatalf("history: %+v (%v), want 3 points", res.Series, err)
	}
	var last []string
	if err := r.Latest(ctx, func(site, device, metric string, _, _ time.Time, v float64) {
		last = append(last, fmt.Sprintf("%s/%s/%s=%g", site, device, metric, v))
	}); err != nil || fmt.Sprint(last) != "[lab/t1/temperature=22]" {
		t.Fatalf("latest: %v (%v)", last, err)
	}
	if err := NewReader(NewClient(p.URL, "", 10*time.Second), victim, "", []time.Duration{time.Minute}).Ready(ctx); err != nil {
		t.Fatalf("the database the hostile name names is gone: %v", err)
	}
	if err := NewReader(NewClient(p.URL, "", 10*time.Second), "nosuchdb", "", []time.Duration{time.Minute}).Ready(ctx); err == nil {
		t.Fatal("ready with a missing database")
	}
}
