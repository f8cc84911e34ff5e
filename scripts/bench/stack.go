package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edgeflow/edgeflow/internal/devenv"
)

// influxDatabase is the database the processor writes and the bench counts in.
const influxDatabase = "edgeflow"

// Member is one process the bench measures: a service of ours (with
// /metrics) or a server it runs on.
type Member struct {
	Name string
	// Role is "service" (ours; the RSS targets apply) or "server".
	Role       string
	PID        int
	MetricsURL string // empty for the servers
	proc       *devenv.Process
}

// Stack is the local pipeline on loopback, every data directory fresh under
// Dir. The servers start first (StartServers), so that the raw MQTT leg can
// use the broker before ingest subscribes; StartServices adds our binaries.
type Stack struct {
	Dir       string
	Bin       string // where ingest, processor, dashboard, notifier, loadgen are
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

	nats *server.Server
}

// binary returns the path of one of our binaries, or "" when it was not built.
func (s *Stack) binary(name string) string {
	p := filepath.Join(s.Bin, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// StartServers starts embedded NATS, Mosquitto from the shipped
// configuration and InfluxDB 1.8.3.
func (s *Stack) StartServers(ctx context.Context) error {
	ns, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: filepath.Join(s.Dir, "nats"),
		SyncInterval: s.SyncInterval, SyncAlways: s.SyncAlways})
	if err != nil {
		return err
	}
	s.nats = ns
	s.NATSURL = ns.ClientURL()
	// NATS runs inside this process: its RSS and CPU are the bench's.
	s.Members = append(s.Members, &Member{Name: "nats+bench", Role: "server", PID: os.Getpid()})

	mq, err := devenv.StartMosquitto(ctx, devenv.MosquittoOptions{Dir: filepath.Join(s.Dir, "mosquitto")})
	if err != nil {
		return err
	}
	s.MQTTURL = mq.URL
	s.Members = append(s.Members, &Member{Name: "mosquitto", Role: "server", PID: mq.Pid(), proc: mq})

	in, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(s.Dir, "influxdb"), Database: influxDatabase})
	if err != nil {
		return err
	}
	s.InfluxURL = in.URL
	s.Members = append(s.Members, &Member{Name: "influxd", Role: "server", PID: in.Pid(), proc: in})
	return nil
}

// StartServices starts ingest and one processor with their defaults (only
// addresses set), then the dashboard and the notifier when they were built.
func (s *Stack) StartServices(ctx context.Context) error {
	for _, name := range []string{"ingest", "processor"} {
		if s.binary(name) == "" {
			return fmt.Errorf("%s not built in %s: run go tool task build", name, s.Bin)
		}
	}
	ingest, err := s.startService(ctx, "ingest", "INGEST",
		"EDGEFLOW_MQTT_URL="+s.MQTTURL, "EDGEFLOW_INGEST_CLIENT_ID=bench-ingest")
	if err != nil {
		return err
	}
	processor, err := s.startService(ctx, "processor", "PROCESSOR",
		"EDGEFLOW_PROCESSOR_ID=bench-0", "EDGEFLOW_INFLUX_URL="+s.InfluxURL, "EDGEFLOW_INFLUX_BUCKET="+influxDatabase)
	if err != nil {
		return err
	}
	if s.binary("dashboard") != "" {
		services := "ingest=" + strings.TrimSuffix(ingest.MetricsURL, "/metrics") +
			",processor=" + strings.TrimSuffix(processor.MetricsURL, "/metrics")
		if _, err := s.startService(ctx, "dashboard", "DASHBOARD",
			"EDGEFLOW_INFLUX_URL="+s.InfluxURL, "EDGEFLOW_INFLUX_BUCKET="+influxDatabase,
			"EDGEFLOW_DASHBOARD_SERVICES="+services); err != nil {
			return err
		}
	}
	if s.binary("notifier") != "" {
		if _, err := s.startService(ctx, "notifier", "NOTIFIER",
			"EDGEFLOW_NOTIFIER_ID=bench", "EDGEFLOW_RULES="+filepath.Join(s.Root, "rules.yaml")); err != nil {
			return err
		}
	}
	return nil
}

// startService runs one of our binaries on a free loopback port and waits
// for /readyz.
func (s *Stack) startService(ctx context.Context, name, kind string, env ...string) (*Member, error) {
	port, err := devenv.FreePort()
	if err != nil {
		return nil, err
	}
	if s.Pprof {
		env = append(env, "EDGEFLOW_PPROF=true")
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
		Name: name, Bin: s.binary(name), Dir: filepath.Join(s.Dir, "logs"),
		Addr: addr, URL: "http://" + addr,
		Env: append([]string{
			"EDGEFLOW_NATS_URL=" + s.NATSURL,
			"EDGEFLOW_" + kind + "_HTTP_ADDR=" + addr,
			"EDGEFLOW_LOG_LEVEL=warn",
		}, env...),
		ReadyURL: "http://" + addr + "/readyz", ReadyTimeout: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	if s.Pprof {
		logf("%s: pprof on http://%s/debug/pprof/", name, addr)
	}
	m := &Member{Name: name, Role: "service", PID: p.Pid(), MetricsURL: "http://" + addr + "/metrics", proc: p}
	s.Members = append(s.Members, m)
	return m, nil
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
// timeout), in the reverse order of the start, and shuts NATS down last.
func (s *Stack) Stop() error {
	var errs []error
	for i := len(s.Members) - 1; i >= 0; i-- {
		if p := s.Members[i].proc; p != nil {
			if err := p.Stop(context.Background()); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", s.Members[i].Name, err))
			}
		}
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
	return errors.Join(errs...)
}
