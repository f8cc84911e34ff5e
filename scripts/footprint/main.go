// Command footprint measures, on the dev cluster (a real Kubernetes 1.34.4,
// scripts/devcluster), what the cluster costs next to what it runs, in both
// of the kit's layouts one after the other: stock (etcd and each upstream
// component its own process) and K3s (one k3s-server process running kine on
// SQLite and the five components, as K3s assembles them), containerd beside
// either. The same pipeline and load on both; task footprint calls it;
// docs/k3s-vs-kubernetes.md reports it.
//
// Each layout, under the machine-wide cluster lock (-lock), from a wiped
// state:
//
//  1. up.sh, timed (to the node Ready and to the cluster ready);
//  2. the cluster alone (control plane, node daemons, add-ons), idle;
//  3. task deploy OVERLAY=devcluster, measured while it runs;
//  4. the pipeline deployed, idle;
//  5. the pipeline under load: the load generator through the TLS NodePort
//     at the layout's node IP;
//  6. the management tour (manage.go): the task verbs (status, logs, scale,
//     rollout, rollback) and self-healing; -tour full adds, on the stock
//     layout, node loss, drain, remote access, etcd backup and restore,
//     secret encryption and a control-plane restart;
//  7. the state's size on disk, then down.sh --wipe, and the lock released.
//
// Every component and pod is read the same way, from /proc (RSS, PSS, CPU
// time; scripts/internal/footprint), every -every. The report goes to bench/results/
// as footprint-<time>.json, .md (side by side, the claims' verdicts, each
// layout's phases and tour), .svg (memory per component and phase) and
// -time.svg (PSS over time of both layouts).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/footprint"
)

// mqttNodePort is where the devcluster overlay's broker answers, on the
// layout's node IP (scripts/devcluster/env.sh).
const mqttNodePort = 30883

// Report is what a run measured and did, layout by layout.
type Report struct {
	Started  time.Time         `json:"started"`
	Machine  Machine           `json:"machine"`
	Layouts  []*LayoutReport   `json:"layouts"`
	Problems []string          `json:"problems,omitempty"`
	Options  map[string]string `json:"options"`
}

