package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/devenv"
)

// The Telegraf leg: one burst through Telegraf (telegraf.conf beside this
// file), then the same burst through edgeflow, timed until every raw point
// is queryable in InfluxDB; after each burst, the same paced step.
const (
	// defaultTelegrafCount is issue 16's burst: long enough (10-20 s on
	// the 2-core machine) that start-up and the last flush hardly show.
	defaultTelegrafCount = 200_000
	// telegrafDatabase is where Telegraf writes, beside edgeflow's database
	// in the same InfluxDB.
	telegrafDatabase = "telegraf"
	// telegrafClientID is client_id in telegraf.conf: its persistent
	// session is removed after the leg, so that Mosquitto does not queue the
	// edgeflow leg's messages for a Telegraf that is gone.
	telegrafClientID = "telegraf-edgeflow-bench"
	// rawMeasurement is the raw readings' measurement, in both databases
	// (Telegraf's name_override).
	rawMeasurement = "telemetry"
	// The bursts' -seq-start, apart from the raw leg's (1) and the steps'
	// ((i+1)×10⁹), so that no message of one is a redelivery of another's.
	telegrafSeqStart = 100_000_000_000
	edgeflowSeqStart = 200_000_000_000
	// The paced step's -seq-start, apart from the bursts' and the steps'.
	telegrafPacedSeqStart = 300_000_000_000
	edgeflowPacedSeqStart = 400_000_000_000
	// defaultPacedRate and defaultPacedDuration are issue 16's paced step:
	// the 20k target, long enough that the windows closing in it
	// are the pace's own.
	defaultPacedRate     = 20_000
	defaultPacedDuration = 30 * time.Second
	// paceTolerance is how far below the paced rate the acknowledged rate
	// may fall and still count as that pace.
	paceTolerance = 0.95
	// burstPoll is how often the raw points are counted once the load
	// generator is done: the end-to-end time is known to within it.
	burstPoll = 100 * time.Millisecond
	// burstQuiet is how long a raw count that stopped short of the
	// acknowledged readings must stay unchanged to be final: both tools
	// write at least every second while they hold readings. Telegraf falls
	// short when one device sends twice within a millisecond (its points
	// are time-stamped to the payload's millisecond, so the second
	// overwrites the first; edgeflow adds a sub-millisecond offset).
	burstQuiet = 10 * time.Second
	// burstSample is the resource sampling interval of a burst, shorter
	// than the steps' because a burst of 50k lasts a few seconds.
	burstSample = 250 * time.Millisecond
	// probeSite and probeDevice name the reading that proves Telegraf reads
	// the broker and writes InfluxDB before its burst starts.
	probeSite, probeDevice = "bench-probe", "probe"
)

// embeddedNATS is the member of reports from before NATS ran as its own
// process: the bench process, which embedded NATS.
const embeddedNATS = "nats+bench"

// Versus is the Telegraf leg's result: the same burst through each.
type Versus struct {
	Count           int64  `json:"count"`
	Devices         int    `json:"devices"`
	Publishers      int    `json:"publishers"`
	TelegrafVersion string `json:"telegraf_version"`
	Config          string `json:"telegraf_config"`
	Telegraf        Burst  `json:"telegraf"`
	Edgeflow        Burst  `json:"edgeflow"`
	// Paced is the paced step after each burst; nil when it did not run
	// (and in reports from before it).
	Paced *PacedVersus `json:"paced,omitempty"`
}

// PacedVersus is the same fixed rate through each tool, after its burst.
type PacedVersus struct {
	Rate            float64 `json:"target_msgs_per_s"`
	DurationSeconds float64 `json:"duration_seconds"`
	// MaxLagSeconds is the longest drain that still keeps the pace (-max-lag).
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	Telegraf      Burst   `json:"telegraf"`
	Edgeflow      Burst   `json:"edgeflow"`
}

