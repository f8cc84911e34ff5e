// Command footprint measures, on the dev cluster (a real Kubernetes 1.34, each
// upstream component its own process), what the cluster costs next to what it
// runs, then runs the day-to-day management commands on it and records what
// they did. task footprint calls it; docs/k3s-vs-kubernetes.md reports it.
//
// The run, from a wiped dev cluster:
//
//  1. the cluster alone (control plane, node daemons, CoreDNS), idle;
//  2. task deploy OVERLAY=devcluster, measured while it runs;
//  3. the pipeline deployed, idle;
//  4. the pipeline under load: the load generator through the TLS NodePort;
//  5. the management tour (manage.go): logs, scale, rolling update, rollback,
//     self-healing, node loss, drain, remote access, backup and restore,
//     secret encryption, a control-plane restart.
//
// Every component and pod is read the same way, from /proc (RSS, PSS, CPU
// time; internal/footprint), every -every. The report goes to bench/results/
// as footprint-<time>.json, .md and .svg (memory per component and phase).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeflow/edgeflow/internal/devenv"
	"github.com/edgeflow/edgeflow/internal/footprint"
)

// nodeIP and mqttNodePort are where the devcluster overlay's broker answers.
const (
	nodeIP       = "172.30.250.2"
	mqttNodePort = 30883
)

// Report is what a run measured and did.
type Report struct {
	Started  time.Time         `json:"started"`
	Machine  Machine           `json:"machine"`
	Phases   []footprint.Phase `json:"phases"`
	Deploy   time.Duration     `json:"deploy"`
	Load     LoadResult        `json:"load"`
	Tour     []ManageStep      `json:"tour,omitempty"`
	Problems []string          `json:"problems,omitempty"`
	Options  map[string]string `json:"options"`
}

// Machine is where the numbers come from.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
	Kernel     string `json:"kernel"`
	Kubernetes string `json:"kubernetes"`
}

// LoadResult is the load generator's account of the loaded phase.
type LoadResult struct {
	Rate     float64 `json:"rate"`
	Devices  int     `json:"devices"`
	Achieved float64 `json:"achieved_rate"`
	Acked    int64   `json:"acked"`
	Failed   int64   `json:"failed"`
}

type run struct {
	root, dcDir, kubeconfig string
	every                   time.Duration
	report                  *Report
}