// LayoutReport is one layout's measurements, load and tour.
type LayoutReport struct {
	footprint.Layout
	Dir      string       `json:"devcluster_dir"`
	NodeIP   string       `json:"node_ip"`
	Load     LoadResult   `json:"load"`
	Tour     []ManageStep `json:"tour,omitempty"`
	Problems []string     `json:"problems,omitempty"`
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

// options are the flags.
type options struct {
	idle, load, every time.Duration
	rate              float64
	devices           int
	tour              string
}

// run is one layout's run.
type run struct {
	root, dcDir, kubeconfig string
	every                   time.Duration
	start                   time.Time // up.sh began
	lr                      *LayoutReport
	mu                      sync.Mutex
}

func main() {
	root, err := devenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	var (
		o        options
		layouts  = flag.String("layouts", "stock,k3s", "the dev cluster layouts to measure, in order (scripts/devcluster: stock, k3s)")
		stockDir = flag.String("stock-dir", "/tmp/edgeflow-devcluster", "DEVCLUSTER_DIR of the stock layout")
		k3sDir   = flag.String("k3s-dir", "/tmp/edgeflow-devcluster-k3s", "DEVCLUSTER_DIR of the K3s layout")
		lock     = flag.String("lock", "/tmp/edgeflow-cluster.lock", "the machine-wide cluster lock, held while each layout is up (\"\": the caller holds it)")
		keep     = flag.Bool("keep", false, "leave the last layout running with the pipeline (only with -lock \"\", the caller holding the lock)")
		out      = flag.String("out", filepath.Join(root, "bench", "results"), "where the report goes")
		from     = flag.String("from", "", "measure nothing: write the report and figures again from a run's JSON (footprint-*.json)")
	)
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "how long each idle phase is measured")
	flag.DurationVar(&o.load, "load", 60*time.Second, "how long the load phase publishes")
	flag.Float64Var(&o.rate, "rate", 1000, "msgs/s of the load phase (QoS 1)")
	flag.IntVar(&o.devices, "devices", 100, "devices of the load generator")
	flag.DurationVar(&o.every, "every", 2*time.Second, "sampling interval")
	flag.StringVar(&o.tour, "tour", "verbs", "management tour after the measurements: verbs (the task verbs and self-healing, on each layout), full (the stock layout also loses its kubelet, is drained, backed up and restored, its control plane restarted), none")
	flag.Parse()
	if *from != "" {
		if err := rewrite(*from, *out); err != nil {
			fail(err)
		}
		return
	}
	if os.Geteuid() != 0 {
		fail(fmt.Errorf("the dev cluster and /proc of its processes need root"))
	}
	if *keep && *lock != "" {
		fail(fmt.Errorf("-keep leaves a cluster up: only with -lock \"\", under a lock the caller holds"))
	}
	if o.tour != "verbs" && o.tour != "full" && o.tour != "none" {
		fail(fmt.Errorf("-tour %s: verbs, full or none", o.tour))
	}
	dirs := map[string]string{"stock": *stockDir, "k3s": *k3sDir}
	var names []string
	for _, n := range strings.Split(*layouts, ",") {
		if _, ok := dirs[n]; !ok {
			fail(fmt.Errorf("-layouts: %q is neither stock nor k3s", n))
		}
		names = append(names, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := &Report{Started: time.Now().UTC(), Options: map[string]string{
		"layouts": *layouts, "idle": o.idle.String(), "load": o.load.String(), "rate": fmt.Sprint(o.rate),
		"devices": fmt.Sprint(o.devices), "every": o.every.String(), "tour": o.tour}}
	failed := false
	for i, name := range names {
		if ctx.Err() != nil {
			break
		}
		lr := &LayoutReport{Layout: footprint.Layout{Name: name}, Dir: dirs[name]}
		rep.Layouts = append(rep.Layouts, lr)
		r := &run{root: root, dcDir: dirs[name], every: o.every, lr: lr}
		last := i == len(names)-1
		if err := r.layout(ctx, *lock, o, rep, *keep && last); err != nil {
			lr.Problems = append(lr.Problems, err.Error())
			logf("%s layout: %v", name, err)
			failed = true
		}
		r.binary()
	}
	base, werr := rep.write(*out)
	if werr != nil {
		logf("write the report: %v", werr)
	} else {
		logf("report: %s.md, %s.json, %s.svg (per component), %s-time.svg (over time)", base, base, base, base)
		if b, err := os.ReadFile(base + ".md"); err == nil {
			os.Stdout.Write(b)
		}
	}
	if failed || werr != nil {
		os.Exit(1)
	}
}

// rewrite writes a run's report and figures again from its JSON, with this
// version's tables, verdicts and figures.
func rewrite(from, out string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	rep := &Report{}
	if err := json.Unmarshal(data, rep); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	base, err := rep.write(out)
	if err != nil {
		return err
	}
	logf("report: %s.md, %s.json, %s.svg, %s-time.svg", base, base, base, base)
	return nil
}

// layout brings one layout up under the cluster lock, measures it, runs the
// tour and wipes it (unless keep).
func (r *run) layout(ctx context.Context, lock string, o options, rep *Report, keep bool) error {
	// The layout's scripts, task deploy's image loading and the tour all read these.
	os.Setenv("DEVCLUSTER_LAYOUT", r.lr.Name)
	os.Setenv("DEVCLUSTER_DIR", r.dcDir)
	os.Unsetenv("KUBECONFIG")
	useDevClusterKubectl(r.dcDir)
	if lock != "" {
		f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return err
		}
		defer f.Close() // releases the lock
		logf("%s layout: waiting for the cluster lock %s", r.lr.Name, lock)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			return fmt.Errorf("lock %s: %w", lock, err)
		}
	}
	ip, err := r.output(ctx, nil, "bash", "-c", `source scripts/devcluster/env.sh && echo "$NODE_IP"`)
	if err != nil {
		return err
	}
	r.lr.NodeIP = strings.TrimSpace(ip)
	err = r.measure(ctx, o)
	if err == nil && o.tour != "none" {
		logf("%s layout: management tour (%s)", r.lr.Name, o.tour)
		r.lr.Tour = manageTour(ctx, r.root, r.kubeconfig, r.dcDir, r.lr.Name, r.lr.NodeIP, o.tour == "full", logf)
		r.lr.TourSteps = len(r.lr.Tour)
		for _, s := range r.lr.Tour {
			if s.Err == "" {
				r.lr.TourOK++
			}
		}
	}
	if rep.Machine.Kubernetes == "" && r.kubeconfig != "" {
		rep.Machine = r.machine(ctx)
	}
	r.dataSize()
	if keep {
		logf("%s layout: left running (-keep): KUBECONFIG=%s", r.lr.Name, r.kubeconfig)
		return err
	}
	logf("%s layout: wiping", r.lr.Name)
	if werr := r.sh(context.Background(), "bash", "scripts/devcluster/down.sh", "--wipe"); werr != nil {
		logf("wipe: %v", werr)
		err = errors.Join(err, werr)
	}
	return err
}