// Burst is one burst of QoS 1 readings through one pipeline.
type Burst struct {
	Acked  int64 `json:"acked"`
	Failed int64 `json:"failed"`
	// Counted is the raw points queryable at the end; Complete says it
	// reached Acked within the settle time.
	Counted  int64 `json:"counted"`
	Complete bool  `json:"complete"`
	// Seconds runs from the first publish until the last raw point was
	// queryable (or until the count last grew, when it never reached Acked).
	Seconds float64 `json:"seconds"`
	// DrainSeconds runs from the last publish to the end of Seconds.
	DrainSeconds float64 `json:"drain_seconds"`
	Rate         float64 `json:"msgs_per_s"` // Acked over Seconds
	PublishRate  float64 `json:"publish_msgs_per_s"`
	// Usage is every measured process over the burst; CPUPerMillion, CPU
	// seconds per million readings, is also µs per reading.
	Usage map[string]Usage `json:"usage"`
	// Pipeline are the processes between the broker and the database: what
	// a user runs for this tool. Shared are the broker and the database,
	// the same for both.
	Pipeline []string `json:"pipeline"`
	Shared   []string `json:"shared"`
}

// Total is the sum of names' CPU per reading and of their peak RSS (each
// process's own peak: they need not coincide).
func (b Burst) Total(names []string) (cpuMicros float64, rssBytes int64) {
	for _, n := range names {
		cpuMicros += b.Usage[n].CPUPerMillion
		rssBytes += b.Usage[n].RSSMaxBytes
	}
	return cpuMicros, rssBytes
}

// All are the pipeline and the shared servers: what the tool costs the
// machine, without the load generator.
func (b Burst) All() []string {
	return append(append([]string{}, b.Pipeline...), b.Shared...)
}

// Ratio is edgeflow's end-to-end rate over Telegraf's (0 when either is
// missing).
func (v *Versus) Ratio() float64 {
	if v.Telegraf.Rate <= 0 {
		return 0
	}
	return v.Edgeflow.Rate / v.Telegraf.Rate
}

// missedPace says why b did not keep the paced step's pace: the
// acknowledged rate below paceTolerance of the target, raw points missing,
// or the last of them later than MaxLagSeconds after the last publish (the
// tool fell behind and caught up afterwards). None: it kept the pace.
func (p *PacedVersus) missedPace(b Burst) []string {
	if b.Acked == 0 {
		return []string{"not run"}
	}
	var reasons []string
	if b.PublishRate < paceTolerance*p.Rate {
		reasons = append(reasons, fmt.Sprintf("acked only %.0f of %.0f msgs/s", b.PublishRate, p.Rate))
	}
	if b.Counted < b.Acked {
		reasons = append(reasons, fmt.Sprintf("%d of %d raw points queryable", b.Counted, b.Acked))
	} else if b.DrainSeconds > p.MaxLagSeconds {
		reasons = append(reasons, fmt.Sprintf("the last raw point %.1f s after the last publish (limit %.0f s)", b.DrainSeconds, p.MaxLagSeconds))
	}
	return reasons
}

// CapacityRatio is Telegraf's CPU per reading over edgeflow's at the same
// pace: with the throughput fixed by the pacer, how many more readings the
// same CPU carries through edgeflow. all is end to end (each pipeline with
// Mosquitto and InfluxDB), tool the pipelines alone. ok is false, and
// both 0, when either tool missed the pace: its CPU per reading is then
// not the cost of that pace.
func (p *PacedVersus) CapacityRatio() (all, tool float64, ok bool) {
	t, e := p.Telegraf, p.Edgeflow
	if len(p.missedPace(t)) > 0 || len(p.missedPace(e)) > 0 {
		return 0, 0, false
	}
	tAll, _ := t.Total(t.All())
	eAll, _ := e.Total(e.All())
	tPipe, _ := t.Total(t.Pipeline)
	ePipe, _ := e.Total(e.Pipeline)
	if tAll <= 0 || eAll <= 0 || tPipe <= 0 || ePipe <= 0 {
		return 0, 0, false
	}
	return tAll / eAll, tPipe / ePipe, true
}

// telegrafEnv sets what telegraf.conf reads from the environment.
func telegrafEnv(mqttURL, influxURL string) []string {
	return []string{
		"BENCH_MQTT_URL=" + mqttURL,
		"BENCH_MQTT_TOPIC=sensors/#",
		"BENCH_INFLUX_URL=" + influxURL,
		"BENCH_INFLUX_BUCKET=" + telegrafDatabase + "/autogen",
		"BENCH_INFLUX_TOKEN=",
	}
}

