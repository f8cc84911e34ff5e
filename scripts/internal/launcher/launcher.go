// Package launcher starts edgeflow's pipeline on one machine: the servers
// (NATS, Mosquitto, InfluxDB, through devenv) and the services
// (ingest, processor replicas, notifier, dashboard) with the EDGEFLOW_*
// environment that joins them. It is the one place that environment is
// assembled: `task up` (scripts/devstack), `task bench`, the chaos run and
// the end-to-end tests, the secured ones included, all start the stack here,
// so a new variable is wired once (Launcher.ServiceEnv).
//
// A Launcher is configured by its fields, then StartServers starts what is
// not given by URL and Start starts one service at a time, in the caller's
// order; Stop stops everything it started, in drain order. Set the fields
// before StartServers and leave them be after; call Start from one
// goroutine at a time.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edgeflow/edgeflow/devenv"
)

// The service kinds: each is a binary of the same name and reads
// EDGEFLOW_<KIND>_* variables.
const (
	Ingest    = "ingest"
	Processor = "processor"
	Notifier  = "notifier"
	Dashboard = "dashboard"
)

// Security is the shipped security mode (docs/security.md): NATS and the
// broker over TLS with a login per service, the NATS permissions of
// manifests/base/nats/auth.conf, InfluxDB with a token, the dashboard with
// one. nil in Launcher.Security means none, as `task up` runs.
type Security struct {
	// CA verifies the servers' certificate; Cert and Key are that
	// certificate, which NATS and Mosquitto serve.
	CA, Cert, Key string
	// NATSAuthConfig is NATS's users and permissions; the users' passwords
	// are read from the server's environment (<USER>_PASSWORD).
	NATSAuthConfig string
	// MQTTPasswordFile is Mosquitto's password file (the ACL is the
	// shipped one).
	MQTTPasswordFile string
	// NATSPasswords are the services' NATS passwords by kind; a service
	// logs in as the user named after its kind.
	NATSPasswords map[string]string
	// MQTTUser and MQTTPassword are ingest's broker login.
	MQTTUser, MQTTPassword string
	// InfluxToken is what the processor and the dashboard send InfluxDB.
	InfluxToken string
	// DashboardToken guards the dashboard's API.
	DashboardToken string
}

// Launcher starts and stops one pipeline.
type Launcher struct {
	// Dir holds the services' logs (<Dir>/<name>.log) and is their
	// working directory. Required.
	Dir string
	// Bin is the directory of the binaries, named after their kind; Bins
	// overrides the path of a kind.
	Bin  string
	Bins map[string]string
	// Host is the address the services listen on; default 127.0.0.1.
	Host string

	// NATS, when set, is the NATS server StartServers starts (Security
	// adds its TLS and auth configuration): embedded in this process, or,
	// with NATSBin (a nats-server binary, devenv.BuildNATSServer), as a
	// process of its own, as the cluster runs it. Else NATSURL is where the
	// services reach NATS (comma-separated for a cluster).
	NATS    *devenv.NATSOptions
	NATSBin string
	NATSURL string
	// Mosquitto, when set, is the broker StartServers starts (Security
	// makes it the TLS-only, password-checking one); else MQTTURL is the
	// broker ingest reads.
	Mosquitto *devenv.MosquittoOptions
	MQTTURL   string
	// Influx, when set, is the InfluxDB StartServers starts; else
	// InfluxURL is the one the processor and the dashboard use.
	Influx    *devenv.InfluxOptions
	InfluxURL string

	// Bucket and RawBucket are EDGEFLOW_INFLUX_BUCKET and _RAW_BUCKET;
	// empty leaves the services' default.
	Bucket, RawBucket string
	// Rules is the notifier's rules file (EDGEFLOW_RULES).
	Rules string
	// LogLevel is every service's EDGEFLOW_LOG_LEVEL; empty leaves the
	// default.
	LogLevel string
	// StreamReplicas, when above 0, is EDGEFLOW_STREAM_REPLICAS.
	StreamReplicas int
	// Pprof serves /debug/pprof/ on every service's HTTP address.
	Pprof bool
	// Scrape are the kinds of the services the dashboard's pipeline page
	// reads, of those started before it, in start order; default ingest,
	// processor and notifier.
	Scrape []string
	// Env is added to every service's environment after the launcher's
	// own variables, Overrides[kind] after Env, Service.Env last: a later
	// entry wins.
	Env       []string
	Overrides map[string][]string
	// Security, when set, runs the shipped security mode.
	Security *Security
	// ReadyTimeout and StopTimeout are the services' (devenv's defaults
	// when 0).
	ReadyTimeout, StopTimeout time.Duration
	// Log, when set, hears every process Stop stops.
	Log *slog.Logger

	mu       sync.Mutex
	nats     *server.Server
	natsProc *devenv.NATSServer
	mqtt     *devenv.Process
	influx   *devenv.Process
	services []*devenv.Process
	kinds    map[*devenv.Process]string
}

