package influxadmin_test

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/devenv/influxadmin"
)

// The disk a point takes in InfluxDB 1.8.3, fully compacted, for the
// figures of docs/operations.md ("InfluxDB retention"): devices of three
// metrics (values of two decimals, random walks) reading once a second with
// their own clocks' jitter, the raw points as the processor writes them
// (sub-millisecond offset from the sequence number) and the 10 s and 1 m
// windows of each metric. Set EDGEFLOW_MEASURE_DISK=1 to run it (about a
// minute).
func TestDiskPerPoint(t *testing.T) {
	if os.Getenv("EDGEFLOW_MEASURE_DISK") == "" {
		t.Skip("EDGEFLOW_MEASURE_DISK=1 measures InfluxDB's disk per point")
	}
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	const devices, seconds = 200, 3600
	dir := t.TempDir()
	p := start(t, dir, 0, influxadmin.Retention{RawDays: 7, WindowDays: 400})
	// Compacted in full once cold for 5 s, as every shard is after 4 h.
	_ = p.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err = devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: dir, AdminUser: "admin", AdminPassword: "adm",
		Env: []string{"INFLUXDB_DATA_COMPACT_FULL_WRITE_COLD_DURATION=5s", "INFLUXDB_DATA_CACHE_SNAPSHOT_WRITE_COLD_DURATION=2s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Hour).UnixMilli()
	type dev struct {
		jitter int64
		v      [3]float64
		win10  [3][]float64
		win60  [3][]float64
	}
	devs := make([]dev, devices)
	for d := range devs {
		devs[d] = dev{jitter: rng.Int64N(1000), v: [3]float64{21, 50, 1013}}
	}
	names := [3]string{"temperature", "humidity", "pressure"}
	var raw, win strings.Builder
	rawPoints, windowLines := 0, 0
	flush := func(b *strings.Builder, bucket string) {
		if b.Len() == 0 {
			return
		}
		post(t, p.URL, bucket, b.String())
		b.Reset()
	}
	windowLine := func(w string, d int, m int, start int64, vs []float64) {
		lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
		for _, v := range vs {
			lo, hi, sum = min(lo, v), max(hi, v), sum+v
		}
		fmt.Fprintf(&win, "telemetry_%s,device=d%04d,metric=%s,site=site1 count=%di,sum=%g,min=%g,max=%g,mean=%g,first=%g,last=%g %d\n",
			w, d, names[m], len(vs), sum, lo, hi, sum/float64(len(vs)), vs[0], vs[len(vs)-1], start*1e6)
		windowLines++
	}
	for s := range int64(seconds) {
		for d := range devs {
			dv := &devs[d]
			ms := t0 + s*1000 + dv.jitter
			fmt.Fprintf(&raw, "telemetry,device=d%04d,site=site1 ", d)
			for m := range dv.v {
				dv.v[m] = math.Round((dv.v[m]+rng.NormFloat64()*0.05)*100) / 100
				if m > 0 {
					raw.WriteByte(',')
				}
				fmt.Fprintf(&raw, "%s=%g", names[m], dv.v[m])
				dv.win10[m] = append(dv.win10[m], dv.v[m])
				dv.win60[m] = append(dv.win60[m], dv.v[m])
			}
			fmt.Fprintf(&raw, " %d\n", ms*1e6+s%1e6)
			rawPoints++
			for m := range dv.v {
				if (s+1)%10 == 0 {
					windowLine("10s", d, m, t0+(s-9)*1000, dv.win10[m])
					dv.win10[m] = dv.win10[m][:0]
				}
				if (s+1)%60 == 0 {
					windowLine("1m", d, m, t0+(s-59)*1000, dv.win60[m])
					dv.win60[m] = dv.win60[m][:0]
				}
			}
		}
		if raw.Len() > 1<<20 {
			flush(&raw, "edgeflow/raw")
		}
		if win.Len() > 1<<20 {
			flush(&win, "edgeflow")
		}
	}
	flush(&raw, "edgeflow/raw")
	flush(&win, "edgeflow")

	// Wait for the cache to be written and the shards compacted in full:
	// the sizes stop changing.
	var last string
	for range 120 {
		time.Sleep(5 * time.Second)
		sizes := fmt.Sprint(du(t, filepath.Join(dir, "data", "edgeflow", "raw")), du(t, filepath.Join(dir, "data", "edgeflow", "autogen")),
			du(t, filepath.Join(dir, "wal")))
		if sizes == last {
			break
		}
		last = sizes
	}
	rawBytes := du(t, filepath.Join(dir, "data", "edgeflow", "raw"))
	winBytes := du(t, filepath.Join(dir, "data", "edgeflow", "autogen"))
	t.Logf("%d devices x 3 metrics, 1 reading/s for %d s: wal %d B", devices, seconds, du(t, filepath.Join(dir, "wal")))
	t.Logf("raw: %d points (readings of 3 metrics) in %d B: %.2f B/point, %.2f B/value",
		rawPoints, rawBytes, float64(rawBytes)/float64(rawPoints), float64(rawBytes)/float64(rawPoints*3))
	t.Logf("windows (10s and 1m): %d lines of 7 fields in %d B: %.2f B/line", windowLines, winBytes, float64(winBytes)/float64(windowLines))
}

func post(t *testing.T, base, bucket, body string) {
	t.Helper()
	q := url.Values{"bucket": {bucket}, "org": {"x"}, "precision": {"ns"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v2/write?"+q.Encode(), strings.NewReader(body))
	req.Header.Set("Authorization", "Token admin:adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write %s: %s", bucket, resp.Status)
	}
}

// du is the bytes of the files under dir (shards: TSM files and the tsi1
// index).
func du(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}