// telegrafArgs run config with ${VAR} substitution only (Telegraf's
// strict handling, its default from 1.38 on).
func telegrafArgs(config string) []string {
	return []string{"--config", config, "--strict-env-handling"}
}

// telegrafVersion is what `telegraf version` prints, e.g. "Telegraf 1.37.2".
func telegrafVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// BurstPlan is one burst through one pipeline.
type BurstPlan struct {
	Load     Load
	Members  []*Member // sampled over the burst
	Pipeline []string
	Shared   []string
	// InfluxURL and Database are where the raw points are counted.
	InfluxURL, Database string
	Settle              time.Duration
}

// runBurst publishes the burst (or, with Load.Rate, the paced load) and counts the raw points in the database
// until every acknowledged reading is there, or the count has not grown
// for burstQuiet (or Settle, when shorter). CPU time counts from the first publish to the last count that
// grew, so it covers carrying the readings and writing them raw, not the
// wait for readings that never come; windows that close later are not in
// it, for either tool.
func runBurst(ctx context.Context, loadgenBin, dir string, p BurstPlan) (Burst, error) {
	sampler := startSampler(p.Members, burstSample)
	start := time.Now()
	rep, err := runLoadgen(ctx, loadgenBin, dir, p.Load)
	if err != nil {
		sampler.stop(0)
		return Burst{}, err
	}
	loaded := time.Now()
	// Both tools time-stamp a raw point with the payload's ts (edgeflow adds
	// a sub-millisecond offset), which the load generator takes at publish.
	q := fmt.Sprintf(`SELECT count(%q) FROM %q WHERE time >= %d`, countedMetric, rawMeasurement, start.Truncate(time.Millisecond).UnixNano())
	db := devenv.InfluxDB{URL: p.InfluxURL, Database: p.Database}
	var counted int64
	grew := loaded
	for ctx.Err() == nil && time.Since(grew) < min(p.Settle, burstQuiet) {
		v, err := db.Scalar(ctx, q)
		if err != nil {
			sampler.stop(0)
			return Burst{}, err
		}
		if n := int64(v); n != counted {
			counted, grew = n, time.Now()
			sampler.markEnd()
		}
		if counted >= rep.Totals.Acked {
			break
		}
		time.Sleep(burstPoll)
	}
	usage := sampler.stopAtEnd()
	usage["loadgen"] = Usage{CPUSeconds: rep.CPUSeconds}
	b := Burst{
		Acked: rep.Totals.Acked, Failed: rep.Totals.Failed, Counted: counted, Complete: counted >= rep.Totals.Acked,
		Seconds: rep.ElapsedSeconds + grew.Sub(loaded).Seconds(), PublishRate: rep.AchievedRate,
		DrainSeconds: rep.ElapsedSeconds - rep.PublishSeconds + grew.Sub(loaded).Seconds(),
		Usage:        usage, Pipeline: p.Pipeline, Shared: p.Shared,
	}
	if b.Seconds > 0 {
		b.Rate = float64(b.Acked) / b.Seconds
	}
	for name, u := range b.Usage {
		if b.Acked > 0 {
			u.CPUPerMillion = u.CPUSeconds / float64(b.Acked) * 1e6
		}
		b.Usage[name] = u
	}
	return b, nil
}

// TelegrafLeg runs Telegraf against the stack's broker and InfluxDB.
type TelegrafLeg struct {
	Stack   *Stack
	Bin     string // the telegraf binary
	Config  string // telegraf.conf
	Loadgen string
	Dir     string
	Load    Load // Broker and SeqStart are set here
	// Paced is the paced step after the burst (its Rate and Duration; the
	// rest as Load's); a zero Rate runs none.
	Paced  Load
	Settle time.Duration
}

