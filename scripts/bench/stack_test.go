package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// NATS is measured as its own process, the nats-server the launcher
// started, not as the bench's: the bench is a member of its own, in no
// total.
func TestStackMeasuresNATSAsItsOwnProcess(t *testing.T) {
	if _, err := devenv.InfluxdBinary(); err != nil {
		devenv.RequireInstalled(t, err)
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if _, err := devenv.BuildNATSServer(t.Context(), bin); err != nil {
		t.Fatal(err)
	}
	stack := &Stack{Dir: t.TempDir(), Bin: bin, Root: root, SyncInterval: time.Second}
	t.Cleanup(func() {
		if err := stack.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if err := stack.StartServers(t.Context()); err != nil {
		devenv.RequireInstalled(t, err)
	}
	nats, self := stack.Member("nats"), stack.Member("bench")
	if nats == nil || self == nil {
		t.Fatalf("members %v: want nats and bench", stack.Members)
	}
	if p := stack.launcher.NATSProcess(); p == nil || nats.PID != p.Pid() || nats.PID == os.Getpid() {
		t.Errorf("nats measured at pid %d; the nats-server process %v, the bench %d", nats.PID, p, os.Getpid())
	}
	if self.PID != os.Getpid() || self.Role == "service" || self.Role == "server" {
		t.Errorf("bench member %+v", self)
	}
	if stack.launcher.NATSServer() != nil {
		t.Error("NATS embedded in the bench as well")
	}
	if got := stack.pipeline(); !slices.Equal(got, []string{"nats"}) {
		t.Errorf("pipeline before the services %v, want [nats]", got)
	}
}

// The pipeline's totals are the services and NATS, never the bench, the
// broker or the database.
func TestPipelineMembers(t *testing.T) {
	s := &Stack{Members: []*Member{{Name: "bench", Role: "bench"}, {Name: "nats", Role: "server"}, {Name: "mosquitto", Role: "server"},
		{Name: "influxd", Role: "server"}, {Name: "ingest", Role: "service"}, {Name: "processor", Role: "service"},
		{Name: "dashboard", Role: "service"}, {Name: "notifier", Role: "service"}}}
	want := []string{"ingest", "processor", "dashboard", "notifier", "nats"}
	if got := s.pipeline(); !slices.Equal(got, want) {
		t.Errorf("pipeline %v, want %v", got, want)
	}
}

// Without <Bin>/nats-server the bench says how to build it.
func TestStackNeedsNATSServer(t *testing.T) {
	s := &Stack{Dir: t.TempDir(), Bin: filepath.Join(t.TempDir(), "empty")}
	err := s.StartServers(t.Context())
	if err == nil || !strings.Contains(err.Error(), "nats-server not built") || !strings.Contains(err.Error(), devenv.NATSServerPackage) {
		t.Fatalf("started without nats-server: %v", err)
	}
}
