// Command chaos runs the whole local pipeline under the load generator while
// it kills, restarts and pauses its processes at random (seeded), then
// checks that every acknowledged reading was counted exactly once, none was
// late, every alert was notified once and every service is ready again.
// `go tool task chaos` runs it; docs/chaos.md describes the method.
//
//	go tool task chaos -- -duration 5m -seed 42
//	go tool task chaos -- -nats-servers 3 -targets nats-2 -kinds kill
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	root, err := devenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	var (
		cfg     chaos.Config
		seed    = flag.Uint64("seed", 0, "seed of the fault sequence (0: a random one, printed)")
		targets = flag.String("targets", "", "comma-separated targets (or prefixes: nats, processor) to fault; empty: all")
		kinds   = flag.String("kinds", "", "comma-separated fault kinds (kill, restart, pause); empty: all a target allows")
		windows = flag.String("windows", "10s,1m", "the processors' window lengths; each must count every reading")
		out     = flag.String("out", filepath.Join(root, "chaos", "results"), "where the JSON and Markdown summaries go")
		keep    = flag.Bool("keep", false, "keep the data directories and logs (printed) instead of deleting them")
	)
	flag.StringVar(&cfg.Bin, "bin", filepath.Join(root, ".bin"), "where ingest, processor, notifier, dashboard, loadgen and nats-server are")
	flag.DurationVar(&cfg.Duration, "duration", chaos.DefaultDuration, "how long the load runs (faults stop -quiet before its end)")
	flag.IntVar(&cfg.Devices, "devices", chaos.DefaultDevices, "devices of the load generator")
	flag.Float64Var(&cfg.Rate, "rate", chaos.DefaultRate, "messages per second of the load generator")
	flag.IntVar(&cfg.Processors, "processors", chaos.DefaultProcessors, "processor replicas")
	flag.IntVar(&cfg.NATSServers, "nats-servers", 1, "1, or 3 for a cluster (streams and buckets with 3 replicas)")
	flag.DurationVar(&cfg.Warmup, "warmup", 15*time.Second, "load before the first fault")
	flag.DurationVar(&cfg.Quiet, "quiet", 30*time.Second, "load after the last recovery, without faults")
	flag.DurationVar(&cfg.MinGap, "min-gap", 5*time.Second, "shortest time between a recovery and the next fault")
	flag.DurationVar(&cfg.MaxGap, "max-gap", 15*time.Second, "longest time between a recovery and the next fault")
	flag.DurationVar(&cfg.MaxDown, "max-down", chaos.DefaultMaxDown, "longest a target stays down or paused (each fault draws from a quarter of it to all of it)")
	flag.DurationVar(&cfg.Lateness, "lateness", chaos.DefaultLateness, "EDGEFLOW_PROCESSOR_LATENESS")
	flag.DurationVar(&cfg.IdleGrace, "idle-grace", chaos.DefaultIdleGrace, "EDGEFLOW_PROCESSOR_IDLE_GRACE (must cover the longest outage)")
	flag.IntVar(&cfg.Burst, "burst", chaos.DefaultBurst, "new devices the device burst publishes one reading each for (an input fault; -1: none)")
	flag.DurationVar(&cfg.FutureSkew, "future-skew", chaos.DefaultFutureSkew, "how far ahead the future-dated reading is dated (an input fault; -1s: none)")
	flag.DurationVar(&cfg.FreshWithin, "fresh-within", chaos.DefaultFreshWithin, "the backlog counts as drained when every device's newest reading in InfluxDB is this fresh")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chaos: unexpected argument %q\n", flag.Arg(0))
		return 2
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64N(1 << 53) // printable exactly in JSON
	}
	cfg.Targets = split(*targets)
	cfg.Kinds = split(*kinds)
	cfg.Windows = split(*windows)
	cfg.Log = os.Stdout
	for _, b := range []string{"ingest", "processor", "notifier", "dashboard", "loadgen", "nats-server"} {
		if _, err := os.Stat(filepath.Join(cfg.Bin, b)); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: no %s in %s: run go tool task chaos (it builds them)\n", b, cfg.Bin)
			return 2
		}
	}
	if _, err := devenv.MosquittoBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if _, err := devenv.InfluxdBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "edgeflow-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	cfg.Dir = dir
	fmt.Printf("chaos: seed %d (replay with -seed %d); data and logs in %s\n", cfg.Seed, cfg.Seed, dir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintf(os.Stderr, "chaos: logs kept in %s\n", dir)
		return 1
	}
	fmt.Println()
	sum.WriteText(os.Stdout)
	base, err := sum.WriteFiles(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: write the summary:", err)
	} else {
		fmt.Printf("summary: %s.md, %s.json\n", base, base)
	}
	if *keep || !sum.Pass {
		fmt.Printf("data and logs kept in %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	if !sum.Pass {
		return 1
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
