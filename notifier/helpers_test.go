package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/alert"
)

// mainEnv makes the test binary run the notifier's main instead of the
// tests, so a test can start the notifier as a real process and SIGKILL it.
const mainEnv = "EDGEFLOW_NOTIFIER_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// env is one test's NATS server with AGGREGATES, a rules file and a
// webhook receiver.
type env struct {
	t        *testing.T
	dir      string
	natsURL  string
	js       jetstream.JetStream
	rules    string
	hook     *receiver
	hookEnv  string // the environment variable that holds the webhook's URL
	streams  bus.StreamConfig
	started  time.Time
	replicas []*replica
}

var envSeq atomic.Int64

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), started: time.Now()}
	ns, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: filepath.Join(e.dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	e.natsURL = ns.ClientURL()
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if err := envconfig.Process("edgeflow_notifier_test_unset", &e.streams); err != nil {
		t.Fatal(err)
	}
	if err := bus.Ensure(t.Context(), e.js, e.streams.Aggregates()); err != nil {
		t.Fatal(err)
	}
	e.rules = filepath.Join(e.dir, "rules.yaml")
	e.hook = newReceiver(t)
	// Each test its own variable: tests run in parallel in one process.
	e.hookEnv = fmt.Sprintf("EDGEFLOW_TEST_WEBHOOK_%d", envSeq.Add(1))
	os.Setenv(e.hookEnv, e.hook.srv.URL+"/hook/secret")
	t.Cleanup(func() { os.Unsetenv(e.hookEnv) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("elapsed %s; webhook got %d notifications, %d attempts", time.Since(e.started).Round(time.Millisecond),
				len(e.hook.delivered()), e.hook.attempts.Load())
		}
	})
	return e
}

// writeRules writes the rules file, with {hook} standing for the webhook
// channel's environment variable. It is renamed into place, as a ConfigMap
// update is.
func (e *env) writeRules(content string) {
	e.t.Helper()
	content = strings.ReplaceAll(content, "{hook}", e.hookEnv)
	tmp := e.rules + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.rules); err != nil {
		e.t.Fatal(err)
	}
}