// Run starts Telegraf, proves it writes, runs the burst and the paced step
// and stops Telegraf again, removing its persistent session. It runs before
// edgeflow's services start: nothing else subscribes to the broker
// meanwhile. paced is zero without a paced step.
func (l *TelegrafLeg) Run(ctx context.Context) (burst, paced Burst, err error) {
	s := l.Stack
	if err := devenv.CreateInfluxDatabase(ctx, s.InfluxURL, telegrafDatabase); err != nil {
		return Burst{}, Burst{}, fmt.Errorf("telegraf leg: %w", err)
	}
	p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
		Name: "telegraf", Bin: l.Bin, Args: telegrafArgs(l.Config),
		Env: telegrafEnv(s.MQTTURL, s.InfluxURL), Dir: filepath.Join(s.Dir, "telegraf"),
	})
	if err != nil {
		return Burst{}, Burst{}, fmt.Errorf("telegraf leg: %w", err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		err := p.Stop(context.Background())
		if ferr := forgetSession(s.MQTTURL, telegrafClientID); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return err
	}
	defer func() { _ = stop() }()
	if err := probeTelegraf(ctx, s.MQTTURL, s.InfluxURL, time.Minute); err != nil {
		log, _ := p.Log()
		return Burst{}, Burst{}, fmt.Errorf("telegraf leg: %w\n%s", err, lastLines(log, 20))
	}
	members := append([]*Member{{Name: "telegraf", Role: "server", PID: p.Pid()}}, s.Members...)
	plan := BurstPlan{Members: members, Pipeline: []string{"telegraf"}, Shared: []string{"mosquitto", "influxd"},
		InfluxURL: s.InfluxURL, Database: telegrafDatabase, Settle: l.Settle}
	plan.Load = l.Load
	plan.Load.Broker, plan.Load.SeqStart, plan.Load.Prefix = s.MQTTURL, telegrafSeqStart, "bench-telegraf"
	if burst, err = runBurst(ctx, l.Loadgen, l.Dir, plan); err != nil {
		return Burst{}, Burst{}, fmt.Errorf("telegraf leg: %w", err)
	}
	if l.Paced.Rate > 0 {
		waitFreshWindow(ctx, time.Now())
		plan.Load = l.Paced
		plan.Load.Broker, plan.Load.SeqStart, plan.Load.Prefix = s.MQTTURL, telegrafPacedSeqStart, "bench-telegraf-paced"
		if paced, err = runBurst(ctx, l.Loadgen, l.Dir, plan); err != nil {
			return Burst{}, Burst{}, fmt.Errorf("telegraf leg: paced step: %w", err)
		}
	}
	if err := stop(); err != nil {
		return Burst{}, Burst{}, fmt.Errorf("telegraf leg: stop: %w", err)
	}
	return burst, paced, nil
}

// runEdgeflow runs the leg's load through the stack's services, counting
// the raw points in edgeflow's database: its burst, or (paced) its paced
// step, in a fresh window after the burst.
func runEdgeflow(ctx context.Context, s *Stack, loadgenBin, dir string, load Load, paced bool, settle time.Duration) (Burst, error) {
	what, seq, prefix := "burst", uint64(edgeflowSeqStart), "bench-edgeflow"
	if paced {
		waitFreshWindow(ctx, time.Now())
		what, seq, prefix = "paced step", edgeflowPacedSeqStart, "bench-edgeflow-paced"
	}
	load.SeqStart, load.Prefix, load.Broker = seq, prefix, s.MQTTURL
	b, err := runBurst(ctx, loadgenBin, dir, BurstPlan{Load: load, Members: s.Members,
		Pipeline: s.pipeline(), Shared: []string{"mosquitto", "influxd"},
		InfluxURL: s.InfluxURL, Database: influxDatabase, Settle: settle})
	if err != nil {
		return Burst{}, fmt.Errorf("edgeflow %s: %w", what, err)
	}
	return b, nil
}

// probeTelegraf publishes one reading, again every second, until Telegraf
// has written it: then it is subscribed and its output writes.
func probeTelegraf(ctx context.Context, broker, influxURL string, timeout time.Duration) error {
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-telegraf-probe").
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fmt.Errorf("probe: connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	db := devenv.InfluxDB{URL: influxURL, Database: telegrafDatabase}
	q := fmt.Sprintf(`SELECT count(%q) FROM %q WHERE "device" = '%s'`, countedMetric, rawMeasurement, probeDevice)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		payload := fmt.Sprintf(`{"ts":%d,"seq":1,"%s":20.0}`, time.Now().UnixMilli(), countedMetric)
		tok := c.Publish("sensors/"+probeSite+"/"+probeDevice, 1, false, payload)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return fmt.Errorf("probe: publish: %v", tok.Error())
		}
		for range 10 {
			if n, err := db.Scalar(ctx, q); err == nil && n > 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return fmt.Errorf("probe: Telegraf wrote nothing to %s within %s", telegrafDatabase, timeout)
}

// forgetSession removes the persistent session of clientID from the
// broker: a clean-session connection under that ID discards it.
func forgetSession(broker, clientID string) error {
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fmt.Errorf("forget session %s: %v", clientID, tok.Error())
	}
	c.Disconnect(250)
	return nil
}

