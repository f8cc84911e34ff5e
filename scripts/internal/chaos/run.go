package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// runner is one chaos run in progress.
type runner struct {
	cfg   *Config
	start time.Time
	stack *stack
	hook  *receiver

	logMu sync.Mutex
}

// logf writes one line of the run's log, stamped with the time since the
// start.
func (r *runner) logf(format string, a ...any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	fmt.Fprintf(r.cfg.Log, "chaos %7.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, a...))
}

// Run starts the stack, drives it with the load generator while it injects
// faults, judges the outcome and stops everything. The error reports a run
// that could not be carried out (a server that would not start); what the
// run found is in the Summary (Pass, Problems).
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	r := &runner{cfg: &cfg, start: time.Now()}
	sum := &Summary{Seed: cfg.Seed, Started: r.start.UTC(), Config: summaryConfig(&cfg)}
	r.logf("seed %d: %s of load at %.0f msgs/s from %d devices; %d NATS server(s), %d processors",
		cfg.Seed, cfg.Duration, cfg.Rate, cfg.Devices, cfg.NATSServers, cfg.Processors)

	var err error
	if r.hook, err = startReceiver(); err != nil {
		return nil, err
	}
	defer r.hook.close()
	rules, err := writeRules(filepath.Join(cfg.Dir, "notifier"), cfg.Windows[0])
	if err != nil {
		return nil, err
	}
	r.stack = &stack{cfg: &cfg, rulesPath: rules}
	defer func() {
		r.logf("stopping the stack")
		sum.StopProblems = r.stack.stop()
		sum.Problems = append(sum.Problems, sum.StopProblems...)
		sum.Pass = len(sum.Problems) == 0
		sum.Elapsed = time.Since(r.start)
	}()
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = r.stack.start(startCtx, r.hook.url)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("chaos: start the stack: %w", err)
	}
	r.logf("stack ready: NATS %v, MQTT %s, InfluxDB %s", r.stack.natsURLs, r.stack.mqtt.URL, r.stack.influx.URL)

	// The load, the freshness samples and the faults run side by side.
	loadStart := time.Now()
	type loadResult struct {
		rep loadReport
		err error
	}
	loadDone := make(chan loadResult, 1)
	go func() {
		rep, err := r.loadgen(ctx)
		loadDone <- loadResult{rep, err}
	}()
	fresh := &freshness{base: r.stack.influx.URL, devices: cfg.Devices}
	freshCtx, stopFresh := context.WithCancel(ctx)
	freshDone := make(chan struct{})
	go func() { defer close(freshDone); fresh.run(freshCtx) }()

	type inputResult struct {
		faults []Fault
		burst  loadReport
	}
	inputsDone := make(chan inputResult, 1)
	go func() {
		faults, burst := r.inputFaults(ctx, loadStart)
		inputsDone <- inputResult{faults, burst}
	}()
	faults := r.faultLoop(ctx, loadStart)
	in := <-inputsDone
	faults = mergeFaults(faults, in.faults)
	r.logf("%d faults injected; waiting for the load generator", len(faults))
	lr := <-loadDone
	// Samples only mean something while readings keep coming.
	stopFresh()
	<-freshDone
	if lr.err != nil {
		return nil, fmt.Errorf("chaos: %w", lr.err)
	}
	samples := fresh.all()
	recovery(faults, samples, cfg.FreshWithin)
	var first time.Time
	if len(faults) > 0 {
		first = faults[0].injected
	}
	sum.SteadyLag = steadyLag(samples, first)
	sum.Faults = faults
	for _, f := range faults {
		if f.Err != "" {
			sum.Problems = append(sum.Problems, fmt.Sprintf("fault %d (%s %s): %s", f.N, f.Kind, f.Target, f.Err))
		}
	}
	lr.rep.add(in.burst)
	sum.Load = lr.rep.Totals
	sum.LoadSeconds = lr.rep.ElapsedSeconds
	r.logf("load done: attempted %d, acknowledged %d, failed %d in %.1fs",
		lr.rep.Totals.Attempted, lr.rep.Totals.Acked, lr.rep.Totals.Failed, lr.rep.ElapsedSeconds)

	r.judge(ctx, sum, lr.rep)
	return sum, nil
}

// loadReport is the part of the load generator's report the verdict reads.
type loadReport struct {
	ElapsedSeconds float64    `json:"elapsed_seconds"`
	Totals         LoadTotals `json:"totals"`
	Devices        []struct {
		Site   string `json:"site"`
		Device string `json:"device"`
		Acked  int64  `json:"acked"`
		Failed int64  `json:"failed"`
	} `json:"devices"`
}

// LoadTotals are the load generator's totals: Acked is what the broker
// acknowledged (PUBACK), which the pipeline must count exactly.
type LoadTotals struct {
	Attempted int64 `json:"attempted"`
	Acked     int64 `json:"acked"`
	Failed    int64 `json:"failed"`
}

// loadgen runs the load generator for the run's duration. It holds
// unacknowledged messages across broker restarts (persistent sessions) and
// resends them; the drain timeout leaves room for a recovery at the end.
func (r *runner) loadgen(ctx context.Context) (loadReport, error) {
	cfg := r.cfg
	return r.runLoadgen(ctx, "loadgen", "-devices", strconv.Itoa(cfg.Devices),
		"-rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64), "-duration", cfg.Duration.String(),
		"-client-prefix", "chaos", "-drain-timeout", "2m")
}
