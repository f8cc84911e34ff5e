// Command devstack is `task up`: the whole pipeline on one machine with no
// cluster. It embeds a NATS server (JetStream, and its MQTT listener in place
// of a broker), starts InfluxDB 1.8.3 with its data under .data/, runs the
// services from the folder it is in (.bin/, where task build puts them all),
// and the sensor simulation unless EDGEFLOW_SIM=off.
// Ctrl-C stops everything in order (simulation, ingest, processor, then the
// servers), and a second run resumes on the same data.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/devenv/influxadmin"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/service"
	"github.com/edgeflow/edgeflow/scripts/internal/launcher"
)

// Config of the local stack (EDGEFLOW_DEV_* and EDGEFLOW_SIM). The services
// themselves read their own EDGEFLOW_* variables, which pass through.
type Config struct {
	Sim           string        `envconfig:"SIM" default:"on" desc:"run the sensor simulation (on/off)"`
	DataDir       string        `envconfig:"DEV_DATA_DIR" default:".data" desc:"where NATS, InfluxDB and logs keep their state"`
	Host          string        `envconfig:"DEV_HOST" default:"127.0.0.1" desc:"address every local server listens on"`
	NATSPort      int           `envconfig:"DEV_NATS_PORT" default:"4222" desc:"embedded NATS client port"`
	MQTTPort      int           `envconfig:"DEV_MQTT_PORT" default:"1883" desc:"embedded NATS MQTT listener port"`
	InfluxPort    int           `envconfig:"DEV_INFLUX_PORT" default:"8086" desc:"InfluxDB HTTP port"`
	SyncInterval  time.Duration `envconfig:"DEV_NATS_SYNC_INTERVAL" default:"1s" desc:"JetStream fsync interval: a power cut loses at most this much acknowledged data"`
	Processors    int           `envconfig:"DEV_PROCESSORS" default:"1" desc:"processor replicas to run"`
	IngestPort    int           `envconfig:"DEV_INGEST_PORT" default:"8081" desc:"ingest's /metrics, /healthz, /readyz port"`
	ProcessorPort int           `envconfig:"DEV_PROCESSOR_PORT" default:"8082" desc:"first processor's /metrics port (the next replicas take the following ports)"`
	DashboardPort int           `envconfig:"DEV_DASHBOARD_PORT" default:"8080" desc:"the dashboard's port: open http://127.0.0.1:8080 in a browser"`
	NotifierPort  int           `envconfig:"DEV_NOTIFIER_PORT" default:"8090" desc:"the notifier's /alerts, /metrics, /healthz, /readyz port (above the processors' 8082...)"`

	// Sites, when set, runs the hub and one stack per site (runSites).
	Sites    []string `envconfig:"DEV_SITES" desc:"site names for the many-sites demo (task up:sites: north,south): a hub on the ports above and one stack per site, site i on every port + 100×i; empty: one stack"`
	LeafPort int      `envconfig:"DEV_LEAF_PORT" default:"7422" desc:"the hub's NATS leaf node port in the many-sites demo"`

	// InfluxDB is set up as task deploy sets it up (influxadmin), at every
	// start: the services' buckets, passed on to them, with their
	// retention.
	influxadmin.Retention
	Bucket    string `envconfig:"INFLUX_BUCKET" default:"edgeflow" desc:"passed to the services; set up with the window retention"`
	RawBucket string `envconfig:"INFLUX_RAW_BUCKET" default:"edgeflow/raw" desc:"passed to the services (task up's default: edgeflow/raw); set up with the raw retention"`
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: devstack (run by `task up`; configure with the environment)")
		service.PrintEnv(os.Stderr, "task up", &Config{})
	}
	showVersion := flag.Bool("version", false, "print the build (version, revision, Go version) and exit")
	flag.Parse()
	if *showVersion {
		service.PrintVersion(os.Stdout, "devstack")
		return
	}
	log := service.NewLogger("devstack")
	var cfg Config
	if err := envconfig.Process("edgeflow", &cfg); err != nil {
		service.Fatal(log, "invalid configuration", err)
	}
	if cfg.Sim != "on" && cfg.Sim != "off" {
		service.Fatal(log, "invalid configuration", fmt.Errorf("EDGEFLOW_SIM=%q: want on or off", cfg.Sim))
	}
	if cfg.Processors < 1 || cfg.Processors > 16 {
		service.Fatal(log, "invalid configuration", errors.New("EDGEFLOW_DEV_PROCESSORS must be 1..16"))
	}
	if len(cfg.Sites) > 0 {
		hub := bus.HubConfig{Sites: cfg.Sites, Streams: bus.DefaultUplinkStreams, MaxAge: time.Hour, MaxBytes: 1 << 30}
		if err := hub.Validate(); err != nil {
			service.Fatal(log, "invalid configuration", fmt.Errorf("EDGEFLOW_DEV_SITES: %w", err))
		}
	}
	if cfg.NotifierPort >= cfg.ProcessorPort && cfg.NotifierPort < cfg.ProcessorPort+cfg.Processors {
		service.Fatal(log, "invalid configuration", fmt.Errorf("EDGEFLOW_DEV_NOTIFIER_PORT=%d is one of the processors' ports %d..%d",
			cfg.NotifierPort, cfg.ProcessorPort, cfg.ProcessorPort+cfg.Processors-1))
	}
	ctx, stop := service.SignalContext()
	defer stop()
	if err := run(ctx, log, cfg); err != nil {
		service.Fatal(log, "task up failed", err)
	}
}

