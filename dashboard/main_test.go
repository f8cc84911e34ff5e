package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/service"
)

// One InfluxDB for the package's tests (3-4 s to start); each test has its
// own database and its own embedded NATS.
var sharedInflux struct {
	proc *devenv.Process
	err  error
}

func TestMain(m *testing.M) {
	code := func() int {
		if _, err := devenv.InfluxdBinary(); err != nil {
			sharedInflux.err = err
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "edgeflow-dashboard-")
		if err != nil {
			sharedInflux.err = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		sharedInflux.proc, sharedInflux.err = devenv.StartInfluxDB(context.Background(), devenv.InfluxOptions{Dir: filepath.Join(dir, "influxdb")})
		if sharedInflux.proc != nil {
			defer sharedInflux.proc.Stop(context.Background())
		}
		return m.Run()
	}()
	os.Exit(code)
}

// env is one running dashboard between a real NATS and a real InfluxDB.
type env struct {
	t      *testing.T
	url    string
	db     string
	nc     *nats.Conn
	js     jetstream.JetStream
	influx string
	cancel context.CancelFunc
	done   chan error
}

var dbSeq int

// newEnv starts NATS, creates the streams the other services would
// (DEADLETTER, ALERTS) and a database; the dashboard starts with start.
func newEnv(t *testing.T) *env {
	t.Helper()
	devenv.RequireInstalled(t, sharedInflux.err)
	ns, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return newEnvAt(t, ns.ClientURL())
}

// newEnvAt is newEnv on a NATS server the test started.
func newEnvAt(t *testing.T, natsURL string) *env {
	t.Helper()
	devenv.RequireInstalled(t, sharedInflux.err)
	e := &env{t: t, influx: sharedInflux.proc.URL}
	dbSeq++
	e.db = "dash" + strconv.Itoa(dbSeq)
	if err := devenv.CreateInfluxDatabase(context.Background(), e.influx, e.db); err != nil {
		t.Fatal(err)
	}
	var err error
	e.nc, err = nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	e.js, _ = jetstream.New(e.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sc bus.StreamConfig
	sc.Replicas, sc.DeadLetterMaxAge, sc.DeadLetterMaxBytes = 1, time.Hour, 1<<20
	if err := bus.Ensure(ctx, e.js, sc.DeadLetter(), jetstream.StreamConfig{Name: bus.StreamAlerts, Subjects: []string{"alerts.>"}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EDGEFLOW_NATS_URL", natsURL)
	t.Setenv("EDGEFLOW_INFLUX_URL", e.influx)
	t.Setenv("EDGEFLOW_INFLUX_BUCKET", e.db)
	t.Setenv("EDGEFLOW_DASHBOARD_SCRAPE_INTERVAL", "500ms")
	return e
}

// start runs the dashboard in-process and waits until it is ready.
func (e *env) start() {
	t := e.t
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("EDGEFLOW_DASHBOARD_HTTP_ADDR", "127.0.0.1:"+strconv.Itoa(port))
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- run(ctx, cfg) }()
	t.Cleanup(e.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(e.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop is SIGTERM: run must return promptly, live streams included.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("dashboard did not stop within 10 s of SIGTERM")
	}
}

// writeInflux writes line protocol (ms precision) to the test's database.
func (e *env) writeInflux(lines []string) {
	e.t.Helper()
	resp, err := http.Post(e.influx+"/write?precision=ms&db="+e.db, "text/plain", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("influx write: %s %s", resp.Status, body)
	}
}

func window(meas, site, dev, metric string, at time.Time, count int, min, max, sum float64) string {
	return fmt.Sprintf("%s,device=%s,metric=%s,site=%s count=%di,sum=%g,min=%g,max=%g,mean=%g,first=%g,last=%g %d",
		meas, dev, metric, site, count, sum, min, max, sum/float64(count), min, max, at.UnixMilli())
}

// get fetches path and decodes JSON into v; it returns the status.
func (e *env) get(path string, v any, hdr ...string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			e.t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func publishReading(t *testing.T, nc *nats.Conn, site, dev string, ts int64, metrics map[string]float64) {
	t.Helper()
	data, _ := json.Marshal(map[string]any{"site": site, "device": dev, "ts": ts, "metrics": metrics, "rx": ts})
	var b bus.LiveBatch // as a processor's flush sends it
	b.Add(site, dev, data)
	if err := b.Publish(nc, bus.LiveSubject("0")); err != nil {
		t.Fatal(err)
	}
}

type overviewJSON struct {
	Devices []struct {
		Site, Device string
		Seen         int64
		M            map[string]struct {
			Last  [2]float64
			Spark []float64
		}
	}
}

type historyJSON struct {
	Measurement string
	Step        int64
	Series      map[string][][4]*float64
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	now := time.Now().Truncate(time.Minute)
	// History: 10 s windows over the last 20 minutes, 1 m windows over 3 days.
	var lines []string
	for i := range 120 {
		at := now.Add(-time.Duration(i) * 10 * time.Second)
		lines = append(lines, window("telemetry_10s", "lab", "t1", "temperature", at, 10, 20, 22+float64(i%3), 210))
	}
	for i := range 3 * 24 * 60 {
		at := now.Add(-time.Duration(i) * time.Minute)
		lines = append(lines, window("telemetry_1m", "lab", "t1", "temperature", at, 60, 10+float64(i%5), 30, 60*20))
	}
	// A device only InfluxDB knows (seen before the dashboard started).
	lines = append(lines, window("telemetry_10s", "old", "quiet", "humidity", now.Add(-time.Hour), 1, 55, 55, 55))
	lines = append(lines, window("telemetry_1m", "old", "quiet", "humidity", now.Add(-time.Hour), 1, 55, 55, 55))
	// A raw point: history must never read it.
	lines = append(lines, fmt.Sprintf("telemetry,device=t1,site=lab temperature=999 %d", now.UnixMilli()))
	e.writeInflux(lines)

	// An alert the notifier published before the dashboard started.
	if _, err := e.js.Publish(context.Background(), "alerts.lab.t1.hot",
		[]byte(`{"rule":"hot","site":"lab","device":"t1","state":"firing","severity":"critical","value":41,"threshold":40,"since":1795600000000,"at":1795600000000}`)); err != nil {
		t.Fatal(err)
	}
	e.start()

	publishReading(t, e.nc, "lab", "t1", time.Now().UnixMilli(), map[string]float64{"temperature": 21.5, "humidity": 40})
	var o overviewJSON
	eventually(t, 10*time.Second, "overview shows lab/t1 live and old/quiet from InfluxDB", func() bool {
		o = overviewJSON{}
		e.get("/api/overview", &o)
		var live, seeded bool
		for _, d := range o.Devices {
			live = live || d.Site == "lab" && d.Device == "t1" && d.M["humidity"].Last[1] == 40
			seeded = seeded || d.Site == "old" && d.Device == "quiet" && d.M["humidity"].Last[1] == 55
		}
		return live && seeded
	})

	var dev struct {
		Device struct {
			M map[string]struct{ Points [][2]float64 }
		}
	}
	if st := e.get("/api/devices/lab/t1", &dev); st != 200 || len(dev.Device.M["temperature"].Points) == 0 {
		t.Fatalf("device: %d %+v", st, dev)
	}

	for _, tt := range []struct {
		rng, meas string
		minBands  int
	}{{"15m", "telemetry_10s", 80}, {"1h", "telemetry_10s", 110}, {"24h", "telemetry_1m", 300}, {"7d", "telemetry_1m", 150}} {
		var h historyJSON
		if st := e.get("/api/history/lab/t1?range="+tt.rng, &h); st != 200 {
			t.Fatalf("history %s: %d", tt.rng, st)
		}
		bands := h.Series["temperature"]
		t.Logf("history %s: %s, step %d ms, %d points", tt.rng, h.Measurement, h.Step, len(bands))
		if h.Measurement != tt.meas || len(bands) < tt.minBands || len(bands) > 400 {
			t.Fatalf("history %s: %s with %d points, want %s with %d..400", tt.rng, h.Measurement, len(bands), tt.meas, tt.minBands)
		}
		for _, b := range bands {
			if b[1] == nil || b[2] == nil || b[3] == nil || *b[1] > *b[3] || *b[3] > *b[2] || *b[2] > 30 {
				t.Fatalf("history %s: band %v is not min <= mean <= max from windows (raw 999 leaked?)", tt.rng, b)
			}
			if tt.meas == "telemetry_1m" && *b[3] != 20 {
				t.Fatalf("history %s: mean %v, want the count-weighted 20", tt.rng, *b[3])
			}
		}
	}

	// Names and ranges are validated before any query.
	for path, want := range map[string]int{
		"/api/history/lab/t1?range=30d":  400,
		"/api/history/lab/%3Cb%3E":       400,
		"/api/history/lab%22/t1":         400,
		"/api/devices/lab.x/t1":          400,
		"/api/devices/lab/nobody":        404,
		"/api/events?view=device&site=a": 400,
		"/api/events?view=bogus":         400,
	} {
		if st := e.get(path, nil); st != want {
			t.Errorf("GET %s = %d, want %d", path, st, want)
		}
	}
	resp, err := http.Post(e.url+"/api/overview", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d: the dashboard is read-only", resp.StatusCode)
	}

	// Alerts: the current state read at start, a live change, and an
	// invalid message ignored.
	for _, msg := range []string{
		`{"rule":"cold","site":"lab","device":"t2","state":"pending","severity":"warning","value":1,"threshold":2,"since":"2026-11-25T10:00:00Z","at":"2026-11-25T10:00:00Z"}`,
		`{"rule":"<img src=x onerror=alert(1)>","site":"lab","device":"t2","state":"firing"}`,
	} {
		if _, err := e.js.Publish(context.Background(), "alerts.lab.t2.cold", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	var a struct {
		Firing, Pending []struct{ Rule, Site, Device, State string }
		History         []struct{ Rule string }
	}
	eventually(t, 10*time.Second, "alerts", func() bool {
		e.get("/api/alerts", &a)
		return len(a.Firing) == 1 && a.Firing[0].Rule == "hot" && len(a.Pending) == 1 && a.Pending[0].Rule == "cold" && len(a.History) == 2
	})

	// Dead letters with hostile strings come back verbatim as JSON text.
	hostile := "sensors/<img src=x onerror=alert(1)>/d"
	err = bus.DeadLetter{Service: "ingest", Reason: "bad_name", Detail: "name <b>bold</b>", Source: hostile,
		Body: []byte(`{"t":"<script>alert(1)</script>"}`)}.Publish(context.Background(), e.js, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Services []any
		Streams  []struct {
			Name   string
			Exists bool
			Msgs   uint64
		}
		DeadCount   uint64                                             `json:"deadletter_count"`
		DeadLetters []struct{ Topic, Reason, Excerpt, Service string } `json:"deadletters"`
		InfluxDB    string
		Build       service.Build
	}
	eventually(t, 10*time.Second, "pipeline shows the dead letter", func() bool {
		e.get("/api/pipeline", &p)
		return p.DeadCount == 1 && len(p.DeadLetters) == 1
	})
	if d := p.DeadLetters[0]; d.Topic != hostile || d.Reason != "bad_name" || d.Service != "ingest" || !strings.Contains(d.Excerpt, "<script>") {
		t.Fatalf("dead letter %+v", d)
	}
	if p.InfluxDB != "ok" || len(p.Streams) != 4 {
		t.Fatalf("pipeline %+v", p)
	}
	// The pipeline view names the dashboard's build, as its edgeflow_build_info does.
	if want := service.Version(); p.Build != want || p.Build.Version == "" || p.Build.Revision == "" || p.Build.GoVersion == "" {
		t.Errorf("pipeline build %+v, want %+v", p.Build, want)
	}
	raw, _ := http.Get(e.url + "/api/pipeline")
	body, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	if strings.Contains(string(body), "<img") || strings.Contains(string(body), "<script") {
		t.Fatal("JSON carries raw markup characters: encode < and > so no sniffing browser can take it for HTML")
	}
}

// The page: embedded, small, gzipped, with a strict Content-Security-Policy.
func TestAssets(t *testing.T) {
	e := newEnv(t)
	e.start()
	total, gz := 0, 0
	for _, path := range []string{"/", "/app.js", "/app.css", "/vendor/uplot/uPlot.iife.min.js", "/vendor/uplot/uPlot.min.css"} {
		for _, enc := range []string{"identity", "gzip"} {
			req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
			req.Header.Set("Accept-Encoding", enc)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Fatalf("GET %s: CSP %q", path, csp)
			}
			if enc == "gzip" {
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("GET %s: not gzipped", path)
				}
				zr, err := gzip.NewReader(strings.NewReader(string(body)))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.ReadAll(zr)
				gz += len(body)
			} else {
				total += len(body)
			}
			if path == "/" && enc == "identity" {
				if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") {
					t.Fatal("index.html loads something from elsewhere")
				}
			}
		}
	}
	// The budget holds uPlot (docs/decisions.md has the weight before and after).
	t.Logf("page weight: %d bytes (%d gzipped) for index.html, app.js, app.css and uPlot's script and stylesheet", total, gz)
	if gz > 45<<10 {
		t.Fatalf("page weighs %d bytes gzipped, want under 45 KiB", gz)
	}
}

func TestToken(t *testing.T) {
	e := newEnv(t)
	t.Setenv("EDGEFLOW_DASHBOARD_TOKEN", "s3cret")
	e.start()
	if st := e.get("/api/overview", nil); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st := e.get("/", nil); st != 401 {
		t.Fatalf("no token, page: %d", st)
	}
	if st := e.get("/api/overview", nil, "Authorization", "Bearer wrong"); st != 401 {
		t.Fatalf("wrong token: %d", st)
	}
	if st := e.get("/api/overview", nil, "Authorization", "Bearer s3cret"); st != 200 {
		t.Fatalf("bearer: %d", st)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/events", nil)
	req.SetBasicAuth("anyone", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("basic auth on the live stream: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if st := e.get(path, nil); st != 200 {
			t.Fatalf("%s without token: %d (probes must work)", path, st)
		}
	}
}

// sseClient counts, per device, the updates one browser receives.
type sseClient struct {
	frames  int
	bytes   int
	updates map[string]int
	resyncs int
	bye     bool
}

func readSSE(ctx context.Context, u string, c *sseClient) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		c.bytes += len(line) + 1
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
			if event == "resync" {
				c.resyncs++
			}
			if event == "bye" {
				c.bye = true
			}
		case strings.HasPrefix(line, "data: ") && event == "devices":
			c.frames++
			var b struct {
				U []struct{ Site, Device string }
			}
			if err := json.Unmarshal([]byte(line[6:]), &b); err != nil {
				return err
			}
			for _, up := range b.U {
				c.updates[up.Site+"/"+up.Device]++
			}
		}
	}
	return nil
}

// 500 devices each sending 5 readings a second to 200 browsers: every
// browser gets one batch per tick with at most one update per device, none
// is dropped, memory stays small, and SIGTERM ends every stream at once.
func TestLiveFanOut(t *testing.T) {
	const (
		devices  = 500
		clients  = 200
		perSec   = 5
		duration = 4 * time.Second
	)
	e := newEnv(t)
	t.Setenv("EDGEFLOW_DASHBOARD_MAX_CLIENTS", "1000")
	e.start()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make([]*sseClient, clients)
	errs := make(chan error, clients)
	for i := range results {
		results[i] = &sseClient{updates: map[string]int{}}
		go func() { errs <- readSSE(ctx, e.url+"/api/events?view=overview", results[i]) }()
	}
	eventually(t, 10*time.Second, "clients connected", func() bool {
		var m struct{ Clients int }
		e.get("/api/pipeline", &m)
		return m.Clients == clients
	})
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Second / perSec)
	for time.Since(start) < duration {
		<-tick.C
		ts := time.Now().UnixMilli()
		for d := range devices {
			publishReading(t, e.nc, "site"+strconv.Itoa(d%10), "dev"+strconv.Itoa(d), ts, map[string]float64{"temperature": float64(d), "humidity": 50})
			sent++
		}
	}
	tick.Stop()
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the last tick
	elapsed := time.Since(start)
	metrics := scrape(t, e.url)
	stopStart := time.Now()
	e.stop() // SIGTERM with 200 open streams
	stopTook := time.Since(stopStart)
	for range clients {
		<-errs
	}
	ticks := int(elapsed/time.Second) + 1
	maxPerDevice, frames, bytes, missing := 0, 0, 0, 0
	for i, c := range results {
		if !c.bye {
			t.Errorf("client %d got no bye on shutdown", i)
		}
		if c.resyncs > 0 {
			t.Errorf("client %d was told to resync %d times: frames were dropped", i, c.resyncs)
		}
		if len(c.updates) != devices {
			missing++
		}
		for _, n := range c.updates {
			maxPerDevice = max(maxPerDevice, n)
		}
		frames += c.frames
		bytes += c.bytes
	}
	t.Logf("fan-out: %d devices × %d readings/s (%d readings) to %d clients over %s: %.1f batches/client, at most %d updates per device per client (%d ticks), %.0f KiB/s per client, dropped %s, heap in use %.1f MiB (dashboard and the 200 test clients), SIGTERM drained in %s",
		devices, perSec, sent, clients, elapsed.Round(time.Millisecond), float64(frames)/clients, maxPerDevice, ticks,
		float64(bytes)/clients/elapsed.Seconds()/1024, metrics["edgeflow_dashboard_sse_dropped_total"],
		mustFloat(metrics["go_memstats_heap_inuse_bytes"])/(1<<20), stopTook.Round(time.Millisecond))
	if missing > 0 {
		t.Errorf("%d clients did not see every device", missing)
	}
	if maxPerDevice > ticks+1 {
		t.Errorf("a device was sent %d times in %d ticks: updates are not coalesced", maxPerDevice, ticks)
	}
	if metrics["edgeflow_dashboard_sse_dropped_total"] != "0" {
		t.Errorf("dropped %s frames with healthy clients", metrics["edgeflow_dashboard_sse_dropped_total"])
	}
	if stopTook > 3*time.Second {
		t.Errorf("SIGTERM took %s with open streams", stopTook)
	}
}

func scrape(t *testing.T, base string) map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			out[f[0]] = f[1]
		}
	}
	return out
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
