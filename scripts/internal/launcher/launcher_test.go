package launcher

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgeflow/edgeflow/devenv"
)

// lookup is the value a process started with env would see for key: the
// last entry wins, as in os/exec.
func lookup(env []string, key string) (string, bool) {
	for _, e := range slices.Backward(env) {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v, true
		}
	}
	return "", false
}

func TestServiceEnv(t *testing.T) {
	l := &Launcher{
		NATSURL: "nats://n1,nats://n2", MQTTURL: "tcp://127.0.0.1:1883", InfluxURL: "http://127.0.0.1:8086",
		Bucket: "db", RawBucket: "db/raw", Rules: "/r.yaml", LogLevel: "warn", StreamReplicas: 3, Pprof: true,
		Env:       []string{"GORACE=atexit_sleep_ms=0"},
		Overrides: map[string][]string{Processor: {"EDGEFLOW_PROCESSOR_LEASE_TTL=3s", "EDGEFLOW_PROCESSOR_ID=overridden"}},
	}
	want := map[string]map[string]string{
		Ingest: {"EDGEFLOW_MQTT_URL": "tcp://127.0.0.1:1883", "EDGEFLOW_INGEST_CLIENT_ID": "ingest-a",
			"EDGEFLOW_INGEST_HTTP_ADDR": "127.0.0.1:9", "EDGEFLOW_INFLUX_URL": ""},
		Processor: {"EDGEFLOW_PROCESSOR_ID": "from-service", "EDGEFLOW_INFLUX_URL": "http://127.0.0.1:8086",
			"EDGEFLOW_INFLUX_BUCKET": "db", "EDGEFLOW_INFLUX_RAW_BUCKET": "db/raw", "EDGEFLOW_PROCESSOR_LEASE_TTL": "3s"},
		Notifier:  {"EDGEFLOW_NOTIFIER_ID": "notifier", "EDGEFLOW_RULES": "/r.yaml", "EDGEFLOW_MQTT_URL": ""},
		Dashboard: {"EDGEFLOW_INFLUX_BUCKET": "db", "EDGEFLOW_DASHBOARD_TOKEN": ""},
	}
	services := map[string]Service{
		Ingest:    {Kind: Ingest, Name: "ingest-a"},
		Processor: {Kind: Processor, Name: "processor-1", ID: "p1", Env: []string{"EDGEFLOW_PROCESSOR_ID=from-service"}},
		Notifier:  {Kind: Notifier},
		Dashboard: {Kind: Dashboard},
	}
	for kind, vars := range want {
		env := l.ServiceEnv(services[kind], "127.0.0.1:9")
		for _, common := range [][2]string{{"EDGEFLOW_NATS_URL", "nats://n1,nats://n2"}, {"EDGEFLOW_LOG_LEVEL", "warn"},
			{"EDGEFLOW_STREAM_REPLICAS", "3"}, {"EDGEFLOW_PPROF", "true"}, {"GORACE", "atexit_sleep_ms=0"},
			{"EDGEFLOW_" + strings.ToUpper(kind) + "_HTTP_ADDR", "127.0.0.1:9"}} {
			if got, _ := lookup(env, common[0]); got != common[1] {
				t.Errorf("%s: %s=%q, want %q", kind, common[0], got, common[1])
			}
		}
		for k, v := range vars {
			got, ok := lookup(env, k)
			if v == "" && ok {
				t.Errorf("%s: %s=%q set, want it unset", kind, k, got)
			} else if v != "" && got != v {
				t.Errorf("%s: %s=%q, want %q", kind, k, got, v)
			}
		}
		if _, ok := lookup(env, "EDGEFLOW_NATS_USER"); ok {
			t.Errorf("%s: a NATS user without Security", kind)
		}
	}
}

func TestServiceEnvSecurity(t *testing.T) {
	l := &Launcher{Security: &Security{CA: "/ca.crt", NATSPasswords: map[string]string{Ingest: "pi", Dashboard: "pd"},
		MQTTUser: "ingest", MQTTPassword: "pm", InfluxToken: "tok", DashboardToken: "dt"}}
	for kind, want := range map[string]map[string]string{
		Ingest: {"EDGEFLOW_NATS_USER": "ingest", "EDGEFLOW_NATS_PASSWORD": "pi", "EDGEFLOW_NATS_TLS_CA": "/ca.crt",
			"EDGEFLOW_MQTT_USERNAME": "ingest", "EDGEFLOW_MQTT_PASSWORD": "pm", "EDGEFLOW_MQTT_TLS_CA": "/ca.crt"},
		Dashboard: {"EDGEFLOW_NATS_USER": "dashboard", "EDGEFLOW_NATS_PASSWORD": "pd", "EDGEFLOW_INFLUX_TOKEN": "tok",
			"EDGEFLOW_DASHBOARD_TOKEN": "dt"},
	} {
		env := l.ServiceEnv(Service{Kind: kind}, "127.0.0.1:9")
		for k, v := range want {
			if got, _ := lookup(env, k); got != v {
				t.Errorf("%s: %s=%q, want %q", kind, k, got, v)
			}
		}
	}
}

func TestScrapedInStartOrder(t *testing.T) {
	l := &Launcher{kinds: map[*devenv.Process]string{}}
	for _, s := range []struct{ name, kind string }{{"ingest", Ingest}, {"processor-0", Processor}, {"notifier", Notifier}} {
		p := &devenv.Process{Name: s.name, URL: "http://" + s.name}
		l.services = append(l.services, p)
		l.kinds[p] = s.kind
	}
	if got, want := l.scraped(), "ingest=http://ingest,processor-0=http://processor-0,notifier=http://notifier"; got != want {
		t.Errorf("scraped %q, want %q", got, want)
	}
	l.Scrape = []string{Ingest, Processor}
	if got, want := l.scraped(), "ingest=http://ingest,processor-0=http://processor-0"; got != want {
		t.Errorf("scraped with Scrape %v: %q, want %q", l.Scrape, got, want)
	}
}

// With NATSBin, StartServers runs NATS as a nats-server process of its own
// (not embedded), the services' NATSURL is that process's, and Stop stops it.
func TestNATSAsAProcess(t *testing.T) {
	bin, err := devenv.BuildNATSServer(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := &Launcher{Dir: filepath.Join(dir, "logs"), NATSBin: bin,
		NATS: &devenv.NATSOptions{StoreDir: filepath.Join(dir, "nats"), SyncInterval: time.Second}}
	if err := l.StartServers(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := l.NATSProcess()
	if p == nil || l.NATSServer() != nil {
		t.Fatalf("process %v, embedded %v: want the process only", p, l.NATSServer())
	}
	if p.Pid() == os.Getpid() || l.NATSURL != p.URL {
		t.Errorf("pid %d (this one %d), NATSURL %q, process URL %q", p.Pid(), os.Getpid(), l.NATSURL, p.URL)
	}
	nc, err := nats.Connect(l.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("nats-server still runs after Stop")
	}
}
