package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/launcher"
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
	nats      []*target // the nats-server processes
	launcher  *launcher.Launcher
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
		s.natsURLs = append(s.natsURLs, n.URL)
		t := &target{name: n.Name, proc: n.Process, kinds: []string{KindKill, KindRestart, KindPause}, probe: httpProbe(n.Healthz)}
		s.nats = append(s.nats, t)
		s.add(t)
	}
	replicas := 1
	if cfg.NATSServers > 1 {
		replicas = cfg.NATSServers
	}
	s.launcher = &launcher.Launcher{
		Dir: filepath.Join(cfg.Dir, "logs"), Bin: cfg.Bin,
		NATSURL:        strings.Join(s.natsURLs, ","),
		Mosquitto:      &devenv.MosquittoOptions{Dir: filepath.Join(cfg.Dir, "mosquitto")},
		Influx:         &devenv.InfluxOptions{Dir: filepath.Join(cfg.Dir, "influxdb"), Database: influxDatabase},
		Bucket:         influxDatabase,
		Rules:          s.rulesPath,
		StreamReplicas: replicas,
		LogLevel:       "info",
		// A -race binary sleeps 1 s at exit by default.
		Env: []string{"GORACE=atexit_sleep_ms=0"},
		Overrides: map[string][]string{
			launcher.Processor: {
				"EDGEFLOW_PROCESSOR_WINDOWS=" + strings.Join(cfg.Windows, ","),
				"EDGEFLOW_PROCESSOR_LATENESS=" + cfg.Lateness.String(),
				"EDGEFLOW_PROCESSOR_IDLE_GRACE=" + cfg.IdleGrace.String(),
				"EDGEFLOW_PROCESSOR_FLUSH_INTERVAL=500ms",
				"EDGEFLOW_PROCESSOR_PURGE_INTERVAL=2s",
				"EDGEFLOW_PROCESSOR_LEASE_TTL=5s",
			},
			launcher.Notifier: {
				"EDGEFLOW_NOTIFIER_TICK=500ms",
				"EDGEFLOW_NOTIFIER_RULES_POLL=1s",
				"EDGEFLOW_NOTIFIER_FAILOVER=3s",
				hookEnv + "=" + hookURL,
			},
			launcher.Dashboard: {
				"EDGEFLOW_DASHBOARD_WINDOWS=" + strings.Join(cfg.Windows, ","),
				"EDGEFLOW_DASHBOARD_SCRAPE_INTERVAL=2s",
			},
		},
		ReadyTimeout: serviceReadyTimeout,
	}
	err = s.launcher.StartServers(ctx)
	if s.mqtt = s.launcher.MQTT(); s.mqtt != nil {
		mqttAddr := s.mqtt.Addr
		// Graceful only: Mosquitto persists its QoS 1 queues on SIGTERM (and
		// every autosave_interval); a SIGKILL loses what it acknowledged since
		// the last save, by design (docs/chaos.md).
		s.broker = &target{name: "mosquitto", proc: s.mqtt, kinds: []string{KindRestart, KindPause},
			probe: func(ctx context.Context) error { return devenv.ProbeMQTT(ctx, mqttAddr) }}
		s.add(s.broker)
	}
	if s.influx = s.launcher.InfluxDB(); s.influx != nil {
		// InfluxDB 1.8 fsyncs its WAL before it answers a write, so a SIGKILL
		// loses nothing the processors saw acknowledged.
		s.add(&target{name: "influxd", proc: s.influx, kinds: []string{KindKill, KindRestart, KindPause},
			probe: httpProbe(s.influx.URL + "/ping")})
	}
	if err != nil {
		return err
	}

	services := []launcher.Service{{Kind: launcher.Ingest, ID: "chaos-ingest"}}
	for i := 1; i <= cfg.Processors; i++ {
		id := "p" + strconv.Itoa(i)
		services = append(services, launcher.Service{Kind: launcher.Processor, Name: "processor-" + id, ID: id})
	}
	// The dashboard last: its pipeline page reads every service above.
	services = append(services, launcher.Service{Kind: launcher.Notifier, ID: "chaos"}, launcher.Service{Kind: launcher.Dashboard})
	for _, svc := range services {
		p, err := s.launcher.Start(ctx, svc)
		if err != nil {
			return err
		}
		kinds := []string{KindKill, KindRestart, KindPause}
		if svc.Kind == launcher.Dashboard {
			kinds = []string{KindKill, KindPause}
		}
		t := &target{name: p.Name, proc: p, kinds: kinds, probe: httpProbe(p.URL + "/readyz")}
		s.services = append(s.services, t)
		s.add(t)
	}
	return nil
}

func (s *stack) add(t *target) { s.targets = append(s.targets, t) }

// target returns the target called name, or nil.
func (s *stack) target(name string) *target {
	for _, t := range s.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// stop stops every process (SIGTERM, SIGKILL after devenv's timeout): the
// launcher's, in its drain order, then the NATS servers, last started
// first. It returns what did not stop cleanly: a service that does not drain
// on SIGTERM after a chaos run is a finding.
func (s *stack) stop() []string {
	var problems []string
	if s.launcher != nil {
		if err := s.launcher.Stop(context.Background()); err != nil {
			var errs []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			} else {
				errs = []error{err}
			}
			for _, e := range errs {
				problems = append(problems, firstLine(e.Error()))
			}
		}
	}
	for i := len(s.nats) - 1; i >= 0; i-- {
		t := s.nats[i]
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