func main() {
	root, err := devenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	var (
		idle    = flag.Duration("idle", 60*time.Second, "how long each idle phase is measured")
		load    = flag.Duration("load", 90*time.Second, "how long the load phase publishes")
		rate    = flag.Float64("rate", 1000, "msgs/s of the load phase (QoS 1)")
		devices = flag.Int("devices", 100, "devices of the load generator")
		every   = flag.Duration("every", 2*time.Second, "sampling interval")
		tour    = flag.Bool("tour", true, "run the management tour after the measurements")
		keep    = flag.Bool("keep", false, "leave the dev cluster running with the pipeline at the end (default: wipe it)")
		out     = flag.String("out", filepath.Join(root, "bench", "results"), "where the report goes")
	)
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(fmt.Errorf("the dev cluster and /proc of its processes need root"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &run{root: root, dcDir: envOr("DEVCLUSTER_DIR", "/tmp/edgeflow-devcluster"), every: *every,
		report: &Report{Started: time.Now().UTC(), Options: map[string]string{
			"idle": idle.String(), "load": load.String(), "rate": fmt.Sprint(*rate), "devices": fmt.Sprint(*devices), "every": every.String()}}}
	useDevClusterKubectl(r.dcDir)
	err = r.measure(ctx, *idle, *load, *rate, *devices)
	if err == nil && *tour {
		logf("management tour")
		r.report.Tour = manageTour(ctx, r.root, r.kubeconfig, r.dcDir, logf)
	}
	if err != nil {
		r.report.Problems = append(r.report.Problems, err.Error())
	}
	base, werr := r.write(*out)
	if werr != nil {
		logf("write the report: %v", werr)
	} else {
		logf("report: %s.md, %s.json, %s.svg", base, base, base)
	}
	if !*keep {
		logf("wiping the dev cluster (-keep leaves it running)")
		if err := r.sh(context.Background(), "bash", "scripts/devcluster/down.sh", "--wipe"); err != nil {
			logf("wipe: %v", err)
		}
	}
	if err != nil || werr != nil {
		os.Exit(1)
	}
}

// measure runs the four measured phases from a wiped dev cluster.
func (r *run) measure(ctx context.Context, idle, load time.Duration, rate float64, devices int) error {
	logf("wiping and starting the dev cluster")
	if err := r.sh(ctx, "bash", "scripts/devcluster/down.sh", "--wipe"); err != nil {
		return err
	}
	out, err := r.output(ctx, nil, "bash", "scripts/devcluster/up.sh")
	if err != nil {
		return err
	}
	kc, ok := strings.CutPrefix(strings.TrimSpace(out), "export KUBECONFIG=")
	if !ok {
		return fmt.Errorf("up.sh printed %q, not export KUBECONFIG=...", out)
	}
	r.kubeconfig = kc
	r.report.Machine = r.machine(ctx)
	sampler, err := r.sampler()
	if err != nil {
		return err
	}
	settle := 10 * time.Second
	sleep(ctx, settle)
	wait := func(ctx context.Context) error { sleep(ctx, idle); return ctx.Err() }
	if err := r.phase(ctx, sampler, "cluster only, idle", wait); err != nil {
		return err
	}

	t0 := time.Now()
	if err := r.phase(ctx, sampler, "task deploy", func(ctx context.Context) error {
		return r.sh(ctx, "go", "tool", "task", "deploy", "OVERLAY=devcluster", "KUBECONFIG="+r.kubeconfig)
	}); err != nil {
		return fmt.Errorf("task deploy: %w", err)
	}
	r.report.Deploy = time.Since(t0)
	logf("deployed in %s", r.report.Deploy.Round(time.Second))
	sleep(ctx, settle)
	if err := r.phase(ctx, sampler, "pipeline idle", wait); err != nil {
		return err
	}
	return r.phase(ctx, sampler, fmt.Sprintf("pipeline under load (%.0f msgs/s)", rate), func(ctx context.Context) error {
		res, err := r.loadgen(ctx, rate, devices, load)
		r.report.Load = res
		return err
	})
}

// phase samples every component and pod while fn runs and adds the phase to
// the report.
func (r *run) phase(ctx context.Context, s *footprint.Sampler, name string, fn func(context.Context) error) error {
	logf("phase: %s", name)
	var (
		snaps []footprint.Snapshot
		mu    sync.Mutex
		wg    sync.WaitGroup
	)
	done := make(chan struct{})
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(r.every)
		defer tick.Stop()
		for {
			snap, err := s.Snapshot()
			if err != nil {
				mu.Lock()
				r.report.Problems = append(r.report.Problems, fmt.Sprintf("%s: %v", name, err))
				mu.Unlock()
			}
			mu.Lock()
			snaps = append(snaps, snap)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	err := fn(ctx)
	close(done)
	wg.Wait()
	r.report.Phases = append(r.report.Phases, footprint.Phase{Name: name, Duration: time.Since(start), Samples: len(snaps), Stats: footprint.Summarise(snaps)})
	return err
}

// sampler reads the components' pid files and names pods through the API.
func (r *run) sampler() (*footprint.Sampler, error) {
	pids, err := footprint.ReadPIDFiles(filepath.Join(r.dcDir, "run", "pids"))
	if err != nil {
		return nil, err
	}
	return &footprint.Sampler{PIDs: pids, Pods: footprint.PodsFromAPI(r.kubeconfig)}, nil
}

// loadgen publishes through the broker's NodePort as the device user, with
// the credentials task deploy generated.
func (r *run) loadgen(ctx context.Context, rate float64, devices int, d time.Duration) (LoadResult, error) {
	res := LoadResult{Rate: rate, Devices: devices}
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("footprint-loadgen-%d", os.Getpid()))
	defer os.Remove(bin)
	if err := r.sh(ctx, "go", "build", "-o", bin, "./scripts/loadgen"); err != nil {
		return res, err
	}
	secrets := filepath.Join(r.root, ".build", "secrets", "devcluster")
	pass, err := os.ReadFile(filepath.Join(secrets, "edgeflow-mqtt", "device-password"))
	if err != nil {
		return res, err
	}
	reportFile := bin + ".json"
	defer os.Remove(reportFile)
	if err := r.sh(ctx, bin, "-broker", fmt.Sprintf("ssl://%s:%d", nodeIP, mqttNodePort),
		"-cafile", filepath.Join(secrets, "edgeflow-mqtt-tls", "ca.crt"), "-username", "device", "-password", strings.TrimSpace(string(pass)),
		"-client-prefix", fmt.Sprintf("footprint-%d", time.Now().Unix()), "-devices", fmt.Sprint(devices),
		"-rate", fmt.Sprint(rate), "-duration", d.String(), "-report", reportFile); err != nil {
		return res, err
	}
	data, err := os.ReadFile(reportFile)
	if err != nil {
		return res, err
	}
	var lr struct {
		Totals struct {
			Acked  int64 `json:"acked"`
			Failed int64 `json:"failed"`
		} `json:"totals"`
		AchievedRate float64 `json:"achieved_rate"`
	}
	if err := json.Unmarshal(data, &lr); err != nil {
		return res, err
	}
	res.Achieved, res.Acked, res.Failed = lr.AchievedRate, lr.Totals.Acked, lr.Totals.Failed
	if res.Failed != 0 {
		return res, fmt.Errorf("load generator: %d of %d messages not acknowledged", res.Failed, res.Acked+res.Failed)
	}
	return res, nil
}

// machine describes this machine and the cluster's version.
func (r *run) machine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		m.MemTotal = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := r.output(ctx, []string{"KUBECONFIG=" + r.kubeconfig}, "kubectl", "get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.kubeletVersion}"); err == nil {
		m.Kubernetes = strings.TrimSpace(out)
	}
	return m
}

// write saves the report as JSON, Markdown and the figure.
func (r *run) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, "footprint-"+r.report.Started.Format("20060102-150405"))
	data, err := json.MarshalIndent(r.report, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".json", data, 0o644); err != nil {
		return "", err
	}
	var md strings.Builder
	r.report.writeMarkdown(&md)
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return "", err
	}
	f, err := os.Create(base + ".svg")
	if err != nil {
		return "", err
	}
	title := fmt.Sprintf("Memory per component: upstream Kubernetes %s dev cluster and the edgeflow pipeline", r.report.Machine.Kubernetes)
	if err := footprint.WriteSVG(f, title, r.report.Phases); err != nil {
		f.Close()
		return "", err
	}
	return base, f.Close()
}