// lastLines is the end of a log for an error message.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// versusProcesses are the rows of the per-process table: each pipeline's
// own processes, then the shared servers, then the load generator and the
// bench (and, in reports from before NATS ran as its own process,
// nats+bench: NATS embedded in the bench).
func (v *Versus) processes() []string {
	return versusProcesses(v.Telegraf, v.Edgeflow)
}

// versusProcesses are the rows of a per-process table of t beside e, as
// Versus.processes.
func versusProcesses(t, e Burst) []string {
	var out []string
	seen := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	add(t.Pipeline...)
	add(e.Pipeline...)
	add(t.Shared...)
	add(e.Shared...)
	for _, n := range []string{"loadgen", "bench", embeddedNATS} {
		_, inT := t.Usage[n]
		_, inE := e.Usage[n]
		if inT || inE {
			add(n)
		}
	}
	return out
}

// ratioText is edgeflow's figure over Telegraf's, "-" without both.
func ratioText(edgeflow, telegraf float64) string {
	if edgeflow <= 0 || telegraf <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", edgeflow/telegraf)
}

// burstText says how much arrived and when.
func burstText(b Burst) string {
	if b.Acked == 0 {
		return "not run"
	}
	if b.Complete {
		return fmt.Sprintf("%d of %d after %.2f s", b.Counted, b.Acked, b.Seconds)
	}
	return fmt.Sprintf("**%d of %d** (the count stopped growing at %.2f s)", b.Counted, b.Acked, b.Seconds)
}

// writeMarkdown writes the side-by-side section of the report.
func (v *Versus) writeMarkdown(b *strings.Builder) {
	t, e := v.Telegraf, v.Edgeflow
	fmt.Fprintf(b, "## Against Telegraf\n\n")
	fmt.Fprintf(b, "A burst of %d QoS 1 readings from the load generator (%d devices, %d connections, as fast as PUBACKs return) through the same Mosquitto into the same InfluxDB 1.8.3, "+
		"timed from the first publish until every raw point was queryable: first %s with `%s` (edgeflow's services not started yet), then edgeflow. "+
		"CPU in µs per reading from the first publish to the last raw point; RSS the peak of each process, summed.\n\n",
		v.Count, v.Devices, v.Publishers, v.TelegrafVersion, v.Config)
	fmt.Fprintf(b, "**edgeflow ÷ Telegraf: %s** (%.0f ÷ %.0f msgs/s)\n\n", ratioText(e.Rate, t.Rate), e.Rate, t.Rate)
	tPipeCPU, tPipeRSS := t.Total(t.Pipeline)
	ePipeCPU, ePipeRSS := e.Total(e.Pipeline)
	tAllCPU, tAllRSS := t.Total(t.All())
	eAllCPU, eAllRSS := e.Total(e.All())
	b.WriteString("| | Telegraf | edgeflow | edgeflow ÷ Telegraf |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| end to end msgs/s | %.0f | %.0f | %s |\n", t.Rate, e.Rate, ratioText(e.Rate, t.Rate))
	fmt.Fprintf(b, "| published msgs/s (PUBACKs) | %.0f | %.0f | %s |\n", t.PublishRate, e.PublishRate, ratioText(e.PublishRate, t.PublishRate))
	fmt.Fprintf(b, "| raw points queryable | %s | %s | |\n", burstText(t), burstText(e))
	fmt.Fprintf(b, "| CPU µs per reading, pipeline (%s; %s) | %.1f | %.1f | %s |\n",
		strings.Join(t.Pipeline, " + "), strings.Join(e.Pipeline, " + "), tPipeCPU, ePipeCPU, ratioText(ePipeCPU, tPipeCPU))
	fmt.Fprintf(b, "| CPU µs per reading, with Mosquitto and InfluxDB | %.1f | %.1f | %s |\n", tAllCPU, eAllCPU, ratioText(eAllCPU, tAllCPU))
	fmt.Fprintf(b, "| peak RSS, pipeline | %s | %s | %s |\n", mb(tPipeRSS), mb(ePipeRSS), ratioText(float64(ePipeRSS), float64(tPipeRSS)))
	fmt.Fprintf(b, "| peak RSS, with Mosquitto and InfluxDB | %s | %s | %s |\n", mb(tAllRSS), mb(eAllRSS), ratioText(float64(eAllRSS), float64(tAllRSS)))

	writeProcessTable(b, "burst", t, e)
	if _, ok := e.Usage[embeddedNATS]; ok {
		b.WriteString("\nIn Telegraf's burst `nats+bench` is the bench counting the raw points with NATS idle; in edgeflow's it is NATS and that counting. " +
			"`loadgen` is the publisher, the same in both and in no total.\n")
	} else {
		b.WriteString("\n`nats` is the nats-server process (idle in Telegraf's burst); `bench` is the bench process counting the raw points, and " +
			"`loadgen` the publisher: the same in both and in no total.\n")
	}
	if v.Paced != nil {
		b.WriteString("\n")
		v.Paced.writeMarkdown(b)
	}
}

