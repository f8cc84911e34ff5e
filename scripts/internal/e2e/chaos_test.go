package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/chaos"
)

// The suite's chaos run (docs/chaos.md; `go tool task chaos` is the long
// one): a minute of load through the whole pipeline, built with -race, while
// a seeded fault loop SIGKILLs, gracefully restarts and pauses (SIGSTOP) its
// processes, NATS, Mosquitto (graceful restarts only) and InfluxDB included,
// and a device sends a reading dated 4 minutes ahead and 20,000 new devices
// send one reading each.
// Afterwards every acknowledged reading is counted exactly once in both
// window sizes, none is late, every alert change is notified exactly once
// and every process is ready again. The seed is random and logged;
// EDGEFLOW_CHAOS_SEED replays one.
func TestChaos(t *testing.T) {
	runChaos(t, 1)
}

// The same against a three-server NATS cluster (streams and buckets with
// three replicas, every service given the three URLs: the k3s-ha shape),
// with the NATS servers among the targets. Longer: it runs when
// EDGEFLOW_CHAOS_CLUSTER is set (`go tool task chaos -- -nats-servers 3` is
// the full run).
func TestChaosNATSCluster(t *testing.T) {
	if os.Getenv("EDGEFLOW_CHAOS_CLUSTER") == "" {
		t.Skip("set EDGEFLOW_CHAOS_CLUSTER=1 to run chaos against a three-server NATS cluster")
	}
	runChaos(t, 3)
}

// natsServer is built once for the package, beside the services.
var natsServer struct {
	once sync.Once
	path string
	err  error
}

func runChaos(t *testing.T, natsServers int) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	requireServers(t)
	natsServer.once.Do(func() {
		natsServer.path, natsServer.err = devenv.BuildNATSServer(context.Background(), bins.dir)
	})
	if natsServer.err != nil {
		t.Fatal(natsServer.err)
	}

	seed := rand.Uint64N(1 << 53)
	if s := os.Getenv("EDGEFLOW_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("EDGEFLOW_CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay: EDGEFLOW_CHAOS_SEED=%d)", seed, seed)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	sum, err := chaos.Run(ctx, chaos.Config{
		Bin: bins.dir, Dir: dir, Seed: seed, NATSServers: natsServers,
		// Modest for a loaded 2-core machine running -race binaries.
		Duration: 60 * time.Second, Devices: 30, Rate: 300, Processors: 2,
		Warmup: 6 * time.Second, Quiet: 10 * time.Second,
		MinGap: 2 * time.Second, MaxGap: 4 * time.Second, MaxDown: 4 * time.Second,
		// The harness's short windows; the idle grace covers the longest
		// outage (a restart on a busy machine), as docs/decisions.md says.
		Windows: []string{"2s", "10s"}, Lateness: 2 * time.Second, IdleGrace: 20 * time.Second,
		SettleTimeout: 3 * time.Minute,
		// The input faults take their defaults: a reading dated 4 min
		// ahead, and 20,000 new devices at once (about 2,500 a partition,
		// past what one checkpoint value held before chunks).
		Race: true,
		Log:  testLog{t},
	})
	if err != nil {
		saveLogs(t, dir)
		t.Fatal(err)
	}
	var b strings.Builder
	sum.WriteText(&b)
	t.Log("\n" + b.String())
	if !sum.Pass {
		saveLogs(t, dir)
		t.Fatalf("chaos run with seed %d failed: %s", seed, strings.Join(sum.Problems, "; "))
	}
}

// testLog sends the run's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// saveLogs keeps every process's log of a failed run in test-artifacts/.
func saveLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	more, _ := filepath.Glob(filepath.Join(dir, "nats", "*", "*.log"))
	for _, l := range append(logs, more...) {
		if b, err := os.ReadFile(l); err == nil {
			saveArtifact(t, filepath.Base(filepath.Dir(l))+"-"+filepath.Base(l), string(b))
		}
	}
}