// measure runs the four measured phases from a wiped dev cluster.
func (r *run) measure(ctx context.Context, o options) error {
	name := r.lr.Name
	logf("%s layout: wiping and starting the dev cluster (%s)", name, r.dcDir)
	if err := r.sh(ctx, "bash", "scripts/devcluster/down.sh", "--wipe"); err != nil {
		return err
	}
	var upErr bytes.Buffer
	r.start = time.Now()
	out, err := r.outputTee(ctx, &upErr, "bash", "scripts/devcluster/up.sh")
	r.lr.UpTotal = time.Since(r.start)
	if err != nil {
		return err
	}
	r.lr.NodeReady, r.lr.ClusterReady = footprint.ParseUpTimes(upErr.String())
	kc, ok := strings.CutPrefix(strings.TrimSpace(out), "export KUBECONFIG=")
	if !ok {
		return fmt.Errorf("up.sh printed %q, not export KUBECONFIG=...", out)
	}
	r.kubeconfig = kc
	r.lr.ServerToReady = r.serverToReady(ctx)
	logf("%s layout: node Ready %s after the server's start, %s (cluster ready %s) after the daemons began; up.sh %s", name,
		r.lr.ServerToReady, r.lr.NodeReady, r.lr.ClusterReady, r.lr.UpTotal.Round(100*time.Millisecond))
	sampler, err := r.sampler()
	if err != nil {
		return err
	}
	settle := 10 * time.Second
	sleep(ctx, settle)
	wait := func(ctx context.Context) error { sleep(ctx, o.idle); return ctx.Err() }
	if err := r.phase(ctx, sampler, footprint.PhaseClusterIdle, wait); err != nil {
		return err
	}

	t0 := time.Now()
	if err := r.phase(ctx, sampler, footprint.PhaseDeploy, func(ctx context.Context) error {
		return r.sh(ctx, "go", "tool", "task", "deploy", "OVERLAY=devcluster", "KUBECONFIG="+r.kubeconfig)
	}); err != nil {
		return fmt.Errorf("task deploy: %w", err)
	}
	r.lr.Deploy = time.Since(t0)
	logf("%s layout: deployed in %s", name, r.lr.Deploy.Round(time.Second))
	sleep(ctx, settle)
	if err := r.phase(ctx, sampler, footprint.PhasePipelineIdle, wait); err != nil {
		return err
	}
	return r.phase(ctx, sampler, fmt.Sprintf("%s (%.0f msgs/s)", footprint.PhaseLoad, o.rate), func(ctx context.Context) error {
		res, err := r.loadgen(ctx, o.rate, o.devices, o.load)
		r.lr.Load = res
		return err
	})
}