// writeProcessTable writes each process's CPU per reading and peak RSS in
// t beside e; what names the load ("burst", "paced step").
func writeProcessTable(b *strings.Builder, what string, t, e Burst) {
	fmt.Fprintf(b, "\n| process | Telegraf %s: CPU µs/reading | peak RSS | edgeflow %s: CPU µs/reading | peak RSS |\n|---|---|---|---|---|\n", what, what)
	cell := func(br Burst, name string) string {
		u, ok := br.Usage[name]
		if !ok {
			return "- | -"
		}
		rss := "-"
		if u.RSSMaxBytes > 0 {
			rss = mb(u.RSSMaxBytes)
		}
		return fmt.Sprintf("%.1f | %s", u.CPUPerMillion, rss)
	}
	for _, name := range versusProcesses(t, e) {
		fmt.Fprintf(b, "| %s | %s | %s |\n", name, cell(t, name), cell(e, name))
	}
}

// paceText is "yes", or "**no**" and why.
func (p *PacedVersus) paceText(b Burst) string {
	if reasons := p.missedPace(b); len(reasons) > 0 {
		return "**no**: " + strings.Join(reasons, "; ")
	}
	return "yes"
}

// verdictText is the capacity ratio, or which tool missed the pace and why.
func (p *PacedVersus) verdictText() string {
	if all, tool, ok := p.CapacityRatio(); ok {
		return fmt.Sprintf("Telegraf's CPU per reading ÷ edgeflow's: %.2f end to end, %.2f the tools alone", all, tool)
	}
	var missed []string
	for _, side := range []struct {
		name string
		b    Burst
	}{{"Telegraf", p.Telegraf}, {"edgeflow", p.Edgeflow}} {
		if reasons := p.missedPace(side.b); len(reasons) > 0 {
			missed = append(missed, fmt.Sprintf("%s did not keep the pace (%s)", side.name, strings.Join(reasons, "; ")))
		}
	}
	if len(missed) == 0 {
		return "no capacity ratio: no CPU time measured"
	}
	return "no capacity ratio: " + strings.Join(missed, ", and ")
}

// logText is one tool's paced step in a line.
func (p *PacedVersus) logText(b Burst) string {
	pipe, _ := b.Total(b.Pipeline)
	all, _ := b.Total(b.All())
	return fmt.Sprintf("acked %d (%.0f of %.0f msgs/s), %d raw points queryable, the last %.1f s after the last publish; CPU µs per reading %.1f (%.1f with Mosquitto and InfluxDB)",
		b.Acked, b.PublishRate, p.Rate, b.Counted, b.DrainSeconds, pipe, all)
}