// Service is one service process to start.
type Service struct {
	// Kind is Ingest, Processor, Notifier or Dashboard. Required.
	Kind string
	// Name labels the process and its log; default Kind.
	Name string
	// ID is the processor's or notifier's EDGEFLOW_<KIND>_ID or ingest's
	// MQTT client ID; default Name.
	ID string
	// Port is the HTTP port; 0 takes a free one.
	Port int
	// Env comes last, after the launcher's Env and Overrides.
	Env []string
	// ReadyPath is polled until it answers 2xx; default /readyz.
	ReadyPath string
}

func (l *Launcher) host() string {
	if l.Host == "" {
		return "127.0.0.1"
	}
	return l.Host
}

// StartServers starts the servers the launcher was given options for, in
// the order the services need them: NATS, Mosquitto, InfluxDB. Their URLs
// fill NATSURL, MQTTURL and InfluxURL.
func (l *Launcher) StartServers(ctx context.Context) error {
	if l.NATS != nil {
		if err := l.startNATS(ctx); err != nil {
			return err
		}
	}
	if l.Mosquitto != nil {
		opts := *l.Mosquitto
		if s := l.Security; s != nil && opts.Secure == nil {
			opts.Secure = &devenv.MosquittoSecurity{PasswordFile: s.MQTTPasswordFile, CertFile: s.Cert, KeyFile: s.Key, CAFile: s.CA}
		}
		p, err := devenv.StartMosquitto(ctx, opts)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.mqtt = p
		l.MQTTURL = p.URL
		l.mu.Unlock()
	}
	if l.Influx != nil {
		p, err := devenv.StartInfluxDB(ctx, *l.Influx)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.influx = p
		l.InfluxURL = p.URL
		l.mu.Unlock()
	}
	return nil
}

func (l *Launcher) startNATS(ctx context.Context) error {
	opts := *l.NATS
	if s := l.Security; s != nil {
		if opts.AuthConfig == "" {
			opts.AuthConfig = s.NATSAuthConfig
		}
		if opts.TLS == nil {
			opts.TLS = &devenv.NATSTLS{Cert: s.Cert, Key: s.Key}
		}
	}
	if l.NATSBin != "" {
		p, err := devenv.StartNATSServer(ctx, l.NATSBin, opts)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.natsProc = p
		l.NATSURL = p.URL
		l.mu.Unlock()
		return nil
	}
	ns, err := devenv.StartNATS(opts)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.nats = ns
	l.NATSURL = ns.ClientURL()
	l.mu.Unlock()
	return nil
}

// NATSServer is the embedded NATS server, or nil.
func (l *Launcher) NATSServer() *server.Server {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nats
}

// NATSProcess is the NATS server process (NATSBin), or nil.
func (l *Launcher) NATSProcess() *devenv.NATSServer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.natsProc
}

// StopNATS shuts the NATS server down, embedded or a process (SIGTERM,
// SIGKILL after the process's StopTimeout).
func (l *Launcher) StopNATS() error {
	if ns := l.NATSServer(); ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	if p := l.NATSProcess(); p != nil {
		// A process left paused (SIGSTOP) must be resumed to hear SIGTERM.
		_ = p.Resume()
		return p.Stop(context.Background())
	}
	return nil
}

// RestartNATS starts the NATS server again with the same options (a fixed
// NATSOptions.Port keeps NATSURL; the store is kept).
func (l *Launcher) RestartNATS() error {
	if err := l.StopNATS(); err != nil {
		return err
	}
	return l.startNATS(context.Background())
}

// MQTT is the broker StartServers started, or nil.
func (l *Launcher) MQTT() *devenv.Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mqtt
}

// InfluxDB is the InfluxDB StartServers started, or nil.
func (l *Launcher) InfluxDB() *devenv.Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.influx
}