// serverToReady is the time from the start of the layout's first Kubernetes
// process (etcd, or k3s-server) to the node's Ready transition, both to the
// second; 0 when unknown.
func (r *run) serverToReady(ctx context.Context) time.Duration {
	pids, err := footprint.ReadPIDFiles(filepath.Join(r.dcDir, "run", "pids"))
	if err != nil {
		return 0
	}
	pid, ok := pids["k3s-server"]
	if !ok {
		pid = pids["etcd"]
	}
	started, err := procStart(pid)
	if err != nil {
		return 0
	}
	out, err := r.output(ctx, []string{"KUBECONFIG=" + r.kubeconfig}, "kubectl", "get", "nodes", "-o",
		`jsonpath={.items[0].status.conditions[?(@.type=="Ready")].lastTransitionTime}`)
	if err != nil {
		return 0
	}
	ready, err := time.Parse(time.RFC3339, strings.TrimSpace(out))
	if err != nil {
		return 0
	}
	return ready.Sub(started)
}

// procStart is when a process started: its start time in clock ticks since
// boot (/proc/PID/stat, field 22) after the boot time (/proc/stat btime).
func procStart(pid int) (time.Time, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, err
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])) // f[0] is field 3
	if len(f) < 20 {
		return time.Time{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	sys, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.Lines(string(sys)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			const hz = 100 // USER_HZ on Linux
			return time.Unix(btime, 0).Add(time.Duration(ticks) * time.Second / hz), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat has no btime")
}

// binary records the server binary's size, plain and compressed as K3s
// packs its binaries (zstd -16 --long=25).
func (r *run) binary() {
	r.lr.Binary = map[string]string{"stock": "kubeall", "k3s": "k3s-server"}[r.lr.Name]
	path := filepath.Join(r.dcDir, "bin", r.lr.Binary)
	st, err := os.Stat(path)
	if err != nil {
		r.lr.Problems = append(r.lr.Problems, err.Error())
		return
	}
	r.lr.BinaryBytes = st.Size()
	cmd := exec.Command("zstd", "-16", "--long=25", "-T0", "-c", path)
	cw := &countWriter{}
	cmd.Stdout = cw
	if err := cmd.Run(); err != nil {
		r.lr.Problems = append(r.lr.Problems, "zstd "+path+": "+err.Error())
		return
	}
	r.lr.BinaryZstdBytes = cw.n
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// dataSize records the size of the cluster state on disk: etcd's data dir,
// or kine's SQLite database with its WAL.
func (r *run) dataSize() {
	run := filepath.Join(r.dcDir, "run")
	var paths []string
	if r.lr.Name == "k3s" {
		r.lr.DataWhat = "SQLite server/db/state.db with -wal, -shm"
		paths = []string{filepath.Join(run, "server", "db")}
	} else {
		r.lr.DataWhat = "etcd data dir run/etcd"
		paths = []string{filepath.Join(run, "etcd")}
	}
	for _, p := range paths {
		_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					r.lr.DataBytes += fi.Size()
				}
			}
			return nil
		})
	}
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
			mu.Lock()
			if err != nil {
				r.lr.Problems = append(r.lr.Problems, fmt.Sprintf("%s: %v", name, err))
			}
			snaps = append(snaps, snap)
			r.lr.Series = append(r.lr.Series, footprint.PointOf(snap, r.start, name))
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
	r.lr.Phases = append(r.lr.Phases, footprint.Phase{Name: name, Duration: time.Since(start), Samples: len(snaps), Stats: footprint.Summarise(snaps)})
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
	if err := r.sh(ctx, bin, "-broker", fmt.Sprintf("ssl://%s:%d", r.lr.NodeIP, mqttNodePort),
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

// write saves the report as JSON, Markdown and the two figures: memory per
// component and phase (of every layout), and over time.
func (rep *Report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, "footprint-"+rep.Started.Format("20060102-150405"))
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".json", data, 0o644); err != nil {
		return "", err
	}
	var md strings.Builder
	rep.writeMarkdown(&md)
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return "", err
	}
	var phases []footprint.Phase
	var layouts []footprint.Layout
	for _, l := range rep.Layouts {
		for _, p := range l.Phases {
			if !strings.HasPrefix(p.Name, footprint.PhaseDeploy) {
				p.Name = l.Name + ": " + p.Name
				phases = append(phases, p)
			}
		}
		layouts = append(layouts, l.Layout)
	}
	title := fmt.Sprintf("Memory per component: Kubernetes %s, two layouts, and the edgeflow pipeline", rep.Machine.Kubernetes)
	if err := writeFile(base+".svg", func(w io.Writer) error { return footprint.WriteSVG(w, title, phases) }); err != nil {
		return "", err
	}
	title = fmt.Sprintf("PSS over time: Kubernetes %s as separate processes and as K3s assembles it", rep.Machine.Kubernetes)
	return base, writeFile(base+"-time.svg", func(w io.Writer) error { return footprint.WriteSeriesSVG(w, title, layouts) })
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// layoutTitles name the layouts in the report.
var layoutTitles = map[string]string{
	"stock": "stock layout: etcd and five component processes (kubeall) beside containerd",
	"k3s":   "K3s layout: one k3s-server process (kine on SQLite and the five components) beside containerd",
}

