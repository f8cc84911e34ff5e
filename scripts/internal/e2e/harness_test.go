package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/scripts/internal/launcher"
)

// Binaries built once for the whole package: the services with -race, so a
// data race in a real run fails the test.
var bins struct {
	dir                        string
	ingest, processor, loadgen string
	dashboard                  string
	notifier                   string
	devstack                   string // task up, which runs the services beside it
	err                        error
}

// shared is one InfluxDB for the tests that do not stop it; each test gets
// its own database.
var shared struct {
	influx *devenv.Process
	err    error
}

var dbSeq atomic.Int64

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "edgeflow-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bins.dir = dir
		bins.err = build(dir)
		if bins.err == nil {
			shared.influx, shared.err = devenv.StartInfluxDB(context.Background(),
				devenv.InfluxOptions{Dir: filepath.Join(dir, "influxdb")})
			if shared.influx != nil {
				defer shared.influx.Stop(context.Background())
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func build(dir string) error {
	root, err := devenv.RepoRoot()
	if err != nil {
		return err
	}
	for _, b := range []struct {
		pkg  string
		dst  *string
		race bool
	}{{"./ingest", &bins.ingest, true}, {"./processor", &bins.processor, true}, {"./scripts/loadgen", &bins.loadgen, false},
		{"./dashboard", &bins.dashboard, true}, {"./notifier", &bins.notifier, true}, {"./scripts/devstack", &bins.devstack, false}} {
		out := filepath.Join(dir, filepath.Base(b.pkg))
		args := []string{"build", "-o", out}
		if b.race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, o)
		}
		*b.dst = out
	}
	return nil
}

// pipeline is one test's running system.
type pipeline struct {
	t          *testing.T
	dir        string
	l          *launcher.Launcher
	nats       *server.Server
	natsURL    string
	mqtt       *devenv.Process
	mqttURL    string
	influxURL  string
	influx     *devenv.Process // set when the test owns its InfluxDB
	db         string
	ingests    []*devenv.Process
	processors map[string]*devenv.Process
	nc         *nats.Conn
	js         jetstream.JetStream
}

type options struct {
	ownInflux bool // a private InfluxDB the test may stop
	// security runs the shipped security mode (newSecurePipeline).
	security *launcher.Security
}

// newLauncher is the tests' launcher: NATS on a fixed free port (so a test
// can restart it on the same URL), Mosquitto, this test's database, and
// short windows and timings, so a test sees windows close within seconds.
func (p *pipeline) newLauncher(opt options) *launcher.Launcher {
	p.t.Helper()
	ports, err := devenv.FreePorts(2)
	if err != nil {
		p.t.Fatal(err)
	}
	l := &launcher.Launcher{
		Dir: filepath.Join(p.dir, "logs"),
		Bins: map[string]string{launcher.Ingest: bins.ingest, launcher.Processor: bins.processor,
			launcher.Notifier: bins.notifier, launcher.Dashboard: bins.dashboard},
		NATS:      &devenv.NATSOptions{Port: ports[0], StoreDir: filepath.Join(p.dir, "nats")},
		Mosquitto: &devenv.MosquittoOptions{Dir: filepath.Join(p.dir, "mosquitto"), Port: ports[1]},
		Bucket:    p.db,
		LogLevel:  "info",
		// The dashboard's pipeline page reads the ingests and processors.
		Scrape: []string{launcher.Ingest, launcher.Processor},
		Overrides: map[string][]string{
			launcher.Processor: {
				"EDGEFLOW_PROCESSOR_WINDOWS=2s,10s",
				"EDGEFLOW_PROCESSOR_LATENESS=2s",
				"EDGEFLOW_PROCESSOR_IDLE_GRACE=1s",
				"EDGEFLOW_PROCESSOR_FLUSH_INTERVAL=300ms",
				"EDGEFLOW_PROCESSOR_PURGE_INTERVAL=1s",
				"EDGEFLOW_PROCESSOR_LEASE_TTL=3s",
			},
			launcher.Dashboard: {
				"EDGEFLOW_DASHBOARD_WINDOWS=2s,10s",
				"EDGEFLOW_DASHBOARD_SCRAPE_INTERVAL=1s",
			},
			launcher.Notifier: {
				"EDGEFLOW_NOTIFIER_TICK=200ms",
				"EDGEFLOW_NOTIFIER_RULES_POLL=200ms",
				"EDGEFLOW_NOTIFIER_FAILOVER=2s",
			},
		},
		Security:     opt.security,
		ReadyTimeout: 60 * time.Second,
	}
	if opt.ownInflux {
		l.Influx = &devenv.InfluxOptions{Dir: filepath.Join(p.dir, "influxdb")}
	} else {
		if shared.err != nil {
			p.t.Fatalf("shared influxdb: %v", shared.err)
		}
		l.InfluxURL = shared.influx.URL
	}
	return l
}

