// Command bench runs the whole local pipeline on loopback, drives it with
// the load generator at a series of rates and reports the highest rate it
// sustains with zero loss and exact window counts, as a ratio to what the
// same broker carries to a plain subscriber (the raw MQTT leg); with
// latency, RSS and CPU per service. `go tool task bench` runs it;
// docs/performance.md describes the method.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/procstat"
	"github.com/edgeflow/edgeflow/scripts/internal/progress"
)

// Defaults of the flags.
const (
	// defaultSteps climb in 5k steps past the 20k target.
	defaultSteps = "5000,10000,15000,20000,25000,30000"
	// defaultStepDuration is the "sustains for 60 s".
	defaultStepDuration = 60 * time.Second
	// defaultDevices is "many devices": every processor partition gets
	// plenty, and per-device windows are as numerous as at a real site.
	defaultDevices = 1000
	// defaultPublishers matches the load generator's own default.
	defaultPublishers = 4
	// defaultRawCount is long enough (about 10 s at the broker's speed)
	// that connection set-up does not show in the raw leg's rate.
	defaultRawCount = 300_000
	// defaultMaxLag is "backlogs drained within a few seconds": longer
	// than a flush interval and a fetch, shorter than a growing backlog takes.
	defaultMaxLag = 5 * time.Second
	// defaultSettle bounds the wait for the last windows: they close
	// LATENESS + IDLE_GRACE (10 s by default) after their end.
	defaultSettle = 45 * time.Second

	quickSteps        = "2000,5000,10000"
	quickStepDuration = 10 * time.Second
	quickRawCount     = 100_000
	// quickTelegrafCount is a burst of a few seconds through each.
	quickTelegrafCount = 50_000
	// quickPacedDuration is a paced step that closes one 10 s window.
	quickPacedDuration = 10 * time.Second
)

func main() {
	os.Exit(run())
}

