package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/launcher"
)

// influxDatabase is the database the processor writes and the bench counts in.
const influxDatabase = "edgeflow"

// Member is one process the bench measures: a service of ours (with
// /metrics), a server it runs on, or the bench itself.
type Member struct {
	Name string
	// Role is "service" (ours; the RSS targets apply), "server"
	// (NATS, Mosquitto, InfluxDB) or "bench" (this process: the load's
	// bookkeeping and the counting queries, in no total).
	Role       string
	PID        int
	MetricsURL string // empty for the servers
	// Pprof is the member's /debug/pprof/ with -pprof (the services and
	// NATS), else empty.
	Pprof string
}

// Stack is the local pipeline on loopback, every data directory fresh under
// Dir. The servers start first (StartServers), so that the raw MQTT leg can
// use the broker before ingest subscribes; StartServices adds our binaries.
type Stack struct {
	Dir       string
	Bin       string // where ingest, processor, dashboard, notifier, loadgen, nats-server are
	Root      string
	MQTTURL   string
	NATSURL   string
	InfluxURL string
	Members   []*Member
	// Pprof serves /debug/pprof/ on every service's HTTP address (EDGEFLOW_PPROF).
	Pprof bool
	// SyncInterval and SyncAlways are NATS's storage sync policy (-nats-sync).
	SyncInterval time.Duration
	SyncAlways   bool

	launcher *launcher.Launcher
}

// binary returns the path of one of our binaries, or "" when it was not built.
func (s *Stack) binary(name string) string {
	p := filepath.Join(s.Bin, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// StartServers starts NATS as a nats-server process (<Bin>/nats-server, as
// production runs it, so that its CPU and memory are its own), Mosquitto
// from the shipped configuration and InfluxDB 1.8.3.
func (s *Stack) StartServers(ctx context.Context) error {
	natsBin := s.binary("nats-server")
	if natsBin == "" {
		return fmt.Errorf("nats-server not built in %s: go build -o %s %s (go tool task bench does)",
			s.Bin, filepath.Join(s.Bin, "nats-server"), devenv.NATSServerPackage)
	}
	var profPort int
	if s.Pprof {
		port, err := devenv.FreePort()
		if err != nil {
			return err
		}
		profPort = port
	}
	s.launcher = &launcher.Launcher{
		Dir: filepath.Join(s.Dir, "logs"), Bin: s.Bin,
		NATS: &devenv.NATSOptions{StoreDir: filepath.Join(s.Dir, "nats"),
			SyncInterval: s.SyncInterval, SyncAlways: s.SyncAlways, ProfPort: profPort},
		NATSBin:      natsBin,
		Mosquitto:    &devenv.MosquittoOptions{Dir: filepath.Join(s.Dir, "mosquitto")},
		Influx:       &devenv.InfluxOptions{Dir: filepath.Join(s.Dir, "influxdb"), Database: influxDatabase},
		Bucket:       influxDatabase,
		Rules:        filepath.Join(s.Root, "rules.yaml"),
		LogLevel:     "warn",
		Pprof:        s.Pprof,
		ReadyTimeout: time.Minute,
	}
	err := s.launcher.StartServers(ctx)
	l := s.launcher
	// The bench's own work (the load generator's reports, the counting
	// queries, the raw leg's subscriber) is measured apart from NATS.
	s.Members = append(s.Members, &Member{Name: "bench", Role: "bench", PID: os.Getpid()})
	if ns := l.NATSProcess(); ns != nil {
		s.NATSURL = l.NATSURL
		m := &Member{Name: "nats", Role: "server", PID: ns.Pid()}
		if profPort != 0 {
			m.Pprof = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", profPort)
			logf("nats: pprof on %s", m.Pprof)
		}
		s.Members = append(s.Members, m)
	}
	if mq := l.MQTT(); mq != nil {
		s.MQTTURL = mq.URL
		s.Members = append(s.Members, &Member{Name: "mosquitto", Role: "server", PID: mq.Pid()})
	}
	if in := l.InfluxDB(); in != nil {
		s.InfluxURL = in.URL
		s.Members = append(s.Members, &Member{Name: "influxd", Role: "server", PID: in.Pid()})
	}
	return err
}

// StartServices starts ingest and one processor with their defaults (only
// addresses set), then the dashboard and the notifier when they were built.
func (s *Stack) StartServices(ctx context.Context) error {
	for _, name := range []string{"ingest", "processor"} {
		if s.binary(name) == "" {
			return fmt.Errorf("%s not built in %s: run go tool task build", name, s.Bin)
		}
	}
	services := []launcher.Service{{Kind: launcher.Ingest, ID: "bench-ingest"}, {Kind: launcher.Processor, ID: "bench-0"}}
	// The dashboard before the notifier: its pipeline page reads ingest
	// and the processor.
	for _, kind := range []string{launcher.Dashboard, launcher.Notifier} {
		if s.binary(kind) != "" {
			services = append(services, launcher.Service{Kind: kind, ID: "bench"})
		}
	}
	for _, svc := range services {
		p, err := s.launcher.Start(ctx, svc)
		if err != nil {
			return err
		}
		m := &Member{Name: p.Name, Role: "service", PID: p.Pid(), MetricsURL: p.URL + "/metrics"}
		if s.Pprof {
			m.Pprof = p.URL + "/debug/pprof/"
			logf("%s: pprof on %s", p.Name, m.Pprof)
		}
		s.Members = append(s.Members, m)
	}
	return nil
}

// pipeline are the members edgeflow's totals sum: the services and NATS
// (ingest + processor + dashboard + notifier + NATS), not the broker, the
// database or the bench.
func (s *Stack) pipeline() []string {
	var out []string
	for _, m := range s.Members {
		if m.Role == "service" {
			out = append(out, m.Name)
		}
	}
	if s.Member("nats") != nil {
		out = append(out, "nats")
	}
	return out
}

// Member returns the member called name, or nil.
func (s *Stack) Member(name string) *Member {
	for _, m := range s.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Stop stops every process by its PID (SIGTERM, SIGKILL after devenv's
// timeout) in the launcher's drain order, NATS last.
func (s *Stack) Stop() error {
	if s.launcher == nil {
		return nil
	}
	return s.launcher.Stop(context.Background())
}