// config is a replica's configuration with short timings.
func (e *env) config(id string) Config {
	e.t.Helper()
	var c Config
	if err := envconfig.Process("edgeflow_notifier_test_unset", &c); err != nil {
		e.t.Fatal(err)
	}
	port, err := devenv.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	c.URL, c.ID, c.Rules = e.natsURL, id, e.rules
	c.HTTPAddr = "127.0.0.1:" + strconv.Itoa(port)
	c.RulesPoll, c.Tick, c.Failover, c.DrainTimeout = 100*time.Millisecond, 200*time.Millisecond, 2*time.Second, 5*time.Second
	if err := c.Validate(); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// replica is a notifier running in the test process.
type replica struct {
	cfg     Config
	base    string
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

func (e *env) start(id string) *replica {
	e.t.Helper()
	cfg := e.config(id)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cfg: cfg, base: "http://" + cfg.HTTPAddr, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, cfg) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-r.done:
			e.t.Fatalf("replica %s exited while starting: %v", id, err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("replica %s not ready: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.replicas = append(e.replicas, r)
	return r
}

// stop is SIGTERM: the replica drains and returns.
func (r *replica) stop(t *testing.T) {
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("replica %s: %v", r.cfg.ID, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("replica %s did not drain within 15s", r.cfg.ID)
		}
	})
}

// metric reads one sample of the replica's /metrics (0 if absent).
func (r *replica) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// window publishes a closed window of one device, as a processor does for
// a device that is sending: its newest reading arrived now.
func (e *env) window(site, device, win string, start time.Time, metrics map[string]float64) {
	e.t.Helper()
	e.publishWindow(site, device, win, start, time.Now(), metrics, true)
}

// heardWindow publishes a closed window of a device whose newest reading
// arrived at received (ingest's clock), whatever its own clock says.
func (e *env) heardWindow(site, device, win string, start, received time.Time, metrics map[string]float64) {
	e.t.Helper()
	e.publishWindow(site, device, win, start, received, metrics, true)
}

// publishWindow publishes a window, without its Nats-Msg-Id when dedup is
// false: the notifier then sees it again, as after a redelivery.
func (e *env) publishWindow(site, device, win string, start, received time.Time, metrics map[string]float64, dedup bool) {
	e.t.Helper()
	d, err := time.ParseDuration(win)
	if err != nil {
		e.t.Fatal(err)
	}
	a := reading.Aggregate{Site: site, Device: device, Window: win, Start: start.UnixMilli(), End: start.Add(d).UnixMilli(),
		Received: received.UnixMilli(), Metrics: map[string]reading.Stats{}}
	for m, v := range metrics {
		a.Metrics[m] = reading.Stats{Count: 10, Sum: 10 * v, Min: v, Max: v, Mean: v, First: v, Last: v}
	}
	data, err := json.Marshal(a)
	if err != nil {
		e.t.Fatal(err)
	}
	msg := nats.NewMsg(reading.AggregateSubject(win, site, device))
	msg.Data = data
	if dedup {
		msg.Header.Set(jetstream.MsgIDHeader, a.MsgID())
	}
	if _, err := e.js.PublishMsg(e.t.Context(), msg); err != nil {
		e.t.Fatal(err)
	}
}

// events reads every message on ALERTS.
func (e *env) events() []reading.Alert {
	e.t.Helper()
	cons, err := e.js.OrderedConsumer(e.t.Context(), bus.StreamAlerts, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []reading.Alert
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			a, err := reading.UnmarshalAlert(m.Data())
			if err != nil {
				e.t.Fatalf("ALERTS message %s: %v", m.Data(), err)
			}
			out = append(out, a)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

// state reads one alert's record from ALERT_STATE.
func (e *env) state(rule, site, device string) (alert.Record, bool) {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.t.Context(), bus.BucketAlerts)
	if err != nil {
		return alert.Record{}, false
	}
	entry, err := kv.Get(e.t.Context(), alert.Key(rule, site, device))
	if err != nil {
		return alert.Record{}, false
	}
	var rec alert.Record
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		e.t.Fatal(err)
	}
	return rec, true
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver is a webhook endpoint on loopback that records notifications.
type receiver struct {
	srv      *httptest.Server
	attempts atomic.Int64
	failing  atomic.Int64 // answer 500 to this many more attempts
	delay    atomic.Int64 // nanoseconds to wait before answering
	mu       sync.Mutex
	got      []alert.Notification
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.attempts.Add(1)
		time.Sleep(time.Duration(r.delay.Load()))
		if r.failing.Add(-1) >= 0 {
			http.Error(w, "receiver down", http.StatusInternalServerError)
			return
		}
		var n alert.Notification
		if err := json.Unmarshal(body, &n); err != nil || req.Header.Get("Edgeflow-Notification-Id") != n.ID {
			http.Error(w, "bad notification", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) delivered() []alert.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alert.Notification(nil), r.got...)
}

// waitFor waits until n notifications were delivered and returns them.
func (r *receiver) waitFor(t *testing.T, n int, within time.Duration) []alert.Notification {
	t.Helper()
	eventually(t, within, fmt.Sprintf("want %d notifications, got %d", n, len(r.delivered())), func() bool {
		return len(r.delivered()) >= n
	})
	return r.delivered()
}

// exactlyOnce checks that no notification was delivered twice.
func exactlyOnce(t *testing.T, got []alert.Notification) {
	t.Helper()
	seen := map[string]int{}
	for _, n := range got {
		seen[n.ID]++
		if seen[n.ID] == 2 {
			t.Errorf("notification %s (%s %s/%s %s) delivered twice", n.ID, n.Rule, n.Site, n.Device, n.State)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