func (rep *Report) writeMarkdown(b *strings.Builder) {
	m := rep.Machine
	fmt.Fprintf(b, "# Footprint of the dev cluster's layouts and the pipeline, %s\n\n", rep.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "Machine: %d CPUs (%s), %s, Linux %s. Kubernetes %s (scripts/devcluster). Options: %v.\n\n", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel, m.Kubernetes, rep.Options)
	b.WriteString("RSS counts shared pages in full for every process that maps them; PSS splits them, so PSS adds up. CPU is CPU seconds per second of the phase.\n\n")
	var stock, k3s *LayoutReport
	for _, l := range rep.Layouts {
		switch l.Name {
		case "stock":
			stock = l
		case "k3s":
			k3s = l
		}
	}
	if stock != nil && k3s != nil {
		b.WriteString("## Side by side\n\n")
		_ = footprint.WriteComparison(b, stock.Layout, k3s.Layout)
		b.WriteString("\n")
	}
	for _, l := range rep.Layouts {
		fmt.Fprintf(b, "## %s\n\n", layoutTitles[l.Name])
		fmt.Fprintf(b, "DEVCLUSTER_DIR %s, node IP %s. up.sh from a wiped state: node Ready %s after the start of %s, after %s and cluster ready after %s (up.sh's own count), %s in all. "+
			"task deploy took %s. Load phase: %.0f msgs/s asked of %d devices, %.0f achieved, %d acknowledged, %d failed.\n\n",
			l.Dir, l.NodeIP, l.ServerToReady, map[string]string{"stock": "etcd", "k3s": "k3s-server"}[l.Name], l.NodeReady, l.ClusterReady, l.UpTotal.Round(100*time.Millisecond),
			l.Deploy.Round(time.Second), l.Load.Rate, l.Load.Devices, l.Load.Achieved, l.Load.Acked, l.Load.Failed)
		_ = footprint.WriteMarkdown(b, l.Phases)
		if len(l.Tour) > 0 {
			b.WriteString("### Management tour\n\n| step | command | took | observed |\n|---|---|--:|---|\n")
			for _, s := range l.Tour {
				obs := s.Observed
				if s.Err != "" {
					obs += " **error:** " + s.Err
				}
				fmt.Fprintf(b, "| %s | `%s` | %s | %s |\n", s.Name, strings.ReplaceAll(s.Command, "|", `\|`), s.Took.Round(100*time.Millisecond), strings.ReplaceAll(obs, "|", `\|`))
			}
			b.WriteString("\n")
		}
		if len(l.Problems) > 0 {
			b.WriteString("### Problems\n\n")
			for _, p := range l.Problems {
				fmt.Fprintf(b, "- %s\n", p)
			}
			b.WriteString("\n")
		}
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

// outputTee runs a command from the repository root and returns its
// standard output; its standard error goes to ours and to errOut.
func (r *run) outputTee(ctx context.Context, errOut io.Writer, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.root
	cmd.Stderr = io.MultiWriter(os.Stderr, errOut)
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
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