// ServiceEnv is the environment of one service listening on addr, on top of the
// inherited one: what joins it to the servers, its identity, the security
// mode's credentials, then Env, Overrides[s.Kind] and s.Env.
func (l *Launcher) ServiceEnv(s Service, addr string) []string {
	name := s.Name
	if name == "" {
		name = s.Kind
	}
	id := s.ID
	if id == "" {
		id = name
	}
	kind := strings.ToUpper(s.Kind)
	env := []string{
		"EDGEFLOW_NATS_URL=" + l.NATSURL,
		"EDGEFLOW_" + kind + "_HTTP_ADDR=" + addr,
	}
	if l.StreamReplicas > 0 {
		env = append(env, "EDGEFLOW_STREAM_REPLICAS="+strconv.Itoa(l.StreamReplicas))
	}
	if l.LogLevel != "" {
		env = append(env, "EDGEFLOW_LOG_LEVEL="+l.LogLevel)
	}
	if l.Pprof {
		env = append(env, "EDGEFLOW_PPROF=true")
	}
	sec := l.Security
	if sec != nil {
		env = append(env, "EDGEFLOW_NATS_USER="+s.Kind, "EDGEFLOW_NATS_PASSWORD="+sec.NATSPasswords[s.Kind],
			"EDGEFLOW_NATS_TLS_CA="+sec.CA)
	}
	influx := func() {
		env = append(env, "EDGEFLOW_INFLUX_URL="+l.InfluxURL)
		if l.Bucket != "" {
			env = append(env, "EDGEFLOW_INFLUX_BUCKET="+l.Bucket)
		}
		if l.RawBucket != "" {
			env = append(env, "EDGEFLOW_INFLUX_RAW_BUCKET="+l.RawBucket)
		}
		if sec != nil {
			env = append(env, "EDGEFLOW_INFLUX_TOKEN="+sec.InfluxToken)
		}
	}
	switch s.Kind {
	case Ingest:
		env = append(env, "EDGEFLOW_MQTT_URL="+l.MQTTURL, "EDGEFLOW_INGEST_CLIENT_ID="+id)
		if sec != nil {
			env = append(env, "EDGEFLOW_MQTT_USERNAME="+sec.MQTTUser, "EDGEFLOW_MQTT_PASSWORD="+sec.MQTTPassword,
				"EDGEFLOW_MQTT_TLS_CA="+sec.CA)
		}
	case Processor:
		env = append(env, "EDGEFLOW_PROCESSOR_ID="+id)
		influx()
	case Notifier:
		env = append(env, "EDGEFLOW_NOTIFIER_ID="+id)
		if l.Rules != "" {
			env = append(env, "EDGEFLOW_RULES="+l.Rules)
		}
	case Dashboard:
		influx()
		env = append(env, "EDGEFLOW_DASHBOARD_SERVICES="+l.scraped())
		if sec != nil {
			env = append(env, "EDGEFLOW_DASHBOARD_TOKEN="+sec.DashboardToken)
		}
	}
	env = append(env, l.Env...)
	env = append(env, l.Overrides[s.Kind]...)
	return append(env, s.Env...)
}

// scraped is EDGEFLOW_DASHBOARD_SERVICES: name=URL of every running service
// of the kinds in Scrape, in start order.
func (l *Launcher) scraped() string {
	kinds := l.Scrape
	if kinds == nil {
		kinds = []string{Ingest, Processor, Notifier}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, p := range l.services {
		if slices.Contains(kinds, l.kinds[p]) {
			out = append(out, p.Name+"="+p.URL)
		}
	}
	return strings.Join(out, ",")
}

// Start starts one service and waits until it is ready. Stop stops it with
// the others; stopping it earlier (Process.Stop) is fine.
func (l *Launcher) Start(ctx context.Context, s Service) (*devenv.Process, error) {
	if s.Kind == "" {
		return nil, errors.New("launcher: a service without a Kind")
	}
	if s.Name == "" {
		s.Name = s.Kind
	}
	bin := l.Bins[s.Kind]
	if bin == "" {
		bin = filepath.Join(l.Bin, s.Kind)
	}
	port := s.Port
	if port == 0 {
		var err error
		if port, err = devenv.FreePort(); err != nil {
			return nil, err
		}
	}
	addr := l.host() + ":" + strconv.Itoa(port)
	ready := s.ReadyPath
	if ready == "" {
		ready = "/readyz"
	}
	p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
		Name: s.Name, Bin: bin, Dir: l.Dir, Addr: addr, URL: "http://" + addr,
		Env:      l.ServiceEnv(s, addr),
		ReadyURL: "http://" + addr + ready, ReadyTimeout: l.ReadyTimeout, StopTimeout: l.StopTimeout,
	})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = map[*devenv.Process]string{}
	}
	l.services = append(l.services, p)
	l.kinds[p] = s.Kind
	return p, nil
}

// Services are the services started, in start order.
func (l *Launcher) Services() []*devenv.Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.services)
}

// drainRank orders the stop: what reads the pipeline first, then ingest
// (its queue drains into JetStream), then the processors (their last flush
// reaches InfluxDB).
func drainRank(kind string) int {
	switch kind {
	case Ingest:
		return 1
	case Processor:
		return 2
	}
	return 0
}

// Stop stops every service (SIGTERM, SIGKILL after StopTimeout) in drain
// order, then InfluxDB and Mosquitto, then NATS. It returns every error;
// each process is stopped whatever the others did.
func (l *Launcher) Stop(ctx context.Context) error {
	l.mu.Lock()
	procs := slices.Clone(l.services)
	slices.SortStableFunc(procs, func(a, b *devenv.Process) int { return drainRank(l.kinds[a]) - drainRank(l.kinds[b]) })
	for _, p := range []*devenv.Process{l.influx, l.mqtt} {
		if p != nil {
			procs = append(procs, p)
		}
	}
	l.mu.Unlock()
	var errs []error
	for _, p := range procs {
		// A process left paused (SIGSTOP) must be resumed to hear SIGTERM.
		_ = p.Resume()
		err := p.Stop(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", p.Name, err))
		}
		if l.Log != nil {
			if err != nil {
				l.Log.Warn("stop", "process", p.Name, "err", err)
			}
			l.Log.Info("stopped", "process", p.Name)
		}
	}
	if l.NATSServer() != nil || l.NATSProcess() != nil {
		if err := l.StopNATS(); err != nil {
			errs = append(errs, fmt.Errorf("stop nats: %w", err))
		}
		if l.Log != nil {
			l.Log.Info("nats stopped")
		}
	}
	return errors.Join(errs...)
}
