package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/devenv"
)

// influxDatabase is the database the processors write and the verdict reads.
const influxDatabase = "edgeflow"

// serviceReadyTimeout bounds a service's start and its recovery after a
// fault: generous, a loaded 2-core machine runs every process of the stack
// (built with -race in the suite) and the load generator.
const serviceReadyTimeout = 2 * time.Minute

// target is one process faults are injected into.
type target struct {
	name  string
	proc  *devenv.Process
	kinds []string
	// probe answers nil when the target is ready (one attempt).
	probe func(ctx context.Context) error
}

// stack is the running pipeline.
type stack struct {
	cfg       *Config
	natsURLs  []string
	mqtt      *devenv.Process
	broker    *target // mqtt as a fault target
	influx    *devenv.Process
	services  []*target // ingest, processors, notifier, dashboard
	targets   []*target // every process, in start order
	rulesPath string
}

// bin is the path of one of the binaries in cfg.Bin.
func (s *stack) bin(name string) string { return filepath.Join(s.cfg.Bin, name) }

// start brings up the servers and the services, each ready before the next.
func (s *stack) start(ctx context.Context, hookURL string) error {
	cfg := s.cfg
	nats, err := startNATS(ctx, s.bin("nats-server"), filepath.Join(cfg.Dir, "nats"), cfg.NATSServers)
	if err != nil {
		return err
	}
	for _, n := range nats {
		s.natsURLs = append(s.natsURLs, n.proc.URL)
		s.add(&target{name: n.proc.Name, proc: n.proc, kinds: []string{KindKill, KindRestart, KindPause}, probe: httpProbe(n.healthz)})
	}

	s.mqtt, err = devenv.StartMosquitto(ctx, devenv.MosquittoOptions{Dir: filepath.Join(cfg.Dir, "mosquitto")})
	if err != nil {
		return err
	}
	mqttAddr := s.mqtt.Addr
	// Graceful only: Mosquitto persists its QoS 1 queues on SIGTERM (and
	// every autosave_interval); a SIGKILL loses what it acknowledged since
	// the last save, by design (docs/chaos.md).
	s.broker = &target{name: "mosquitto", proc: s.mqtt, kinds: []string{KindRestart, KindPause},
		probe: func(ctx context.Context) error { return devenv.ProbeMQTT(ctx, mqttAddr) }}
	s.add(s.broker)

	s.influx, err = devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(cfg.Dir, "influxdb"), Database: influxDatabase})
	if err != nil {
		return err
	}
	// InfluxDB 1.8 fsyncs its WAL before it answers a write, so a SIGKILL
	// loses nothing the processors saw acknowledged.
	s.add(&target{name: "influxd", proc: s.influx, kinds: []string{KindKill, KindRestart, KindPause},
		probe: httpProbe(s.influx.URL + "/ping")})

	if _, err := s.service(ctx, "ingest", "ingest", "INGEST",
		"EDGEFLOW_MQTT_URL="+s.mqtt.URL, "EDGEFLOW_INGEST_CLIENT_ID=chaos-ingest"); err != nil {
		return err
	}
	for i := 1; i <= cfg.Processors; i++ {
		id := "p" + strconv.Itoa(i)
		if _, err := s.service(ctx, "processor-"+id, "processor", "PROCESSOR",
			"EDGEFLOW_PROCESSOR_ID="+id,
			"EDGEFLOW_INFLUX_URL="+s.influx.URL,
			"EDGEFLOW_INFLUX_BUCKET="+influxDatabase,
			"EDGEFLOW_PROCESSOR_WINDOWS="+strings.Join(cfg.Windows, ","),
			"EDGEFLOW_PROCESSOR_LATENESS="+cfg.Lateness.String(),
			"EDGEFLOW_PROCESSOR_IDLE_GRACE="+cfg.IdleGrace.String(),
			"EDGEFLOW_PROCESSOR_FLUSH_INTERVAL=500ms",
			"EDGEFLOW_PROCESSOR_PURGE_INTERVAL=2s",
			"EDGEFLOW_PROCESSOR_LEASE_TTL=5s",
		); err != nil {
			return err
		}
	}
	if _, err := s.service(ctx, "notifier", "notifier", "NOTIFIER",
		"EDGEFLOW_NOTIFIER_ID=chaos",
		"EDGEFLOW_RULES="+s.rulesPath,
		"EDGEFLOW_NOTIFIER_TICK=500ms",
		"EDGEFLOW_NOTIFIER_RULES_POLL=1s",
		"EDGEFLOW_NOTIFIER_FAILOVER=3s",
		hookEnv+"="+hookURL,
	); err != nil {
		return err
	}
	var services []string
	for _, t := range s.services {
		services = append(services, t.name+"="+t.proc.URL)
	}
	sort.Strings(services)
	if _, err := s.service(ctx, "dashboard", "dashboard", "DASHBOARD",
		"EDGEFLOW_INFLUX_URL="+s.influx.URL,
		"EDGEFLOW_INFLUX_BUCKET="+influxDatabase,
		"EDGEFLOW_DASHBOARD_WINDOWS="+strings.Join(cfg.Windows, ","),
		"EDGEFLOW_DASHBOARD_SCRAPE_INTERVAL=2s",
		"EDGEFLOW_DASHBOARD_SERVICES="+strings.Join(services, ","),
	); err != nil {
		return err
	}
	return nil
}