func (rep *Report) writeMarkdown(b *strings.Builder) {
	m := rep.Machine
	fmt.Fprintf(b, "# Footprint of the dev cluster and the pipeline, %s\n\n", rep.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "Machine: %d CPUs (%s), %s, Linux %s. Kubernetes %s (scripts/devcluster). Options: %v.\n\n", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.Kubernetes, rep.Options)
	fmt.Fprintf(b, "task deploy took %s. Load phase: %.0f msgs/s asked of %d devices, %.0f achieved, %d acknowledged, %d failed.\n\n",
		rep.Deploy.Round(time.Second), rep.Load.Rate, rep.Load.Devices, rep.Load.Achieved, rep.Load.Acked, rep.Load.Failed)
	b.WriteString("RSS counts shared pages in full for every process that maps them (the five Kubernetes components are one `kubeall` binary here); PSS splits them, so PSS adds up. CPU is CPU seconds per second of the phase.\n\n")
	_ = footprint.WriteMarkdown(b, rep.Phases)
	if len(rep.Tour) > 0 {
		b.WriteString("## Management tour\n\n| step | command | took | observed |\n|---|---|--:|---|\n")
		for _, s := range rep.Tour {
			obs := s.Observed
			if s.Err != "" {
				obs += " **error:** " + s.Err
			}
			fmt.Fprintf(b, "| %s | `%s` | %s | %s |\n", s.Name, strings.ReplaceAll(s.Command, "|", `\|`), s.Took.Round(100*time.Millisecond), strings.ReplaceAll(obs, "|", `\|`))
		}
		b.WriteString("\n")
	}
	if len(rep.Problems) > 0 {
		b.WriteString("## Problems\n\n")
		for _, p := range rep.Problems {
			fmt.Fprintf(b, "- %s\n", p)
		}
	}
}

// sh runs a command from the repository root with its output on stderr.
func (r *run) sh(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+r.kubeconfig)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// output runs a command from the repository root and returns its standard output.
func (r *run) output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.root
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// useDevClusterKubectl puts the kit's kubectl on PATH when the machine has none.
func useDevClusterKubectl(dcDir string) {
	if _, err := exec.LookPath("kubectl"); err == nil {
		return
	}
	os.Setenv("PATH", filepath.Join(dcDir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "footprint: "+format+"\n", args...)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "footprint:", err)
	os.Exit(2)
}
