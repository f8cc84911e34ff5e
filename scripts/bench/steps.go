package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/procstat"
)

// Verdict thresholds.
const (
	// rateTolerance is how far below its target a step's publish rate may
	// fall and still count as that rate: the load generator paces in bursts
	// and starts its connections one by one.
	rateTolerance = 0.97
	// windowSize is the window length the bench counts in
	// (telemetry_10s: the processor's default finest window).
	windowSize = 10 * time.Second
	// countedMetric is the metric whose window counts are summed; every
	// load generator message carries it once.
	countedMetric = "temperature"
)

// StepPlan is one rate step.
type StepPlan struct {
	Index    int
	Rate     float64
	Duration time.Duration
}

// Usage is one process's resources over a step.
type Usage struct {
	RSSMaxBytes   int64   `json:"rss_max_bytes"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`
	// LoadCores is the CPU time used while the load ran per second of it:
	// 1 is one core busy.
	LoadCores float64 `json:"cores_during_load"`
}

// Step is the measured result of one rate step.
type Step struct {
	Rate            float64 `json:"target_msgs_per_s"`
	DurationSeconds float64 `json:"duration_seconds"`
	PublishRate     float64 `json:"publish_msgs_per_s"`
	// Throughput is the acknowledged messages over the time from the first
	// publish until ingest had received them all.
	Throughput float64 `json:"throughput_msgs_per_s"`
	Attempted  int64   `json:"attempted"`
	Acked      int64   `json:"acked"`
	Failed     int64   `json:"failed"`
	// Counted is the sum of count in telemetry_10s for the step's windows.
	Counted    int64 `json:"counted"`
	Loss       int64 `json:"loss"`
	Duplicates int64 `json:"duplicates"`
	// DrainSeconds is how long after the last PUBACK ingest had received
	// every message and both backlogs were empty (-1: not within the settle time).
	DrainSeconds float64 `json:"drain_seconds"`
	// CountSeconds is how long after the last PUBACK the window counts were complete.
	CountSeconds float64 `json:"count_seconds"`
	// MachineCores is how many cores the whole machine kept busy while the
	// load ran: this bench and any other work on it.
	MachineCores   float64 `json:"machine_cores_during_load"`
	IngestDeadLet  int64   `json:"ingest_deadlettered"`
	ProcessorLate  int64   `json:"processor_late"`
	AckP50Ms       float64 `json:"ack_latency_p50_ms"`
	AckP99Ms       float64 `json:"ack_latency_p99_ms"`
	AckP99Overflow bool    `json:"ack_latency_p99_beyond_buckets,omitempty"`
	WindowP50S     float64 `json:"window_latency_p50_s"`
	WindowP99S     float64 `json:"window_latency_p99_s"`
	// CloseDelay is window end + lateness → written: what a window waits
	// beyond the earliest its definition lets it close.
	CloseDelayP50S float64          `json:"window_close_delay_p50_s"`
	CloseDelayP99S float64          `json:"window_close_delay_p99_s"`
	PublishP99Ms   float64          `json:"publish_puback_p99_ms"`
	Usage          map[string]Usage `json:"usage"`
	Pass           bool             `json:"pass"`
	Reasons        []string         `json:"reasons,omitempty"`
}

// Outcome is what a step's verdict is decided from.
type Outcome struct {
	Rate, PublishRate    float64
	Acked, Failed        int64
	Counted              int64
	DrainSeconds, MaxLag float64 // MaxLag: the most a drain may take
	ConnectionLosses     int64
}

// judge decides whether a step was sustained: every publish acknowledged,
// the target rate reached, the backlogs drained within maxLag seconds, and
// exactly the acknowledged messages counted in the windows.
func judge(o Outcome) (pass bool, reasons []string) {
	if o.Failed > 0 {
		reasons = append(reasons, fmt.Sprintf("%d publishes not acknowledged by the broker", o.Failed))
	}
	if o.ConnectionLosses > 0 {
		reasons = append(reasons, fmt.Sprintf("%d publisher connections lost", o.ConnectionLosses))
	}
	if o.PublishRate < rateTolerance*o.Rate {
		reasons = append(reasons, fmt.Sprintf("published only %.0f of %.0f msgs/s", o.PublishRate, o.Rate))
	}
	switch {
	case o.DrainSeconds < 0:
		reasons = append(reasons, "backlog never drained")
	case o.DrainSeconds > o.MaxLag:
		reasons = append(reasons, fmt.Sprintf("backlog drained %.1fs after the last publish (limit %.0fs)", o.DrainSeconds, o.MaxLag))
	}
	if o.Counted < o.Acked {
		reasons = append(reasons, fmt.Sprintf("lost %d: windows count %d of %d acknowledged", o.Acked-o.Counted, o.Counted, o.Acked))
	}
	if o.Counted > o.Acked {
		reasons = append(reasons, fmt.Sprintf("%d duplicates: windows count %d of %d acknowledged", o.Counted-o.Acked, o.Counted, o.Acked))
	}
	return len(reasons) == 0, reasons
}