func run(ctx context.Context, log *slog.Logger, cfg Config) error {
	root, err := devenv.RepoRoot()
	if err != nil {
		return err
	}
	data := cfg.DataDir
	if !filepath.IsAbs(data) {
		data = filepath.Join(root, data)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Dir(exe)
	logs := filepath.Join(data, "logs")

	plan, err := influxadmin.NewPlan(cfg.Bucket, cfg.RawBucket, cfg.Retention)
	if err != nil {
		return fmt.Errorf("EDGEFLOW_INFLUX_BUCKET, _RAW_BUCKET, _RAW_RETENTION_DAYS, _WINDOW_RETENTION_DAYS: %w", err)
	}
	// The notifier evaluates the processors' windows, with the rules of the
	// repository's rules.yaml (or EDGEFLOW_RULES); it runs in the log
	// directory, so the path is made absolute.
	rulesFile := filepath.Join(root, "rules.yaml")
	if v := os.Getenv("EDGEFLOW_RULES"); v != "" {
		if rulesFile, err = filepath.Abs(v); err != nil {
			return err
		}
	}
	if len(cfg.Sites) > 0 {
		return runSites(ctx, log, cfg, root, data, bin, rulesFile, plan)
	}
	// NATS's MQTT listener is the broker: no Mosquitto.
	l := &launcher.Launcher{
		Dir: logs, Bin: bin, Host: cfg.Host,
		NATS: &devenv.NATSOptions{Host: cfg.Host, Port: cfg.NATSPort, MQTTPort: cfg.MQTTPort,
			StoreDir: filepath.Join(data, "nats"), ServerName: "edgeflow-local", SyncInterval: cfg.SyncInterval},
		MQTTURL: "tcp://" + net(cfg.Host, cfg.MQTTPort),
		Influx:  &devenv.InfluxOptions{Dir: filepath.Join(data, "influxdb"), Port: cfg.InfluxPort, Plan: &plan},
		Bucket:  cfg.Bucket, RawBucket: cfg.RawBucket, Rules: rulesFile,
		// NATS's MQTT listener has no shared subscriptions; one ingest runs.
		Overrides:    map[string][]string{launcher.Ingest: {"EDGEFLOW_INGEST_SHARE_GROUP="}},
		ReadyTimeout: 60 * time.Second, StopTimeout: 30 * time.Second,
		Log: log,
	}
	// Stopped in this order: the simulation and the dashboard and notifier,
	// then ingest (its queue drains into JetStream), then the processors
	// (their last flush reaches InfluxDB), then InfluxDB; NATS last of all.
	var sim *devenv.Process
	defer func() {
		if sim != nil {
			if err := sim.Stop(context.Background()); err != nil {
				log.Warn("stop", "process", sim.Name, "err", err)
			}
			log.Info("stopped", "process", sim.Name)
		}
		_ = l.Stop(context.Background()) // logs each process's stop
	}()
	if err := l.StartServers(ctx); err != nil {
		if l.NATSServer() == nil {
			return fmt.Errorf("start NATS on ports %d (NATS) and %d (MQTT): is another `task up` running, or a system "+
				"broker on 1883 (Debian's mosquitto service: `systemctl disable --now mosquitto`)? EDGEFLOW_DEV_MQTT_PORT "+
				"and EDGEFLOW_DEV_NATS_PORT move them: %w", cfg.NATSPort, cfg.MQTTPort, err)
		}
		return err
	}
	log.Info("influxdb retention", "windows", cfg.Bucket, "window_days", cfg.WindowDays, "raw", cfg.RawBucket, "raw_days", cfg.RawDays)

	// ingest first: it creates TELEMETRY, which the processors wait for.
	services := []launcher.Service{{Kind: launcher.Ingest, ID: "edgeflow-ingest-local", Port: cfg.IngestPort}}
	for i := range cfg.Processors {
		services = append(services, launcher.Service{Kind: launcher.Processor, Name: "processor-" + strconv.Itoa(i),
			ID: "local-" + strconv.Itoa(i), Port: cfg.ProcessorPort + i})
	}
	// The dashboard reads everything above: it starts last, and its pipeline
	// page scrapes each service.
	services = append(services,
		launcher.Service{Kind: launcher.Notifier, ID: "local", Port: cfg.NotifierPort},
		launcher.Service{Kind: launcher.Dashboard, Port: cfg.DashboardPort})
	for _, s := range services {
		if _, err := l.Start(ctx, s); err != nil {
			return err
		}
	}
	if cfg.Sim == "on" {
		sim, err = devenv.StartProcess(ctx, devenv.ProcessOptions{
			Name: "simulate-sensors", Bin: "bash", Args: []string{filepath.Join(root, "scripts", "simulate-sensors.sh")},
			Dir: logs, Env: []string{"EDGEFLOW_MQTT_HOST=" + cfg.Host, "EDGEFLOW_MQTT_PORT=" + strconv.Itoa(cfg.MQTTPort)},
		})
		if err != nil {
			return err
		}
	}
	natsURL, influxURL := l.NATSURL, l.InfluxURL

	var b strings.Builder
	fmt.Fprintf(&b, "\nedgeflow is running (data in %s, logs in %s)\n", data, logs)
	fmt.Fprintf(&b, "\n  dashboard             http://%s   <- open in a browser\n\n", net(cfg.Host, cfg.DashboardPort))
	fmt.Fprintf(&b, "  MQTT (NATS listener)  tcp://%s   e.g. mosquitto_pub -h %s -p %d -q 1 -t sensors/lab/t1/temperature -m 21.5\n",
		net(cfg.Host, cfg.MQTTPort), cfg.Host, cfg.MQTTPort)
	fmt.Fprintf(&b, "  NATS                  %s\n", natsURL)
	fmt.Fprintf(&b, "  InfluxDB              %s   (1.8.3 with the 2.x API; %s kept %d days, %s %d days)\n",
		influxURL, cfg.Bucket, cfg.WindowDays, cfg.RawBucket, cfg.RawDays)
	for _, p := range l.Services() {
		if p.Name != "dashboard" {
			fmt.Fprintf(&b, "  %-21s %s/metrics  /healthz  /readyz\n", p.Name, p.URL)
		}
	}
	if cfg.Sim == "on" {
		b.WriteString("  simulated sensors     on (EDGEFLOW_SIM=off or `task up:nosim` to run without)\n")
	}
	b.WriteString("Ctrl-C stops everything.\n")
	fmt.Fprint(os.Stderr, b.String())

	<-ctx.Done()
	log.Info("stopping")
	return nil
}

func net(host string, port int) string { return host + ":" + strconv.Itoa(port) }
