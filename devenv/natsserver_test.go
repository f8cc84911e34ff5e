package devenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSServerConfigIsTheEmbeddedServers reads the configuration file
// StartNATSServer runs as nats-server would and compares it with the
// options StartNATS gives the embedded server: the process must be the same
// server.
func TestNATSServerConfigIsTheEmbeddedServers(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"INGEST", "PROCESSOR", "NOTIFIER", "DASHBOARD"} {
		t.Setenv(user+"_PASSWORD", strings.ToLower(user)+"-secret")
	}
	for name, opts := range map[string]NATSOptions{
		"interval": {Port: 4333, HTTPPort: 8333, ProfPort: 9333, SyncInterval: time.Second, MaxPayload: 2 << 20, MQTTPort: 1999, Domain: "site"},
		"always": {Port: 4333, SyncAlways: true, ServerName: "n1", AuthConfig: filepath.Join(root, NATSAuthConfig),
			Cluster: &NATSCluster{Name: "c", Port: 6333, Routes: []string{"nats-route://127.0.0.1:6334", "nats-route://127.0.0.1:6335"}}},
	} {
		t.Run(name, func(t *testing.T) {
			opts.StoreDir = t.TempDir()
			want, err := serverOptions(opts)
			if err != nil {
				t.Fatal(err)
			}
			// Beside the configuration, as StartNATSServer copies it.
			dir := t.TempDir()
			if opts.AuthConfig != "" {
				b, err := os.ReadFile(opts.AuthConfig)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(opts.AuthConfig)), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			conf := filepath.Join(dir, "nats.conf")
			if err := os.WriteFile(conf, []byte(NATSServerConfig(opts)), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := server.ProcessConfigFile(conf)
			if err != nil {
				t.Fatalf("%v\n%s", err, NATSServerConfig(opts))
			}
			type view struct {
				Name, Host, StoreDir, Domain, MQTTHost, HTTPHost, Cluster, ClusterHost string
				Port, HTTPPort, ProfPort, MQTTPort, ClusterPort, Routes, Users         int
				JetStream, SyncAlways                                                  bool
				Sync                                                                   time.Duration
				MaxPayload                                                             int32
			}
			see := func(o *server.Options) view {
				return view{o.ServerName, o.Host, o.StoreDir, o.JetStreamDomain, o.MQTT.Host, o.HTTPHost, o.Cluster.Name, o.Cluster.Host,
					o.Port, o.HTTPPort, o.ProfPort, o.MQTT.Port, o.Cluster.Port, len(o.Routes), len(o.Users),
					o.JetStream, o.SyncAlways, o.SyncInterval, o.MaxPayload}
			}
			g, w := see(got), see(want)
			if w.SyncAlways {
				// The file's "always" also sets the interval (unused).
				g.Sync = w.Sync
			}
			if g != w {
				t.Errorf("nats-server reads\n%+v\nthe embedded server has\n%+v\nfrom:\n%s", g, w, NATSServerConfig(opts))
			}
			if opts.AuthConfig != "" && (w.Users == 0 || got.Users[0].Permissions == nil) {
				t.Errorf("no users or permissions from %s", opts.AuthConfig)
			}
		})
	}
}

// TestStartNATSServer runs the built nats-server as its own process: it is
// a child (not this process), JetStream stores in StoreDir with the sync
// policy given, and a stream survives a restart of the process.
func TestStartNATSServer(t *testing.T) {
	ctx := t.Context()
	bin, err := BuildNATSServer(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	s, err := StartNATSServer(ctx, bin, NATSOptions{StoreDir: store, SyncInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if s.Pid() <= 0 || s.Pid() == os.Getpid() {
		t.Errorf("pid %d, this process %d: not a process of its own", s.Pid(), os.Getpid())
	}
	if s.Name != DefaultNATSServerName {
		t.Errorf("process named %q, want %q", s.Name, DefaultNATSServerName)
	}
	publish := func() *jetstream.StreamInfo {
		t.Helper()
		js := connectJS(t, s.URL)
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "TEST", Subjects: []string{"t.>"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, "TEST")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	if n := publish().State.Msgs; n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(store, "jetstream")); err != nil {
		t.Errorf("JetStream does not store in StoreDir: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n := publish().State.Msgs; n != 2 {
		t.Errorf("%d messages after a restart, want 2", n)
	}
}