// writeMarkdown writes the paced step's part of the side-by-side section.
func (p *PacedVersus) writeMarkdown(b *strings.Builder) {
	t, e := p.Telegraf, p.Edgeflow
	fmt.Fprintf(b, "### A paced step: %.0f msgs/s for %.0f s\n\n", p.Rate, p.DurationSeconds)
	fmt.Fprintf(b, "After each burst (in a fresh 10 s window), %.0f QoS 1 readings a second for %.0f s from the same load generator, devices and connections, paced, "+
		"through the same tool; counted as the burst. With the rate fixed by the pacer, CPU per reading is what the pace costs, and Telegraf's ÷ edgeflow's "+
		"is how many more readings the same CPU carries through edgeflow. A tool keeps the pace when its readings are acknowledged at %.0f %% of the rate or more, "+
		"every raw point is queryable, and the last within %.0f s of the last publish (-max-lag). CPU from the first publish to the last raw point; RSS the peak.\n\n",
		p.Rate, p.DurationSeconds, paceTolerance*100, p.MaxLagSeconds)
	all, tool, ok := p.CapacityRatio()
	if ok {
		fmt.Fprintf(b, "**Capacity, Telegraf's CPU per reading ÷ edgeflow's: %.2f end to end** (with Mosquitto and InfluxDB), %.2f the tools alone\n\n", all, tool)
	} else {
		fmt.Fprintf(b, "**%s.** The CPU per reading below is what each spent, not what the pace costs, and no ratio is given.\n\n", upperFirst(p.verdictText()))
	}
	ratio := func(telegraf, edgeflow float64) string {
		if !ok {
			return "-"
		}
		return ratioText(telegraf, edgeflow)
	}
	tPipeCPU, tPipeRSS := t.Total(t.Pipeline)
	ePipeCPU, ePipeRSS := e.Total(e.Pipeline)
	tAllCPU, tAllRSS := t.Total(t.All())
	eAllCPU, eAllRSS := e.Total(e.All())
	b.WriteString("| | Telegraf | edgeflow | Telegraf ÷ edgeflow |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| acked msgs/s (PUBACKs; target %.0f) | %.0f | %.0f | |\n", p.Rate, t.PublishRate, e.PublishRate)
	fmt.Fprintf(b, "| raw points queryable | %d of %d | %d of %d | |\n", t.Counted, t.Acked, e.Counted, e.Acked)
	fmt.Fprintf(b, "| last raw point after the last publish | %.2f s | %.2f s | |\n", t.DrainSeconds, e.DrainSeconds)
	fmt.Fprintf(b, "| kept the pace | %s | %s | |\n", p.paceText(t), p.paceText(e))
	fmt.Fprintf(b, "| CPU µs per reading, pipeline (%s; %s) | %.1f | %.1f | %s |\n",
		strings.Join(t.Pipeline, " + "), strings.Join(e.Pipeline, " + "), tPipeCPU, ePipeCPU, ratio(tPipeCPU, ePipeCPU))
	fmt.Fprintf(b, "| CPU µs per reading, with Mosquitto and InfluxDB | %.1f | %.1f | %s |\n", tAllCPU, eAllCPU, ratio(tAllCPU, eAllCPU))
	fmt.Fprintf(b, "| peak RSS, pipeline | %s | %s | %s |\n", mb(tPipeRSS), mb(ePipeRSS), ratio(float64(tPipeRSS), float64(ePipeRSS)))
	fmt.Fprintf(b, "| peak RSS, with Mosquitto and InfluxDB | %s | %s | %s |\n", mb(tAllRSS), mb(eAllRSS), ratio(float64(tAllRSS), float64(eAllRSS)))
	writeProcessTable(b, "paced", t, e)
}

// upperFirst capitalises s's first letter.
func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// telegrafBinary is <bin>/telegraf, or "" with the reason it is missing.
func telegrafBinary(bin string) (string, error) {
	p := filepath.Join(bin, "telegraf")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Telegraf at %s: run go tool task telegraf (or -telegraf=false)", p)
	}
	return p, nil
}

// The side-by-side figure's geometry: three bar charts in a row, and a
// second row for the paced step.
const (
	versusHeight = 300
	versusChartW = 190
	versusGap    = 40
	versusBarsH  = 180
)

// height is the figure's: one row, two with the paced step.
func (v *Versus) height() int {
	if v.Paced != nil {
		return 2 * versusHeight
	}
	return versusHeight
}