func run() int {
	root, err := devenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	var (
		stepsFlag = flag.String("steps", defaultSteps, "rate steps in msgs/s, comma-separated, in increasing order")
		stepDur   = flag.Duration("step-duration", defaultStepDuration, "how long each rate step publishes")
		quick     = flag.Bool("quick", false, "smoke run: steps "+quickSteps+" of "+quickStepDuration.String()+", raw leg of "+strconv.Itoa(quickRawCount)+
			", Telegraf leg's burst of "+strconv.Itoa(quickTelegrafCount)+" and paced step of "+quickPacedDuration.String()+" (flags given explicitly win)")
		devices    = flag.Int("devices", defaultDevices, "devices of the load generator")
		publishers = flag.Int("publishers", defaultPublishers, "MQTT connections of the load generator")
		rawCount   = flag.Int64("raw-count", defaultRawCount, "messages of the raw MQTT leg")
		rawPubs    = flag.Int("raw-publishers", 1, "MQTT connections of the load generator in the raw leg (issue 5 defines it as one publisher to one subscriber)")
		maxLag     = flag.Duration("max-lag", defaultMaxLag, "longest a step's backlog may take to drain after its last publish and still pass")
		settle     = flag.Duration("settle", defaultSettle, "longest wait for drains and window counts after a step")
		keepGoing  = flag.Bool("keep-going", false, "run every step even after one failed")
		out        = flag.String("out", filepath.Join(root, "bench", "results"), "where the report goes")
		bin        = flag.String("bin", filepath.Join(root, ".bin"), "where the built binaries are")
		natsSync   = flag.String("nats-sync", "1s", "JetStream storage sync policy of the bench's NATS: an interval (1s, what task up and the clusters run; 2m is the server's default) or always (fsync before every acknowledgement)")
		note       = flag.String("note", "", "a note on the machine for the report (e.g. other work running on it)")
		keep       = flag.Bool("keep", false, "keep the data directories and logs (printed) instead of deleting them")
		pprofAddr  = flag.String("pprof", "", "serve net/http/pprof of the bench process on this address (e.g. 127.0.0.1:6060); also turns on the services' /debug/pprof/ (EDGEFLOW_PPROF) and NATS's (prof_port) and saves their CPU and heap profiles of every step next to the report")
		render     = flag.String("render", "", "run nothing: write the Markdown and SVG again from this JSON report, next to it")
		telegraf   = flag.Bool("telegraf", true, "run the Telegraf leg: the same burst, then the same paced step, through Telegraf (.bin/telegraf, go tool task telegraf) and through edgeflow, side by side")
		tgOnly     = flag.Bool("telegraf-only", false, "run only the Telegraf leg: no raw leg, no steps")
		tgCount    = flag.Int64("telegraf-count", defaultTelegrafCount, "readings of the Telegraf leg's burst, through each")
		tgRate     = flag.Float64("telegraf-rate", defaultPacedRate, "msgs/s of the Telegraf leg's paced step after each burst, through each (0: no paced step)")
		tgDur      = flag.Duration("telegraf-duration", defaultPacedDuration, "how long the Telegraf leg's paced step publishes, through each")
		tgConfig   = flag.String("telegraf-config", filepath.Join(root, "scripts", "bench", "telegraf.conf"), "Telegraf's configuration in the Telegraf leg (the tuned one committed beside the bench by default)")
	)
	flag.Parse()
	if *render != "" {
		if err := rerender(*render); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["steps"] {
			*stepsFlag = quickSteps
		}
		if !set["step-duration"] {
			*stepDur = quickStepDuration
		}
		if !set["raw-count"] {
			*rawCount = quickRawCount
		}
		if !set["telegraf-count"] {
			*tgCount = quickTelegrafCount
		}
		if !set["telegraf-duration"] {
			*tgDur = quickPacedDuration
		}
	}
	if *tgOnly {
		*telegraf = true
	}
	if *tgRate < 0 || (*tgRate > 0 && *tgDur <= 0) {
		fmt.Fprintln(os.Stderr, "bench: -telegraf-rate and -telegraf-duration must be positive (-telegraf-rate 0: no paced step)")
		return 2
	}
	rates, err := parseSteps(*stepsFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -steps:", err)
		return 2
	}
	loadgen := filepath.Join(*bin, "loadgen")
	if _, err := os.Stat(loadgen); err != nil {
		fmt.Fprintf(os.Stderr, "bench: no load generator at %s: run go tool task build\n", loadgen)
		return 2
	}

	var tgBin string
	if *telegraf {
		if tgBin, err = telegrafBinary(*bin); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}

	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "bench: pprof:", http.ListenAndServe(*pprofAddr, nil)) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "edgeflow-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	syncEvery, syncAlways, err := parseSync(*natsSync)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -nats-sync:", err)
		return 2
	}
	stack := &Stack{Dir: dir, Bin: *bin, Root: root, Pprof: *pprofAddr != "", SyncInterval: syncEvery, SyncAlways: syncAlways}
	defer func() {
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		if *keep {
			fmt.Println("bench: data and logs kept in", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()

	res := &Result{
		StartedAt: time.Now(), Machine: describeMachine(*note),
		Settings: Settings{Devices: *devices, Publishers: *publishers, StepSeconds: stepDur.Seconds(), Rates: rates,
			RawCount: *rawCount, RawPublishers: *rawPubs, MaxLagSecond: maxLag.Seconds(), Quick: *quick, NATSSync: *natsSync,
			TelegrafOnly: *tgOnly},
		IdleRSS: map[string]int64{}, Roles: map[string]string{},
	}
	// The steps' progress lines: i/N, an estimate of the time left, and the time since here.
	prog := progress.New(stampWriter{os.Stdout, time.Now}, "bench: ", nil)
	logf("starting Mosquitto, NATS and InfluxDB under %s", dir)
	if err := stack.StartServers(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if !*tgOnly {
		logf("raw MQTT leg: %d messages from %d publisher(s), as fast as PUBACKs return, to one paho subscriber", *rawCount, *rawPubs)
		res.Raw, err = runRawLeg(ctx, loadgen, dir, Load{Broker: stack.MQTTURL, Devices: *devices, Publishers: *rawPubs,
			Count: *rawCount, SeqStart: 1, Prefix: "bench-raw"}, *settle)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		logf("raw MQTT leg: %d of %d received in %.1fs: %.0f msgs/s (publisher %.0f msgs/s)",
			res.Raw.Received, res.Raw.Published, res.Raw.Seconds, res.Raw.Rate, res.Raw.PublishRate)
	}
	// The same burst, through Telegraf while edgeflow's services are not yet
	// running (nothing else takes the broker's messages), then through edgeflow.
	burst := Load{Devices: *devices, Publishers: *publishers, Count: *tgCount}
	// Then a paced step through each: the same devices and connections at a fixed rate.
	var paced Load
	if *tgRate > 0 {
		paced = Load{Devices: *devices, Publishers: *publishers, Rate: *tgRate, Duration: tgDur.String()}
	}
	if *telegraf {
		res.Versus = &Versus{Count: *tgCount, Devices: *devices, Publishers: *publishers, Config: relativeTo(root, *tgConfig)}
		if paced.Rate > 0 {
			res.Versus.Paced = &PacedVersus{Rate: paced.Rate, DurationSeconds: tgDur.Seconds(), MaxLagSeconds: maxLag.Seconds()}
		}
		if res.Versus.TelegrafVersion, err = telegrafVersion(ctx, tgBin); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		logf("Telegraf leg: %d readings through %s (%s)", *tgCount, res.Versus.TelegrafVersion, res.Versus.Config)
		if paced.Rate > 0 {
			logf("Telegraf leg: then %.0f msgs/s for %s through each", paced.Rate, paced.Duration)
		}
		leg := &TelegrafLeg{Stack: stack, Bin: tgBin, Config: *tgConfig, Loadgen: loadgen, Dir: dir, Load: burst, Paced: paced, Settle: *settle}
		var tgPaced Burst
		if res.Versus.Telegraf, tgPaced, err = leg.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		logf("Telegraf leg: %s: %.0f msgs/s", burstText(res.Versus.Telegraf), res.Versus.Telegraf.Rate)
		if pv := res.Versus.Paced; pv != nil {
			pv.Telegraf = tgPaced
			logf("Telegraf leg: paced: %s", pv.logText(pv.Telegraf))
		}
	}

	logf("starting the services from %s", *bin)
	if err := stack.StartServices(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	time.Sleep(5 * time.Second) // let start-up allocations settle before the idle reading
	for _, m := range stack.Members {
		res.Roles[m.Name] = m.Role
		if p, err := procstat.Read(m.PID); err == nil {
			res.IdleRSS[m.Name] = p.RSSBytes
		}
	}

	if *telegraf {
		logf("Telegraf leg: the same %d readings through edgeflow", *tgCount)
		if res.Versus.Edgeflow, err = runEdgeflow(ctx, stack, loadgen, dir, burst, false, *settle); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		logf("Telegraf leg: edgeflow %s: %.0f msgs/s; edgeflow ÷ Telegraf %s",
			burstText(res.Versus.Edgeflow), res.Versus.Edgeflow.Rate, ratioText(res.Versus.Edgeflow.Rate, res.Versus.Telegraf.Rate))
		if pv := res.Versus.Paced; pv != nil {
			logf("Telegraf leg: the same %.0f msgs/s for %s through edgeflow", paced.Rate, paced.Duration)
			if pv.Edgeflow, err = runEdgeflow(ctx, stack, loadgen, dir, paced, true, *settle); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return 1
			}
			logf("Telegraf leg: paced: edgeflow %s; %s", pv.logText(pv.Edgeflow), pv.verdictText())
		}
	}

	runner := &Runner{Stack: stack, Loadgen: loadgen, Dir: dir, Devices: *devices, Publishers: *publishers,
		MaxLag: *maxLag, Settle: *settle}
	if *pprofAddr != "" {
		runner.Profiles = filepath.Join(*out, "profiles-"+res.StartedAt.Format("20060102-150405"))
		if err := os.MkdirAll(runner.Profiles, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		logf("profiles of every step go to %s", runner.Profiles)
	}
	if *telegraf {
		// The first step's windows must not share the burst's.
		runner.lastEnd = time.Now()
	}
	if *tgOnly {
		rates = nil
	}
	durations := make([]time.Duration, len(rates))
	for i := range durations {
		durations[i] = *stepDur
	}
	var took time.Duration // by the steps done
	for i, rate := range rates {
		if ctx.Err() != nil {
			break
		}
		stepStart := time.Now()
		prog.Printf("%s", stepLine(rates, durations, i, took, 0))
		stopTicks := prog.Every(ctx, stepTick, nil, func(time.Duration) string {
			return stepLine(rates, durations, i, took, time.Since(stepStart))
		})
		s, err := runner.Run(ctx, StepPlan{Index: i, Rate: rate, Duration: *stepDur})
		stopTicks()
		took += time.Since(stepStart)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			break
		}
		res.Steps = append(res.Steps, s)
		verdict := "pass"
		if !s.Pass {
			verdict = "FAIL: " + strings.Join(s.Reasons, "; ")
		}
		logf("step %s: published %.0f msgs/s, acked %d, counted %d, drained after %.1fs, ack p99 %s ms: %s",
			progress.Step(i+1, len(rates)), s.PublishRate, s.Acked, s.Counted, s.DrainSeconds, latencyText(s.AckP99Ms, s.AckP99Overflow), verdict)
		if !s.Pass && !*keepGoing {
			break
		}
	}
	if len(rates) > 0 {
		prog.Printf("finished: %s steps run in %s", progress.Step(len(res.Steps), len(rates)), progress.Duration(took))
	}
	res.evaluate()
	path, err := writeReport(*out, res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: write report:", err)
		return 1
	}
	_ = res.WriteMarkdown(os.Stdout, "")
	fmt.Printf("\nreport: %s (and .json, .svg)\n", path)
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// rerender writes the report of an earlier run again from its JSON.
func rerender(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.evaluate()
	md, err := writeReport(filepath.Dir(path), &r)
	if err == nil {
		fmt.Println("report:", md)
	}
	return err
}

// parseSteps reads increasing positive rates.
func parseSteps(s string) ([]float64, error) {
	var rates []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive rate", f)
		}
		if len(rates) > 0 && v <= rates[len(rates)-1] {
			return nil, fmt.Errorf("rates must increase: %v after %v", v, rates[len(rates)-1])
		}
		rates = append(rates, v)
	}
	return rates, nil
}

func logf(format string, a ...any) {
	fmt.Printf("%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// parseSync reads -nats-sync: "always", or a positive interval.
func parseSync(v string) (time.Duration, bool, error) {
	if v == "always" {
		return 0, true, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("%q: want always or a positive duration such as 1s", v)
	}
	return d, false, nil
}

// relativeTo is path relative to root when it lies inside it, for the report.
func relativeTo(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