// newPipeline starts NATS, Mosquitto and (unless shared) InfluxDB. The
// services are started by the test with startIngest and startProcessor.
func newPipeline(t *testing.T, opt options) *pipeline {
	t.Helper()
	requireServers(t)
	p := startServers(t, opt)
	var err error
	p.nc, err = nats.Connect(p.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.nc.Close)
	p.js, err = jetstream.New(p.nc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startServers starts the launcher's servers; they stop at cleanup, after
// the services (whose cleanups run first).
func startServers(t *testing.T, opt options) *pipeline {
	t.Helper()
	p := &pipeline{t: t, dir: t.TempDir(), processors: map[string]*devenv.Process{}}
	p.db = "e2e" + strconv.FormatInt(dbSeq.Add(1), 10)
	p.l = p.newLauncher(opt)
	t.Cleanup(func() { _ = p.l.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.l.StartServers(ctx); err != nil {
		t.Fatal(err)
	}
	p.nats, p.natsURL = p.l.NATSServer(), p.l.NATSURL
	p.mqtt, p.mqttURL = p.l.MQTT(), p.l.MQTTURL
	p.influx, p.influxURL = p.l.InfluxDB(), p.l.InfluxURL
	return p
}

// startNATS starts NATS again (after the test shut it down) on the same
// port and store.
func (p *pipeline) startNATS() {
	p.t.Helper()
	if err := p.l.RestartNATS(); err != nil {
		p.t.Fatal(err)
	}
	p.nats = p.l.NATSServer()
}

func (p *pipeline) httpAddr() string {
	port, err := devenv.FreePort()
	if err != nil {
		p.t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// service starts one of our binaries and stops it (SIGTERM) at cleanup.
func (p *pipeline) service(s launcher.Service) *devenv.Process {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc, err := p.l.Start(ctx, s)
	if err != nil {
		p.t.Fatal(err)
	}
	name := proc.Name
	p.t.Cleanup(func() {
		if p.t.Failed() {
			// A goroutine dump in the log shows where a stuck service waits.
			_ = syscall.Kill(proc.Pid(), syscall.SIGQUIT)
			time.Sleep(500 * time.Millisecond)
		}
		_ = proc.Stop(context.Background())
		if p.t.Failed() {
			if log, err := proc.Log(); err == nil {
				p.t.Logf("--- %s log (tail; whole log in test-artifacts/) ---\n%s", name, tail(log, 3000))
				saveArtifact(p.t, name+".log", log)
			}
		}
	})
	return proc
}

func (p *pipeline) startIngest(name string, env ...string) *devenv.Process {
	proc := p.service(launcher.Service{Kind: launcher.Ingest, Name: name, Env: env})
	p.ingests = append(p.ingests, proc)
	return proc
}

// startProcessor runs a replica with the launcher's short windows and
// timings.
func (p *pipeline) startProcessor(id string, env ...string) *devenv.Process {
	proc := p.service(launcher.Service{Kind: launcher.Processor, Name: "processor-" + id, ID: id, Env: env})
	p.processors[id] = proc
	return proc
}

// startDashboard runs the dashboard on this pipeline's database and
// windows, with the running ingest and processors on its pipeline page.
func (p *pipeline) startDashboard(env ...string) *devenv.Process {
	return p.service(launcher.Service{Kind: launcher.Dashboard, Env: env})
}

// startNotifier runs the notifier with the rules file at rules and short
// timings; env adds variables (such as the secrets the rules name).
func (p *pipeline) startNotifier(rules string, env ...string) *devenv.Process {
	return p.service(launcher.Service{Kind: launcher.Notifier, ID: "e2e",
		Env: append([]string{"EDGEFLOW_RULES=" + rules}, env...)})
}

// loadReport is the part of the load generator's report the tests read.
type loadReport struct {
	Totals struct {
		Attempted      int64 `json:"attempted"`
		Acked          int64 `json:"acked"`
		Failed         int64 `json:"failed"`
		DuplicatesSent int64 `json:"duplicates_sent"`
	} `json:"totals"`
	AchievedRate float64 `json:"achieved_rate"`
}

// loadgen runs the load generator to completion against the broker.
func (p *pipeline) loadgen(ctx context.Context, args ...string) loadReport {
	p.t.Helper()
	report := filepath.Join(p.t.TempDir(), "report.json")
	cmd := exec.CommandContext(ctx, bins.loadgen, append([]string{"-broker", p.mqttURL, "-report", report,
		"-client-prefix", "lg-" + p.db}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("loadgen %v: %v\n%s", args, err, tail(string(out), 4000))
	}
	data, err := os.ReadFile(report)
	if err != nil {
		p.t.Fatal(err)
	}
	var r loadReport
	if err := json.Unmarshal(data, &r); err != nil {
		p.t.Fatalf("loadgen report: %v", err)
	}
	p.t.Logf("loadgen: attempted %d acked %d failed %d duplicates %d at %.0f msgs/s",
		r.Totals.Attempted, r.Totals.Acked, r.Totals.Failed, r.Totals.DuplicatesSent, r.AchievedRate)
	return r
}

// loadgenWithFault runs the load generator and, after the given time, the
// fault; it returns when both are done.
func (p *pipeline) loadgenWithFault(ctx context.Context, after time.Duration, fault func(), args ...string) loadReport {
	p.t.Helper()
	done := make(chan loadReport, 1)
	go func() { done <- p.loadgen(ctx, args...) }()
	time.Sleep(after)
	fault()
	return <-done
}

// influxQL runs a query on the test's database and returns the first value
// of the first series (0 when there is none).
func (p *pipeline) influxQL(q string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return devenv.InfluxDB{URL: p.influxURL, Database: p.db}.Scalar(ctx, q)
}

// windowCount is the sum of the window counts of metric in one window size.
func (p *pipeline) windowCount(window, metric string) int64 {
	v, err := p.influxQL(fmt.Sprintf(`SELECT sum("count") FROM "telemetry_%s" WHERE "metric" = '%s'`, window, metric))
	if err != nil {
		p.t.Logf("count query: %v", err)
	}
	return int64(v)
}

// expectCounts waits until every window size counts exactly want readings of
// metric, fails at once if any counts more, and checks the counts stay put
// over a few more flushes (a double flush would show here).
func (p *pipeline) expectCounts(metric string, want int64, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for _, w := range []string{"2s", "10s"} {
		for {
			got := p.windowCount(w, metric)
			if got > want {
				p.t.Fatalf("telemetry_%s counts %d %s readings, want exactly %d: double counting", w, got, metric, want)
			}
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				p.t.Fatalf("telemetry_%s counts %d %s readings after %s, want exactly %d (%s)", w, got, metric, within, want, p.diagnose(metric))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)
	for _, w := range []string{"2s", "10s"} {
		if got := p.windowCount(w, metric); got != want {
			p.t.Fatalf("telemetry_%s counts %d after settling, want %d (%s)", w, got, want, p.diagnose(metric))
		}
	}
}

// expectNoneLate checks that no reading was dead-lettered as late.
func (p *pipeline) expectNoneLate() {
	p.t.Helper()
	if late := p.lateCount(); late != 0 {
		p.t.Fatalf("%d readings dead-lettered as late (%s)", late, p.diagnose("temperature"))
	}
}

// lateCount is the number of readings the processors dead-lettered as late.
func (p *pipeline) lateCount() int64 {
	var n int64
	for _, m := range p.deadLetters() {
		if m.Subject() == "deadletter.processor" && m.Headers().Get(bus.HeaderReason) == "late" {
			n++
		}
	}
	return n
}

// diagnose says where readings went when the windows miss some: raw points
// written and dead letters by reason (late readings are written raw and
// dead-lettered, not counted in windows).
func (p *pipeline) diagnose(metric string) string {
	raw, err := p.influxQL(fmt.Sprintf(`SELECT count(%q) FROM "telemetry"`, metric))
	reasons := map[string]int{}
	for _, m := range p.deadLetters() {
		reasons[m.Subject()+" "+m.Headers().Get(bus.HeaderReason)]++
	}
	return fmt.Sprintf("raw points %v (err %v), dead letters %v", raw, err, reasons)
}

// deadLetters reads every record on DEADLETTER.
func (p *pipeline) deadLetters() []jetstream.Msg {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := p.js.OrderedConsumer(ctx, bus.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		p.t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			p.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// saveArtifact keeps a file of a failed test under <repo>/test-artifacts/.
func saveArtifact(t *testing.T, name, content string) {
	root, err := devenv.RepoRoot()
	if err != nil {
		return
	}
	dir := filepath.Join(root, "test-artifacts", strings.ReplaceAll(t.Name(), "/", "_"))
	if os.MkdirAll(dir, 0o755) == nil {
		_ = os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
}

// requireServers stops a test that cannot run: our binaries failed to build,
// or Mosquitto or influxd is not installed.
func requireServers(t *testing.T) {
	t.Helper()
	if bins.err != nil {
		t.Fatalf("build: %v", bins.err)
	}
	_, err := devenv.MosquittoBinary()
	devenv.RequireInstalled(t, err)
	_, err = devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
}
