package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
)

// The uplink topology of internal/bus's tests, the part the dashboard needs:
// a hub, a site whose NATS is its leaf node (domain = the site's name), and
// between them a proxy that can cut the link.

const north = "greenhouse-north"

// startHub starts a hub (devenv.StartNATSHub), stopped at cleanup.
func startHub(t *testing.T) *devenv.NATSHub {
	t.Helper()
	h, err := devenv.StartNATSHub(t.TempDir(), bus.HubDomain, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// sourceAggregates has the hub source north's AGGREGATES (only), and
// waits until north is linked.
func sourceAggregates(t *testing.T, hub *devenv.NATSHub, sc bus.StreamConfig) (jetstream.JetStream, bus.HubConfig) {
	t.Helper()
	hnc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hnc.Close)
	hjs, _ := jetstream.New(hnc)
	hcfg := bus.HubConfig{Sites: []string{north}, Streams: []string{bus.StreamAggregates}, MaxAge: time.Hour, MaxBytes: 64 << 20}
	if err := bus.Ensure(t.Context(), hjs, hcfg.HubStreams(sc)...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "site linked", func() bool { return hub.Server.NumLeafNodes() == 1 })
	return hjs, hcfg
}

// startSite starts a site's NATS, a leaf node of remote, stopped at cleanup.
func startSite(t *testing.T, name, remote string) *server.Server {
	t.Helper()
	s, err := devenv.StartNATSSite(t.TempDir(), name, remote, bus.SiteLocalSubjects, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// uplinkJSON is the uplink part of /api/pipeline.
type uplinkJSON struct {
	Site      string
	HubDomain string `json:"hub_domain"`
	State     string
	Reachable bool
	Error     string
	Checked   int64
	Streams   []struct {
		Name    string
		SiteSeq uint64 `json:"site_seq"`
		HubSeq  uint64 `json:"hub_seq"`
		Backlog uint64
		Problem string
	}
}

func (e *env) uplink() uplinkJSON {
	e.t.Helper()
	var p struct{ Uplink *uplinkJSON }
	if st := e.get("/api/pipeline", &p); st != 200 || p.Uplink == nil {
		return uplinkJSON{}
	}
	return *p.Uplink
}

func publishWindows(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	for i := range n {
		if _, err := js.Publish(t.Context(), "aggregates.10s.lab.t"+strconv.Itoa(i%4), []byte(`{"n":`+strconv.Itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
}

// pipelineFrame reads the pipeline page's live stream until a frame's
// uplink part satisfies ok.
func pipelineFrame(t *testing.T, base string, ok func(*uplinkJSON) bool) uplinkJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events?view=pipeline", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if ev, found := strings.CutPrefix(line, "event: "); found {
			event = ev
		}
		if data, found := strings.CutPrefix(line, "data: "); found && event == "pipeline" {
			var p struct{ Uplink *uplinkJSON }
			if err := json.Unmarshal([]byte(data), &p); err != nil {
				t.Fatal(err)
			}
			if p.Uplink != nil && ok(p.Uplink) {
				return *p.Uplink
			}
		}
	}
	t.Fatalf("no live pipeline frame with the uplink wanted: %v", sc.Err())
	return uplinkJSON{}
}

// logCount counts the JSON log lines whose message starts with msg.
func logCount(buf *bytes.Buffer, msg string) int {
	return strings.Count(buf.String(), `"msg":"`+msg)
}

// A site's dashboard watching its uplink against real servers: a stream the
// hub does not source shows as misconfigured; sourced, the backlog is 0;
// with the link cut, windows published at the site make the backlog grow
// and the hub show as unreachable, the dashboard staying ready; restored,
// the backlog drains to 0. Each change is logged once, not on every check.
func TestUplinkWatch(t *testing.T) {
	ctx := t.Context()
	hub := startHub(t)
	proxy, err := devenv.StartLinkProxy("127.0.0.1:" + strconv.Itoa(hub.LeafPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	site := startSite(t, north, proxy.LeafURL(devenv.TestLeafUser, devenv.TestLeafPassword))
	e := newEnvAt(t, site.ClientURL()) // creates the site's ALERTS
	sc := bus.StreamConfig{Replicas: 1, DedupWindow: 2 * time.Minute, AggregatesMaxAge: time.Hour}
	if err := bus.Ensure(ctx, e.js, sc.Aggregates()); err != nil {
		t.Fatal(err)
	}
	// The hub sources AGGREGATES only; the site exports ALERTS too.
	hjs, hcfg := sourceAggregates(t, hub, sc)

	t.Setenv("EDGEFLOW_SITE_NAME", north)
	t.Setenv("EDGEFLOW_UPLINK_STREAMS", "AGGREGATES,ALERTS")
	e.start()
	// A watch of the same uplink checked by hand, for its log.
	var logs bytes.Buffer
	w, err := newUplinkWatch(e.nc, bus.UplinkConfig{Site: north, Streams: []string{bus.StreamAggregates, bus.StreamAlerts}, HubDomain: bus.HubDomain},
		slog.New(slog.NewJSONHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	checks := func(n int) {
		for range n {
			w.check(ctx)
		}
	}
	ready := func() {
		t.Helper()
		if st := e.get("/readyz", nil); st != 200 {
			t.Fatalf("/readyz %d with the uplink %s", st, e.uplink().State)
		}
	}
	const backlog = `edgeflow_dashboard_uplink_backlog{stream="AGGREGATES"}`
	publishWindows(t, e.js, 5)

	// Misconfigured: the hub answers, but not for ALERTS.
	var u uplinkJSON
	eventually(t, 10*time.Second, "uplink misconfigured, AGGREGATES caught up", func() bool {
		u = e.uplink()
		return u.State == "misconfigured" && len(u.Streams) == 2 && u.Streams[0].SiteSeq == 5 && u.Streams[0].Backlog == 0
	})
	if !u.Reachable || u.Site != north || u.HubDomain != bus.HubDomain || !strings.Contains(u.Error, "does not source ALERTS") ||
		u.Streams[0].Problem != "" || u.Streams[1].Name != bus.StreamAlerts || u.Streams[1].Problem == "" {
		t.Fatalf("misconfigured uplink: %+v", u)
	}
	ready()
	if m := scrape(t, e.url); m[`edgeflow_dashboard_uplink_check_failures_total{reason="not_sourced"}`] == "0" ||
		m[backlog] != "0" || m["edgeflow_dashboard_uplink_hub_reachable"] != "1" {
		t.Fatalf("misconfigured uplink metrics: %v", m)
	}
	checks(3)
	if n := logCount(&logs, "uplink cannot work"); n != 1 || !strings.Contains(logs.String(), "does not source ALERTS") {
		t.Fatalf("3 checks of a misconfigured uplink logged %d times: %s", n, logs.String())
	}

	// The hub sources ALERTS too: up, nothing behind.
	hcfg.Streams = []string{bus.StreamAggregates, bus.StreamAlerts}
	if err := bus.Ensure(ctx, hjs, hcfg.HubStreams(sc)...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "uplink up", func() bool {
		u = e.uplink()
		return u.State == "up" && u.Reachable && u.Error == "" && u.Streams[0].Backlog == 0 && u.Streams[0].HubSeq == 5 && u.Streams[1].Problem == ""
	})
	if m := scrape(t, e.url); m[backlog] != "0" || m[`edgeflow_dashboard_uplink_hub_sequence{stream="AGGREGATES"}`] != "5" ||
		m[`edgeflow_dashboard_uplink_site_sequence{stream="AGGREGATES"}`] != "5" || m["edgeflow_dashboard_uplink_hub_reachable"] != "1" {
		t.Fatalf("uplink up, metrics: %v", m)
	}
	checks(3)
	if n := logCount(&logs, "uplink to the hub is up"); n != 1 {
		t.Fatalf("3 checks of an uplink up logged it %d times: %s", n, logs.String())
	}

	// Cut: windows published at the site pile up.
	proxy.Cut()
	eventually(t, 10*time.Second, "hub sees the site leave", func() bool { return hub.Server.NumLeafNodes() == 0 })
	publishWindows(t, e.js, 50)
	eventually(t, 10*time.Second, "uplink unreachable with a backlog of 50", func() bool {
		u = e.uplink()
		return u.State == "unreachable" && u.Streams[0].Backlog == 50
	})
	if u.Reachable || !strings.Contains(u.Error, "unreachable") || u.Streams[0].SiteSeq != 55 || u.Streams[0].HubSeq != 5 {
		t.Fatalf("cut uplink: %+v", u)
	}
	t.Logf("link cut: %s", u.Error)
	ready()
	// The pipeline page's live frames carry it, as they carry the rest.
	if f := pipelineFrame(t, e.url, func(u *uplinkJSON) bool { return u.State == "unreachable" && u.Streams[0].Backlog == 50 }); f.Reachable {
		t.Fatalf("live frame: %+v", f)
	}
	eventually(t, 10*time.Second, "backlog metric 50", func() bool { return scrape(t, e.url)[backlog] == "50" })
	if m := scrape(t, e.url); m["edgeflow_dashboard_uplink_hub_reachable"] != "0" || m[`edgeflow_dashboard_uplink_check_failures_total{reason="unreachable"}`] == "0" {
		t.Fatalf("cut uplink metrics: %v", m)
	}
	checks(3)
	if n := logCount(&logs, "uplink to the hub is down"); n != 1 || !strings.Contains(logs.String(), "hub unreachable") {
		t.Fatalf("3 checks of a cut uplink logged it %d times: %s", n, logs.String())
	}

	// Restored: the hub takes the backlog (nats-server retries a failed
	// source after 10 s × its failures, docs/operations.md#hub).
	proxy.Restore()
	restored := time.Now()
	eventually(t, 3*time.Minute, "backlog drained", func() bool {
		u = e.uplink()
		return u.State == "up" && u.Reachable && u.Streams[0].Backlog == 0 && u.Streams[0].HubSeq == 55
	})
	t.Logf("the backlog of 50 drained %s after the link returned", time.Since(restored).Round(time.Millisecond))
	eventually(t, 10*time.Second, "backlog metric 0", func() bool {
		m := scrape(t, e.url)
		return m[backlog] == "0" && m["edgeflow_dashboard_uplink_hub_reachable"] == "1"
	})
	checks(3)
	if n := logCount(&logs, "uplink to the hub is up"); n != 2 {
		t.Fatalf("the uplink's return logged %d times (want once more): %s", n-1, logs.String())
	}
	if n := strings.Count(logs.String(), "\n"); n != 4 {
		t.Fatalf("%d log lines for 4 changes of state: %s", n, logs.String())
	}
}

// Without EDGEFLOW_SITE_NAME the pipeline view has no uplink part and no
// uplink metric is exported.
func TestNoUplinkWithoutSiteName(t *testing.T) {
	e := newEnv(t)
	e.start()
	var p map[string]any
	eventually(t, 10*time.Second, "pipeline view", func() bool { return e.get("/api/pipeline", &p) == 200 })
	if _, ok := p["uplink"]; ok {
		t.Fatalf("pipeline view without a site name: %v", p["uplink"])
	}
	for k := range scrape(t, e.url) {
		if strings.Contains(k, "uplink") {
			t.Fatalf("metric %s without a site name", k)
		}
	}
}

// An uplink configuration that cannot work refuses to start, naming the
// variable.
func TestUplinkConfigValidated(t *testing.T) {
	for variable, value := range map[string]string{
		"EDGEFLOW_SITE_NAME":         "green house",
		"EDGEFLOW_UPLINK_STREAMS":    "AGGREGATES,NOTIFICATIONS",
		"EDGEFLOW_UPLINK_HUB_DOMAIN": north,
	} {
		t.Run(variable, func(t *testing.T) {
			t.Setenv("EDGEFLOW_SITE_NAME", north)
			t.Setenv(variable, value)
			if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), variable) {
				t.Fatalf("%s=%q: %v", variable, value, err)
			}
		})
	}
	t.Setenv("EDGEFLOW_SITE_NAME", north)
	if _, err := LoadConfig(); err != nil {
		t.Fatalf("a site name alone: %v", err)
	}
}

// Under the shipped NATS permissions (manifests/base/nats/auth.conf) at the
// site, the dashboard's user can ask the hub what the uplink needs: the
// check passes and measures the backlog, rather than timing out on a
// denied request and calling the hub unreachable.
func TestUplinkUnderShippedPermissions(t *testing.T) {
	ctx := t.Context()
	for u, pw := range map[string]string{"ingest": "pw-ingest", "processor": "pw-processor", "notifier": "pw-notifier", "dashboard": "pw-dashboard"} {
		t.Setenv(strings.ToUpper(u)+"_PASSWORD", pw)
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	hub := startHub(t)
	site, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: t.TempDir(), ServerName: north, Domain: north,
		AuthConfig: filepath.Join(root, devenv.NATSAuthConfig),
		Leaf: &devenv.NATSLeaf{Remotes: []string{hub.LeafURL(devenv.TestLeafUser, devenv.TestLeafPassword)},
			ReconnectInterval: 200 * time.Millisecond, Deny: bus.SiteLocalSubjects}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Shutdown(); site.WaitForShutdown() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	connect := func(user string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		nc, js, err := bus.Connect(ctx, quiet, bus.Config{URL: site.ClientURL(), ConnectTimeout: 5 * time.Second,
			User: user, Password: "pw-" + user}, "uplink-test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc, js
	}
	// The processor creates and writes AGGREGATES, as in the pipeline.
	_, pjs := connect("processor")
	sc := bus.StreamConfig{Replicas: 1, DedupWindow: 2 * time.Minute, AggregatesMaxAge: time.Hour}
	if err := bus.Ensure(ctx, pjs, sc.Aggregates()); err != nil {
		t.Fatal(err)
	}
	publishWindows(t, pjs, 3)
	sourceAggregates(t, hub, sc)

	dnc, _ := connect("dashboard")
	w, err := newUplinkWatch(dnc, bus.UplinkConfig{Site: north, Streams: []string{bus.StreamAggregates}, HubDomain: bus.HubDomain},
		quiet, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var u UplinkHealth
	eventually(t, 30*time.Second, "the dashboard's user sees the hub hold the 3 windows", func() bool {
		w.check(ctx)
		u = w.snapshot()
		return u.State == uplinkUp && u.Streams[0].HubSeq == 3 && u.Streams[0].Backlog == 0
	})
	if !u.Reachable || u.Error != "" {
		t.Fatalf("uplink under the shipped permissions: %+v", u)
	}
}
