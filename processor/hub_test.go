package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/service"
)

// The hub set-up, as internal/bus's uplink tests start it: a hub nats-server
// (JetStream domain hub, a leaf node listener with credentials) and sites
// whose servers are its leaf nodes, each its own domain.
const (
	north = "greenhouse-north"
	south = "greenhouse-south"
)

func hubTestStreams() bus.StreamConfig {
	return bus.StreamConfig{Replicas: 1, Partitions: 1, TelemetryMaxAge: time.Hour, TelemetryMaxBytes: 64 << 20,
		DedupWindow: 2 * time.Minute, AggregatesMaxAge: time.Hour, DeadLetterMaxAge: time.Hour, DeadLetterMaxBytes: 64 << 20}
}

// startHubNATS starts the hub's server (devenv.StartNATSHub), stopped at
// cleanup.
func startHubNATS(t *testing.T) *devenv.NATSHub {
	t.Helper()
	h, err := devenv.StartNATSHub(filepath.Join(t.TempDir(), "hub"), bus.HubDomain, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// startSiteNATS starts a site's server, domain = name, a leaf node of the
// hub that keeps the site's own subjects to itself, with its AGGREGATES
// stream, and connects to it.
func startSiteNATS(t *testing.T, name, leafURL string) jetstream.JetStream {
	t.Helper()
	s, err := devenv.StartNATSSite(filepath.Join(t.TempDir(), name), name, leafURL, bus.SiteLocalSubjects, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	_, js := connectJS(t, s.ClientURL())
	if err := bus.Ensure(t.Context(), js, hubTestStreams().Aggregates()); err != nil {
		t.Fatal(err)
	}
	return js
}

func connectJS(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// hubAndSites starts a hub and the named sites, linked.
func hubAndSites(t *testing.T, names ...string) (hub *devenv.NATSHub, hubURL string, sites []jetstream.JetStream) {
	t.Helper()
	hub = startHubNATS(t)
	for _, name := range names {
		sites = append(sites, startSiteNATS(t, name, hub.LeafURL(devenv.TestLeafUser, devenv.TestLeafPassword)))
	}
	waitFor(t, 10*time.Second, "the sites linked", func() bool { return hub.Server.NumLeafNodes() == len(names) })
	return hub, hub.ClientURL(), sites
}

// siteWindow is window k of device lab/t{k%devices} at a site, as the site's
// processor publishes it: every site uses the same device names and times,
// only the counts differ (count per window at a site: its tag).
func siteWindow(k, devices int, count int64) reading.Aggregate {
	start := int64(1732560000000) + int64(k/devices)*10000
	return reading.Aggregate{Site: "lab", Device: fmt.Sprintf("t%d", k%devices), Window: "10s", Start: start, End: start + 10000,
		Metrics: map[string]reading.Stats{
			"t": {Count: count, Sum: 21 * float64(count), Min: 21, Max: 21, Mean: 21, First: 21, Last: 21},
			"h": {Count: count, Sum: 48 * float64(count), Min: 48, Max: 48, Mean: 48, First: 48, Last: 48},
		}, Received: start + 10000}
}

// publishWindows publishes windows [from, to) at a site with their
// Nats-Msg-Id, as processor/flush.go does.
func publishWindows(t *testing.T, js jetstream.JetStream, from, to int, count int64) {
	t.Helper()
	for k := from; k < to; k++ {
		publishWindow(t, js, siteWindow(k, 10, count))
	}
}

func publishWindow(t *testing.T, js jetstream.JetStream, a reading.Aggregate) {
	t.Helper()
	if err := sendWindow(js, a); err != nil {
		t.Fatal(err)
	}
}

func sendWindow(js jetstream.JetStream, a reading.Aggregate) error {
	m := nats.NewMsg(reading.AggregateSubject(a.Window, a.Site, a.Device))
	var err error
	if m.Data, err = json.Marshal(a); err != nil {
		return err
	}
	m.Header.Set(jetstream.MsgIDHeader, a.MsgID())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.PublishMsg(ctx, m)
	return err
}

func hubTestConfig(influxURL string, sites ...string) Config {
	return Config{
		StreamConfig:  hubTestStreams(),
		HubConfig:     bus.HubConfig{Sites: sites, Streams: []string{bus.StreamAggregates}, MaxAge: time.Hour, MaxBytes: 64 << 20},
		Influx:        InfluxConfig{Config: influx.Config{URL: influxURL, Org: "edgeflow", Bucket: "w", Timeout: 5 * time.Second}},
		ID:            "hub-0",
		FlushInterval: 100 * time.Millisecond,
		BatchSize:     1000,
		FetchSize:     50,
		DrainTimeout:  10 * time.Second,
	}
}

// hubRun is the hub's processor running as main runs it.
type hubRun struct {
	metrics *Metrics
	reg     *prometheus.Registry
	health  *service.Health
	cancel  context.CancelFunc
	done    chan error
}

func startHubWriter(t *testing.T, hubURL string, cfg Config) *hubRun {
	t.Helper()
	nc, js := connectJS(t, hubURL)
	in := NewInflux(cfg.Influx)
	t.Cleanup(in.Close)
	r := &hubRun{reg: prometheus.NewRegistry(), health: service.NewHealth(), done: make(chan error, 1)}
	r.health.AddCheck("nats", bus.Ready(nc)) // as main adds them
	r.health.AddCheck("influxdb", in.Ready)
	r.metrics = NewMetrics(r.reg)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { r.done <- runHub(ctx, cfg, log, js, in, r.reg, r.metrics, r.health) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// stop signals the writer as SIGTERM does and waits for it.
func (r *hubRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("hub writer stopped with %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("hub writer did not stop within 30s")
	}
}

func (r *hubRun) out() int64 { return int64(testutil.ToFloat64(r.metrics.Out)) }

// hubCount runs a query of one number on the hub's database.
func hubCount(t *testing.T, influxURL, q string) int64 { return influxQuery(t, influxURL, q) }

// checkSiteWindows checks that the hub's InfluxDB has windows [0, n) of site
// exactly: n points per metric under edge_site = site, each window's count
// the site's, and a device's series its own.
func checkSiteWindows(t *testing.T, influxURL, site string, n int, count int64) {
	t.Helper()
	for _, metric := range []string{"t", "h"} {
		where := fmt.Sprintf(` FROM telemetry_10s WHERE edge_site = '%s' AND metric = '%s'`, site, metric)
		if got := hubCount(t, influxURL, `SELECT count("count")`+where); got != int64(n) {
			t.Errorf("site %s metric %s: %d windows in InfluxDB, want %d", site, metric, got, n)
		}
		if got := hubCount(t, influxURL, `SELECT sum("count")`+where); got != int64(n)*count {
			t.Errorf("site %s metric %s: windows count %d readings, want %d", site, metric, got, int64(n)*count)
		}
		t3 := n / 10 // windows k of device t{k%10}
		if n%10 > 3 {
			t3++
		}
		if got := hubCount(t, influxURL, `SELECT count("count")`+where+` AND site = 'lab' AND device = 't3'`); got != int64(t3) {
			t.Errorf("site %s device lab/t3 metric %s: %d windows, want %d", site, metric, got, t3)
		}
	}
}

// Two sites with the same device names send their windows to the hub: the
// hub's InfluxDB has every window of both, each once, told apart by
// edge_site; what does not decode is dead-lettered at the hub and the rest
// flows on.
func TestHubWritesEverySitesWindowsOnce(t *testing.T) {
	in := startInflux(t)
	_, hubURL, sites := hubAndSites(t, north, south)
	const before, after = 400, 200
	publishWindows(t, sites[0], 0, before, 1)
	publishWindows(t, sites[1], 0, before, 2)
	bad := nats.NewMsg("aggregates.10s.lab.t1")
	bad.Data = []byte(`{"site":"lab","device":"t1","window":"10 s"`)
	if _, err := sites[0].PublishMsg(t.Context(), bad); err != nil {
		t.Fatal(err)
	}

	liveNC, _ := connectJS(t, hubURL)
	live, err := liveNC.SubscribeSync(bus.LiveSubjects)
	if err != nil {
		t.Fatal(err)
	}
	r := startHubWriter(t, hubURL, hubTestConfig(in.URL, north, south))
	publishWindows(t, sites[0], before, before+after, 1)
	publishWindows(t, sites[1], before, before+after, 2)
	total := int64(2 * (before + after))
	waitFor(t, 60*time.Second, "the hub writes every window", func() bool { return r.out() >= total })
	checkHubLive(t, live, siteWindow(before+after-1, 10, 1).End)
	time.Sleep(500 * time.Millisecond) // a window written twice would count now

	checkSiteWindows(t, in.URL, north, before+after, 1)
	checkSiteWindows(t, in.URL, south, before+after, 2)
	if got := hubCount(t, in.URL, `SELECT count("count") FROM telemetry_10s WHERE metric = 't'`); got != total {
		t.Errorf("%d windows in the hub's InfluxDB, want %d: the sites' windows of lab/t* overwrote each other", got, total)
	}
	if got, in := r.out(), int64(testutil.ToFloat64(r.metrics.In)); got != total || in != total+1 {
		t.Errorf("the hub wrote %d windows of %d received, want %d of %d (each once, and the one dead-lettered)", got, in, total, total+1)
	}
	if got := testutil.ToFloat64(r.metrics.Written); got != float64(2*total) {
		t.Errorf("%v points written, want %d", got, 2*total)
	}
	if got := testutil.ToFloat64(r.metrics.DeadLettered.WithLabelValues("invalid_aggregate")); got != 1 {
		t.Errorf("%v windows dead-lettered, want the one that does not decode", got)
	}
	_, hjs := connectJS(t, hubURL)
	dead := streamMsgs(t, hjs, bus.StreamDeadLetter)
	if len(dead) != 1 || dead[0].Headers().Get(bus.HeaderReason) != "invalid_aggregate" ||
		dead[0].Headers().Get(bus.HeaderSource) != bus.HubSubjectPrefix(north)+"aggregates.10s.lab.t1" {
		t.Fatalf("hub's DEADLETTER holds %d records, want the window that does not decode, from north", len(dead))
	}
	waitFor(t, 5*time.Second, "the backlog empties", func() bool {
		return testutil.ToFloat64(r.metrics.Backlog) == 0
	})
	if failing := r.health.Ready(t.Context()); len(failing) != 0 {
		t.Fatalf("the hub is not ready: %v", failing)
	}
	// Each consumer acknowledged every window: nothing comes back.
	for _, site := range []string{north, south} {
		stream := bus.HubStreamName(site, bus.StreamAggregates)
		c, err := hjs.Consumer(t.Context(), stream, HubConsumerName(stream))
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
			t.Errorf("%s: consumer pending %d, unacknowledged %d, redelivered %d: want all written once",
				site, info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
	}
}

// The hub's writer stopped (SIGTERM) while both sites publish, and started
// again: the durable consumers resume where the first writer acknowledged,
// so between them the two writers write every window exactly once.
func TestHubWriterResumesAfterRestart(t *testing.T) {
	in := startInflux(t)
	_, hubURL, sites := hubAndSites(t, north, south)
	cfg := hubTestConfig(in.URL, north, south)
	cfg.FetchSize = 20

	var wg sync.WaitGroup
	quit := make(chan struct{})
	published := make([]int, len(sites))
	for i, js := range sites {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-quit:
					published[i] = k
					return
				default:
				}
				if err := sendWindow(js, siteWindow(k, 10, int64(i+1))); err != nil {
					t.Errorf("site %d: %v", i, err)
					published[i] = k
					return
				}
				if k%10 == 9 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}

	first := startHubWriter(t, hubURL, cfg)
	waitFor(t, 30*time.Second, "the first writer writes", func() bool { return first.out() >= 200 })
	first.stop(t)
	firstOut := first.out()
	time.Sleep(time.Second) // the sites publish on while no writer runs
	second := startHubWriter(t, hubURL, cfg)
	time.Sleep(time.Second)
	close(quit)
	wg.Wait()
	total := int64(published[0] + published[1])
	if firstOut >= total {
		t.Fatalf("the first writer wrote all %d windows before it stopped: nothing left to resume", total)
	}
	waitFor(t, 60*time.Second, "the second writer writes the rest", func() bool { return firstOut+second.out() >= total })
	time.Sleep(500 * time.Millisecond) // a window written twice would count now

	for i, site := range []string{north, south} {
		checkSiteWindows(t, in.URL, site, published[i], int64(i+1))
	}
	if got := firstOut + second.out(); got != total {
		t.Errorf("the writers wrote %d + %d windows, want %d in all: the second did not resume where the first acknowledged",
			firstOut, second.out(), total)
	}
	if got := int64(testutil.ToFloat64(second.metrics.In)); got != total-firstOut {
		t.Errorf("the second writer received %d windows, want the %d the first did not acknowledge", got, total-firstOut)
	}
	t.Logf("published %d and %d windows; the first writer wrote %d before it stopped, the second the other %d",
		published[0], published[1], firstOut, second.out())
}

// InfluxDB down under the hub: readiness names the site and why, the
// windows in hand stay unacknowledged and counted in the backlog, and once
// InfluxDB is back every window is written, each once.
func TestHubInfluxOutageStallsTheSite(t *testing.T) {
	in := startInflux(t)
	_, hubURL, sites := hubAndSites(t, north)
	r := startHubWriter(t, hubURL, hubTestConfig(in.URL, north))
	publishWindows(t, sites[0], 0, 100, 1)
	waitFor(t, 30*time.Second, "the first windows written", func() bool { return r.out() == 100 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	publishWindows(t, sites[0], 100, 200, 1)
	var failing map[string]string
	waitFor(t, 30*time.Second, "readiness names the stalled site", func() bool {
		failing = r.health.Ready(ctx)
		return strings.Contains(failing["hub"], "site "+north+": influx_write failing")
	})
	t.Logf("InfluxDB down: not ready: %v", failing)
	if failing["influxdb"] == "" {
		t.Errorf("readiness does not say InfluxDB is down: %v", failing)
	}
	if got := testutil.ToFloat64(r.metrics.Backlog); got == 0 {
		t.Error("backlog 0 while the hub cannot write")
	}
	if got := r.out(); got != 100 {
		t.Errorf("%d windows recorded written while InfluxDB was down, want 100", got)
	}

	if err := in.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the rest written once InfluxDB is back", func() bool { return r.out() >= 200 })
	time.Sleep(500 * time.Millisecond)
	checkSiteWindows(t, in.URL, north, 200, 1)
	if got := r.out(); got != 200 {
		t.Errorf("%d windows written, want 200", got)
	}
	if got := testutil.ToFloat64(r.metrics.Retries.WithLabelValues("influx_write")); got == 0 {
		t.Error("no InfluxDB write retried")
	}
	waitFor(t, 10*time.Second, "ready again", func() bool { return len(r.health.Ready(ctx)) == 0 })
}

// The hub's NATS restarted under the writer: while it is away readiness
// says the site's windows cannot be fetched; once it is back the durable
// consumer resumes, and every window is written once.
func TestHubNATSRestartResumes(t *testing.T) {
	in := startInflux(t)
	hub, hubURL, sites := hubAndSites(t, north)
	r := startHubWriter(t, hubURL, hubTestConfig(in.URL, north))
	publishWindows(t, sites[0], 0, 100, 1)
	waitFor(t, 30*time.Second, "the first windows written", func() bool { return r.out() == 100 })

	hub.Stop()
	var failing map[string]string
	waitFor(t, 30*time.Second, "readiness says the hub's JetStream cannot be read", func() bool {
		failing = r.health.Ready(t.Context())
		return strings.Contains(failing["hub"], "site "+north+": fetch failing") && failing["nats"] != ""
	})
	t.Logf("hub's NATS down: not ready: %v", failing)
	publishWindows(t, sites[0], 100, 200, 1) // the site runs on meanwhile

	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the site relinks", func() bool { return hub.Server.NumLeafNodes() == 1 })
	restarted := time.Now()
	_, hjs := connectJS(t, hubURL)
	waitFor(t, 3*time.Minute, "the hub sources the rest", func() bool {
		s, err := hjs.Stream(t.Context(), bus.HubStreamName(north, bus.StreamAggregates))
		return err == nil && s.CachedInfo().State.Msgs == 200
	})
	sourced := time.Since(restarted)
	waitFor(t, 30*time.Second, "the rest written once the hub is back", func() bool { return r.out() >= 200 })
	t.Logf("hub restarted: it sourced the site's windows after %s, the writer had them all %s after the restart",
		sourced.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	checkSiteWindows(t, in.URL, north, 200, 1)
	if got := r.out(); got != 200 {
		t.Errorf("%d windows written, want 200", got)
	}
	waitFor(t, 10*time.Second, "ready again", func() bool { return len(r.health.Ready(t.Context())) == 0 })
}

// A writer that dies with windows in hand, written to InfluxDB or not but
// unacknowledged: JetStream delivers them again after the ack wait, and the
// next writer writes them, so InfluxDB holds each window once.
func TestHubWindowsOfADeadWriterAreWrittenAgain(t *testing.T) {
	in := startInflux(t)
	_, hubURL, sites := hubAndSites(t, north)
	cfg := hubTestConfig(in.URL, north)
	cfg.hubAckWait = 2 * time.Second
	cfg.DrainTimeout = 100 * time.Millisecond
	first := startHubWriter(t, hubURL, cfg)
	publishWindows(t, sites[0], 0, 100, 1)
	waitFor(t, 30*time.Second, "the first windows written", func() bool { return first.out() == 100 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	publishWindows(t, sites[0], 100, 200, 1)
	waitFor(t, 30*time.Second, "the writer holds windows it cannot write", func() bool {
		return strings.Contains(first.health.Ready(ctx)["hub"], "influx_write")
	})
	first.cancel()
	if err := <-first.done; err == nil || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("a writer cut off with windows in hand ended with %v, want it to say they were not acknowledged", err)
	}
	first.done <- nil // for the cleanup
	if got := first.out(); got != 100 {
		t.Fatalf("the dead writer recorded %d windows written, want the 100 before InfluxDB stopped", got)
	}
	if err := in.Restart(ctx); err != nil {
		t.Fatal(err)
	}

	second := startHubWriter(t, hubURL, cfg)
	waitFor(t, 60*time.Second, "the next writer writes the rest", func() bool { return first.out()+second.out() >= 200 })
	time.Sleep(500 * time.Millisecond)
	checkSiteWindows(t, in.URL, north, 200, 1)
	// The second writer wrote the dead one's windows in hand too: delivered
	// again, since they were never acknowledged.
	if got := first.out() + second.out(); got != 200 {
		t.Errorf("the writers wrote %d + %d windows, want 200 in all", first.out(), second.out())
	}
	_, hjs := connectJS(t, hubURL)
	stream := bus.HubStreamName(north, bus.StreamAggregates)
	c, err := hjs.Consumer(ctx, stream, HubConsumerName(stream))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer pending %d, unacknowledged %d: want every window written", info.NumPending, info.NumAckPending)
	}
}

// checkHubLive reads the hub's live feed so far: each site's on its own
// subject, every device's newest value the last of its newest window,
// dated at that window's end.
func checkHubLive(t *testing.T, sub *nats.Subscription, newestEnd int64) {
	t.Helper()
	newest := map[string]reading.Reading{} // subject device -> newest
	for {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			break
		}
		reading.EachInBatch(m.Data, func(data []byte) bool {
			r, err := reading.Decode(data)
			if err != nil {
				t.Fatalf("live reading %q on %s: %v", data, m.Subject, err)
			}
			k := m.Subject + " " + r.Site + "/" + r.Device
			if r.TS >= newest[k].TS {
				newest[k] = r
			}
			return true
		})
	}
	for _, site := range []string{north, south} {
		for d := range 10 {
			k := bus.LiveSubject("hub."+site) + " lab/t" + strconv.Itoa(d)
			r, ok := newest[k]
			if !ok || r.TS != newestEnd || r.Metrics["t"] != 21 || r.Metrics["h"] != 48 {
				t.Errorf("hub live feed %s: %+v (seen %v); want t=21 h=48 at %d", k, r, ok, newestEnd)
			}
		}
	}
	if len(newest) != 20 {
		t.Errorf("hub live feed: %d site devices, want 20", len(newest))
	}
}
