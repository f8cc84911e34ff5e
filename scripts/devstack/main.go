// Command devstack is `task up`: the whole pipeline on one machine with no
// cluster. It embeds a NATS server (JetStream, and its MQTT listener in place
// of a broker), starts InfluxDB 1.8.3 with its data under .data/, runs the
// services from .bin/, and the sensor simulation unless EDGEFLOW_SIM=off.
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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/internal/devenv"
	"github.com/edgeflow/edgeflow/internal/influxadmin"
	"github.com/edgeflow/edgeflow/internal/service"
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
	flag.Parse()
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
	bin := filepath.Join(root, ".bin")
	logs := filepath.Join(data, "logs")

	ns, err := devenv.StartNATS(devenv.NATSOptions{Host: cfg.Host, Port: cfg.NATSPort, MQTTPort: cfg.MQTTPort,
		StoreDir: filepath.Join(data, "nats"), ServerName: "edgeflow-local", SyncInterval: cfg.SyncInterval})
	if err != nil {
		return fmt.Errorf("start NATS on ports %d (NATS) and %d (MQTT): is another `task up` running, or a system "+
			"broker on 1883 (Debian's mosquitto service: `systemctl disable --now mosquitto`)? EDGEFLOW_DEV_MQTT_PORT "+
			"and EDGEFLOW_DEV_NATS_PORT move them: %w", cfg.NATSPort, cfg.MQTTPort, err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown(); log.Info("nats stopped") }()
	natsURL := ns.ClientURL()

	plan, err := influxadmin.NewPlan(cfg.Bucket, cfg.RawBucket, cfg.Retention)
	if err != nil {
		return fmt.Errorf("EDGEFLOW_INFLUX_BUCKET, _RAW_BUCKET, _RAW_RETENTION_DAYS, _WINDOW_RETENTION_DAYS: %w", err)
	}
	influx, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(data, "influxdb"), Port: cfg.InfluxPort, Plan: &plan})
	if err != nil {
		return err
	}
	log.Info("influxdb retention", "windows", cfg.Bucket, "window_days", cfg.WindowDays, "raw", cfg.RawBucket, "raw_days", cfg.RawDays)
	// Stopped in this order: the simulation, then ingest (its queue drains
	// into JetStream), then the processors (their last flush reaches
	// InfluxDB), then InfluxDB; NATS last of all.
	var stack []*devenv.Process
	defer func() {
		order := map[string]int{"simulate-sensors": 0, "dashboard": 0, "notifier": 0, "ingest": 1, "influxd": 3}
		rank := func(p *devenv.Process) int {
			if r, ok := order[p.Name]; ok {
				return r
			}
			return 2 // processors
		}
		slices.SortStableFunc(stack, func(a, b *devenv.Process) int { return rank(a) - rank(b) })
		for _, p := range stack {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := p.Stop(sctx); err != nil {
				log.Warn("stop", "process", p.Name, "err", err)
			}
			cancel()
			log.Info("stopped", "process", p.Name)
		}
	}()
	stack = append(stack, influx)

	env := []string{
		"EDGEFLOW_NATS_URL=" + natsURL,
		"EDGEFLOW_INFLUX_URL=" + influx.URL,
		"EDGEFLOW_INFLUX_BUCKET=" + cfg.Bucket,
		"EDGEFLOW_INFLUX_RAW_BUCKET=" + cfg.RawBucket,
		"EDGEFLOW_MQTT_URL=tcp://" + net(cfg.Host, cfg.MQTTPort),
		// NATS's MQTT listener has no shared subscriptions; one ingest runs.
		"EDGEFLOW_INGEST_SHARE_GROUP=",
		"EDGEFLOW_INGEST_CLIENT_ID=edgeflow-ingest-local",
	}
	ports := []int{cfg.IngestPort}
	for i := range cfg.Processors {
		ports = append(ports, cfg.ProcessorPort+i)
	}
	start := func(name, binName string, port int, extra ...string) error {
		addr := net(cfg.Host, port)
		p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
			Name: name, Bin: filepath.Join(bin, binName), Dir: logs, Addr: addr, URL: "http://" + addr,
			Env:      append(slices.Clone(env), extra...),
			ReadyURL: "http://" + addr + "/readyz", ReadyTimeout: 60 * time.Second, StopTimeout: 30 * time.Second,
		})
		if err != nil {
			return err
		}
		stack = append(stack, p)
		return nil
	}
	// ingest first: it creates TELEMETRY, which the processors wait for.
	if err := start("ingest", "ingest", ports[0], "EDGEFLOW_INGEST_HTTP_ADDR="+net(cfg.Host, ports[0])); err != nil {
		return err
	}
	for i := range cfg.Processors {
		id := "local-" + strconv.Itoa(i)
		if err := start("processor-"+strconv.Itoa(i), "processor", ports[1+i],
			"EDGEFLOW_PROCESSOR_ID="+id, "EDGEFLOW_PROCESSOR_HTTP_ADDR="+net(cfg.Host, ports[1+i])); err != nil {
			return err
		}
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
	if err := start("notifier", "notifier", cfg.NotifierPort, "EDGEFLOW_NOTIFIER_ID=local", "EDGEFLOW_RULES="+rulesFile,
		"EDGEFLOW_NOTIFIER_HTTP_ADDR="+net(cfg.Host, cfg.NotifierPort)); err != nil {
		return err
	}
	// The dashboard reads everything above: it starts last, and its pipeline
	// page scrapes each service.
	services := []string{"ingest=http://" + net(cfg.Host, ports[0])}
	for i := range cfg.Processors {
		services = append(services, "processor-"+strconv.Itoa(i)+"=http://"+net(cfg.Host, ports[1+i]))
	}
	services = append(services, "notifier=http://"+net(cfg.Host, cfg.NotifierPort))
	if err := start("dashboard", "dashboard", cfg.DashboardPort,
		"EDGEFLOW_DASHBOARD_HTTP_ADDR="+net(cfg.Host, cfg.DashboardPort),
		"EDGEFLOW_DASHBOARD_SERVICES="+strings.Join(services, ",")); err != nil {
		return err
	}
	if cfg.Sim == "on" {
		sim, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
			Name: "simulate-sensors", Bin: "bash", Args: []string{filepath.Join(root, "scripts", "simulate-sensors.sh")},
			Dir: logs, Env: []string{"EDGEFLOW_MQTT_HOST=" + cfg.Host, "EDGEFLOW_MQTT_PORT=" + strconv.Itoa(cfg.MQTTPort)},
		})
		if err != nil {
			return err
		}
		stack = append(stack, sim)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nedgeflow is running (data in %s, logs in %s)\n", data, logs)
	fmt.Fprintf(&b, "\n  dashboard             http://%s   <- open in a browser\n\n", net(cfg.Host, cfg.DashboardPort))
	fmt.Fprintf(&b, "  MQTT (NATS listener)  tcp://%s   e.g. mosquitto_pub -h %s -p %d -q 1 -t sensors/lab/t1/temperature -m 21.5\n",
		net(cfg.Host, cfg.MQTTPort), cfg.Host, cfg.MQTTPort)
	fmt.Fprintf(&b, "  NATS                  %s\n", natsURL)
	fmt.Fprintf(&b, "  InfluxDB              %s   (1.8.3 with the 2.x API; %s kept %d days, %s %d days)\n",
		influx.URL, cfg.Bucket, cfg.WindowDays, cfg.RawBucket, cfg.RawDays)
	for _, p := range stack[1:] {
		if strings.HasPrefix(p.URL, "http") && p.Name != "dashboard" {
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