func (s *stack) add(t *target) { s.targets = append(s.targets, t) }

// service starts one of our binaries on a free loopback port and waits for
// its /readyz.
func (s *stack) service(ctx context.Context, name, binary, kind string, env ...string) (*target, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	replicas := "1"
	if s.cfg.NATSServers > 1 {
		replicas = strconv.Itoa(s.cfg.NATSServers)
	}
	p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
		Name: name, Bin: s.bin(binary), Dir: filepath.Join(s.cfg.Dir, "logs"),
		Addr: addr, URL: "http://" + addr,
		Env: append([]string{
			"EDGEFLOW_NATS_URL=" + strings.Join(s.natsURLs, ","),
			"EDGEFLOW_STREAM_REPLICAS=" + replicas,
			"EDGEFLOW_" + kind + "_HTTP_ADDR=" + addr,
			"EDGEFLOW_LOG_LEVEL=info",
			// A -race binary sleeps 1 s at exit by default.
			"GORACE=atexit_sleep_ms=0",
		}, env...),
		ReadyURL: "http://" + addr + "/readyz", ReadyTimeout: serviceReadyTimeout,
	})
	if err != nil {
		return nil, err
	}
	kinds := []string{KindKill, KindRestart, KindPause}
	if binary == "dashboard" {
		kinds = []string{KindKill, KindPause}
	}
	t := &target{name: name, proc: p, kinds: kinds, probe: httpProbe(p.URL + "/readyz")}
	s.services = append(s.services, t)
	s.add(t)
	return t, nil
}

// target returns the target called name, or nil.
func (s *stack) target(name string) *target {
	for _, t := range s.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// stop stops every process in the reverse order of the start (SIGTERM,
// SIGKILL after devenv's timeout) and returns what did not stop cleanly: a
// service that does not drain on SIGTERM after a chaos run is a finding.
func (s *stack) stop() []string {
	var problems []string
	for i := len(s.targets) - 1; i >= 0; i-- {
		t := s.targets[i]
		if t.proc == nil {
			continue
		}
		// A target left paused by an interrupted run must be resumed to
		// hear the SIGTERM.
		_ = t.proc.Resume()
		if err := t.proc.Stop(context.Background()); err != nil {
			problems = append(problems, fmt.Sprintf("stop %s: %s", t.name, firstLine(err.Error())))
		}
	}
	return problems
}

// httpProbe answers nil when GET url is 2xx.
func httpProbe(url string) func(context.Context) error {
	return func(ctx context.Context) error { return devenv.ProbeHTTP(ctx, url) }
}

// waitReady probes t until it is ready or within passes.
func waitReady(ctx context.Context, t *target, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		if last = t.probe(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v", t.name, within, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