// barGroup is a pair of bars, Telegraf's beside edgeflow's.
type barGroup struct {
	label    string
	telegraf float64
	edgeflow float64
}

// barChart is one chart of the figure's row.
type barChart struct {
	title  string
	groups []barGroup
}

// drawVersus draws the side-by-side figure from y0: end-to-end rate, CPU
// per reading and peak RSS, Telegraf's bars beside edgeflow's; below them,
// with the paced step, its CPU per reading and peak RSS.
func (v *Versus) drawVersus(b *strings.Builder, y0 int) {
	t, e := v.Telegraf, v.Edgeflow
	fmt.Fprintf(b, `<g class="versus"><text x="%d" y="%d" font-weight="bold">against Telegraf: a burst of %d readings, edgeflow ÷ Telegraf %s</text>`+"\n",
		plotLeft, y0, v.Count, ratioText(e.Rate, t.Rate))
	legendY := y0 + 18
	for k, name := range []string{"Telegraf", "edgeflow"} {
		x := plotLeft + 110*k
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, legendY-10, seriesColours[k], x+16, legendY, name)
	}
	charts := append([]barChart{{"end to end (msgs/s)", []barGroup{{"", t.Rate, e.Rate}}}}, costCharts(t, e)...)
	drawBarCharts(b, charts, float64(y0+40+versusBarsH))
	if p := v.Paced; p != nil {
		py := y0 + versusHeight
		title := fmt.Sprintf("paced, %.0f msgs/s for %.0f s: ", p.Rate, p.DurationSeconds)
		if all, _, ok := p.CapacityRatio(); ok {
			title += fmt.Sprintf("Telegraf's CPU per reading ÷ edgeflow's %.2f", all)
		} else {
			title += "no ratio, a tool did not keep the pace"
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", plotLeft, py, html.EscapeString(title))
		drawBarCharts(b, costCharts(p.Telegraf, p.Edgeflow), float64(py+40+versusBarsH))
	}
	b.WriteString("</g>\n")
}

// costCharts are CPU per reading and peak RSS of t beside e: the
// pipelines, and with the broker and the database.
func costCharts(t, e Burst) []barChart {
	tPipeCPU, tPipeRSS := t.Total(t.Pipeline)
	ePipeCPU, ePipeRSS := e.Total(e.Pipeline)
	tAllCPU, tAllRSS := t.Total(t.All())
	eAllCPU, eAllRSS := e.Total(e.All())
	return []barChart{
		{"CPU (µs per reading)", []barGroup{{"pipeline", tPipeCPU, ePipeCPU}, {"+ broker, DB", tAllCPU, eAllCPU}}},
		{"peak RSS (MB)", []barGroup{{"pipeline", float64(tPipeRSS) / (1 << 20), float64(ePipeRSS) / (1 << 20)},
			{"+ broker, DB", float64(tAllRSS) / (1 << 20), float64(eAllRSS) / (1 << 20)}}},
	}
}

// drawBarCharts draws charts in a row from the left, bars standing on base.
func drawBarCharts(b *strings.Builder, charts []barChart, base float64) {
	for c, ch := range charts {
		x0 := float64(plotLeft + c*(versusChartW+versusGap))
		top := 0.0
		for _, g := range ch.groups {
			top = max(top, g.telegraf, g.edgeflow)
		}
		top = niceCeil(top * 1.1)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", x0, base+40, ch.title)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", x0, base, x0+versusChartW, base)
		groupW := float64(versusChartW) / float64(len(ch.groups))
		barW := min(40, groupW/3)
		for gi, g := range ch.groups {
			gx := x0 + groupW*float64(gi) + groupW/2
			for k, val := range []float64{g.telegraf, g.edgeflow} {
				h := float64(versusBarsH) * val / top
				x := gx - barW + float64(k)*barW
				fmt.Fprintf(b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
					x, base-h, barW-2, h, seriesColours[k], html.EscapeString(strings.TrimSpace([]string{"Telegraf", "edgeflow"}[k]+" "+g.label)+fmt.Sprintf(": %.1f", val)))
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+barW/2-1, base-h-3, axisLabel(val))
			}
			if g.label != "" {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", gx, base+16, html.EscapeString(g.label))
			}
		}
	}
}