// Runner runs rate steps against a started stack.
type Runner struct {
	Stack      *Stack
	Loadgen    string // the load generator binary
	Dir        string // for the load generator's reports
	Devices    int
	Publishers int
	MaxLag     time.Duration // longest acceptable drain after a step
	Settle     time.Duration // longest wait for drains and window counts
	Profiles   string        // with -pprof: where each step's CPU and heap profiles go; "" takes none

	lastEnd time.Time
}

// Run runs one step: the load for its duration, then waits for ingest and
// the processor to drain and for the windows to count every message.
func (r *Runner) Run(ctx context.Context, plan StepPlan) (Step, error) {
	// A step's windows must not share a 10 s window with the previous step's.
	if !r.lastEnd.IsZero() {
		waitFreshWindow(ctx, r.lastEnd)
	}
	ingest, processor := r.Stack.Member("ingest"), r.Stack.Member("processor")
	ingest0, err := scrape(ctx, ingest.MetricsURL)
	if err != nil {
		return Step{}, err
	}
	proc0, err := scrape(ctx, processor.MetricsURL)
	if err != nil {
		return Step{}, err
	}
	sampler := startSampler(r.Stack.Members, 500*time.Millisecond)
	busy0, _ := procstat.MachineBusy()
	start := time.Now()
	profiling := &sync.WaitGroup{}
	if r.Profiles != "" {
		profiling = profileStep(ctx, r.Stack.Members, r.Profiles, plan.Rate, plan.Duration)
	}

	rep, err := runLoadgen(ctx, r.Loadgen, r.Dir, Load{
		Broker: r.Stack.MQTTURL, Devices: r.Devices, Publishers: r.Publishers, Rate: plan.Rate,
		Duration: plan.Duration.String(), SeqStart: uint64(plan.Index+1) * 1_000_000_000,
		Prefix: "bench-step" + strconv.Itoa(plan.Index),
	})
	if err != nil {
		sampler.stop(0)
		return Step{}, err
	}
	end := time.Now()
	busy1, _ := procstat.MachineBusy()
	profiling.Wait()
	sampler.markEnd()
	r.lastEnd = end
	acked := rep.Totals.Acked
	// Windows closed while the load ran closed on event time (a reading
	// LATENESS past their end); the last ones close later on the wall
	// clock (LATENESS + IDLE_GRACE) and would measure the grace, not the pipeline.
	procAtEnd, err := scrape(ctx, processor.MetricsURL)
	if err != nil {
		sampler.stop(0)
		return Step{}, err
	}

	// Drained: ingest received every acknowledged message and published it,
	// and the processor read it all.
	drain := -1.0
	var ingest1 Scrape
	for time.Since(end) < r.Settle {
		ingest1, err = scrape(ctx, ingest.MetricsURL)
		if err != nil {
			return Step{}, err
		}
		proc1, err := scrape(ctx, processor.MetricsURL)
		if err != nil {
			return Step{}, err
		}
		in := int64(ingest1.Value(metricIngestIn) - ingest0.Value(metricIngestIn))
		pin := int64(proc1.Value(metricProcessorIn) - proc0.Value(metricProcessorIn))
		if in >= acked && pin >= acked && ingest1.Value(metricIngestBacklog) == 0 && proc1.Value(metricProcBacklog) == 0 {
			drain = time.Since(end).Seconds()
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Counted: the step's windows are [floor(start), floor(end)] by start time.
	q := fmt.Sprintf(`SELECT sum("count") FROM "telemetry_10s" WHERE "metric" = '%s' AND time >= %d AND time <= %d`,
		countedMetric, start.Truncate(windowSize).UnixNano(), end.Truncate(windowSize).UnixNano())
	counted, countAt := int64(0), -1.0
	for time.Since(end) < r.Settle+windowSize {
		if counted, err = influxCount(ctx, r.Stack.InfluxURL, q); err != nil {
			return Step{}, err
		}
		if counted >= acked {
			countAt = time.Since(end).Seconds()
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A double flush would show a little later.
	time.Sleep(2 * time.Second)
	if counted, err = influxCount(ctx, r.Stack.InfluxURL, q); err != nil {
		return Step{}, err
	}
	usage := sampler.stop(end.Sub(start))
	usage["loadgen"] = Usage{CPUSeconds: rep.CPUSeconds, LoadCores: rep.CPUSeconds / end.Sub(start).Seconds()}
	proc1, err := scrape(ctx, processor.MetricsURL)
	if err != nil {
		return Step{}, err
	}
	if ingest1 == nil {
		ingest1 = ingest0
	}

	s := Step{
		Rate: plan.Rate, DurationSeconds: plan.Duration.Seconds(), PublishRate: rep.AchievedRate,
		Attempted: rep.Totals.Attempted, Acked: acked, Failed: rep.Totals.Failed, Counted: counted,
		Loss: max(0, acked-counted), Duplicates: max(0, counted-acked),
		DrainSeconds: drain, CountSeconds: countAt, MachineCores: (busy1 - busy0) / end.Sub(start).Seconds(),
		IngestDeadLet: int64(ingest1.Value(metricIngestDeadLets) - ingest0.Value(metricIngestDeadLets)),
		ProcessorLate: int64(proc1.Value(metricProcessorLate) - proc0.Value(metricProcessorLate)),
		PublishP99Ms:  rep.Latency.P99Ms,
		Usage:         usage,
	}
	if drain >= 0 {
		s.Throughput = float64(acked) / (rep.PublishSeconds + drain)
	}
	ack := ingest1.Histogram(metricIngestLatency).Sub(ingest0.Histogram(metricIngestLatency))
	s.AckP50Ms, s.AckP99Ms, s.AckP99Overflow = orNone(ack.Quantile(0.5)*1000), orNone(ack.Quantile(0.99)*1000), ack.Overflows(0.99)
	win := procAtEnd.Histogram(metricWindowLatency).Sub(proc0.Histogram(metricWindowLatency))
	s.WindowP50S, s.WindowP99S = orNone(win.Quantile(0.5)), orNone(win.Quantile(0.99))
	delay := procAtEnd.Histogram(metricCloseDelay).Sub(proc0.Histogram(metricCloseDelay))
	s.CloseDelayP50S, s.CloseDelayP99S = orNone(delay.Quantile(0.5)), orNone(delay.Quantile(0.99))
	for name, u := range s.Usage {
		if acked > 0 {
			u.CPUPerMillion = u.CPUSeconds / float64(acked) * 1e6
		}
		s.Usage[name] = u
	}
	s.Pass, s.Reasons = judge(Outcome{
		Rate: plan.Rate, PublishRate: rep.AchievedRate, Acked: acked, Failed: rep.Totals.Failed,
		Counted: counted, DrainSeconds: drain, MaxLag: r.MaxLag.Seconds(), ConnectionLosses: rep.ConnectionLosses,
	})
	return s, nil
}

// waitFreshWindow waits until a second into the 10 s window after the one
// holding end (or ctx ends): readings published from then on share no
// window with those published before end.
func waitFreshWindow(ctx context.Context, end time.Time) {
	wait := time.Until(end.Truncate(windowSize).Add(windowSize + time.Second))
	if wait <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}

// orNone turns the NaN of a histogram without observations into -1, which
// JSON can carry and the report prints as "-".
func orNone(v float64) float64 {
	if math.IsNaN(v) {
		return -1
	}
	return v
}

// sampler follows the RSS of every member and their CPU time.
type sampler struct {
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	sample func()
	first  map[string]procstat.Sample
	last   map[string]procstat.Sample
	atEnd  map[string]procstat.Sample // when the load ended
	max    map[string]int64
}

func startSampler(members []*Member, every time.Duration) *sampler {
	s := &sampler{done: make(chan struct{}), first: map[string]procstat.Sample{}, last: map[string]procstat.Sample{},
		atEnd: map[string]procstat.Sample{}, max: map[string]int64{}}
	sample := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range members {
			p, err := procstat.Read(m.PID)
			if err != nil {
				continue
			}
			if _, ok := s.first[m.Name]; !ok {
				s.first[m.Name] = p
			}
			s.last[m.Name] = p
			s.max[m.Name] = max(s.max[m.Name], p.RSSBytes)
		}
	}
	s.sample = sample
	sample()
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	})
	return s
}

// markEnd takes a sample when the load ends, for LoadCores.
func (s *sampler) markEnd() {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.last {
		s.atEnd[name] = p
	}
}

// stopAtEnd ends the sampling and returns each member's peak RSS and its
// CPU time from the start to the last markEnd.
func (s *sampler) stopAtEnd() map[string]Usage {
	close(s.done)
	s.wg.Wait()
	out := map[string]Usage{}
	for name, first := range s.first {
		end, ok := s.atEnd[name]
		if !ok {
			end = first
		}
		out[name] = Usage{RSSMaxBytes: s.max[name], CPUSeconds: end.CPUSeconds - first.CPUSeconds}
	}
	return out
}

// stop ends the sampling and returns each member's peak RSS and CPU time,
// and its cores busy over load, the time from the start to markEnd.
func (s *sampler) stop(load time.Duration) map[string]Usage {
	close(s.done)
	s.wg.Wait()
	out := map[string]Usage{}
	for name, first := range s.first {
		u := Usage{RSSMaxBytes: s.max[name], CPUSeconds: s.last[name].CPUSeconds - first.CPUSeconds}
		if end, ok := s.atEnd[name]; ok && load > 0 {
			u.LoadCores = (end.CPUSeconds - first.CPUSeconds) / load.Seconds()
		}
		out[name] = u
	}
	return out
}

// influxCount runs an InfluxQL query returning one number (0 for no series).
func influxCount(ctx context.Context, base, q string) (int64, error) {
	v, err := devenv.InfluxDB{URL: base, Database: influxDatabase}.Scalar(ctx, q)
	return int64(v), err
}
