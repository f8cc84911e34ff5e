package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/devenv"
)

// telegrafForTest is .bin/telegraf and the committed configuration; the
// test is skipped without the binary (go tool task telegraf builds it; the
// test suite does not, so CI skips these).
func telegrafForTest(t *testing.T) (bin, config string) {
	t.Helper()
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err = telegrafBinary(filepath.Join(root, ".bin"))
	if err != nil {
		t.Skip(err)
	}
	return bin, filepath.Join(root, "scripts", "bench", "telegraf.conf")
}

func TestTelegrafConfigKeepsTheBenchsClientID(t *testing.T) {
	conf, err := os.ReadFile("telegraf.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The leg removes this session after Telegraf's burst.
	if !bytes.Contains(conf, []byte(fmt.Sprintf("client_id = %q", telegrafClientID))) {
		t.Errorf("telegraf.conf does not set client_id = %q", telegrafClientID)
	}
}

// TestTelegrafAcceptsTheConfig has Telegraf load the configuration with the
// bench's environment and initialise every plugin (not start them).
func TestTelegrafAcceptsTheConfig(t *testing.T) {
	bin, config := telegrafForTest(t)
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"config", "check"}, telegrafArgs(config)...)...)
	cmd.Env = append(os.Environ(), telegrafEnv("tcp://127.0.0.1:1", "http://127.0.0.1:1")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("telegraf config check: %v\n%s", err, out)
	}
	// A broken plugin name or option is an error above; a deprecated one
	// only a warning.
	if bytes.Contains(out, []byte("W!")) {
		t.Errorf("telegraf config check warns:\n%s", out)
	}
}

// TestTelegrafReadsTheLoadgenPayload runs Telegraf on the configuration in
// test mode (it prints what it would write) against a real broker, and
// publishes messages as the load generator does: each must come out as a
// raw point named telemetry, tagged with the topic's site and device, time
// stamped with the payload's ts, with every metric and no seq.
func TestTelegrafReadsTheLoadgenPayload(t *testing.T) {
	bin, config := telegrafForTest(t)
	broker, err := devenv.StartMosquitto(t.Context(), devenv.MosquittoOptions{Dir: t.TempDir()})
	devenv.RequireInstalled(t, err)
	t.Cleanup(func() { _ = broker.Stop(context.Background()) })

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(telegrafArgs(config), "--test", "--test-wait", "4")...)
	cmd.Env = append(os.Environ(), telegrafEnv(broker.URL, "http://127.0.0.1:1")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("telegraf-test-publisher"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	// Published until Telegraf has subscribed: before that the broker has
	// no session for it and drops them. Each has its own ts.
	const ts0 = int64(1764748800123)
	var sent []int64
	deadline := time.Now().Add(3 * time.Second)
	for i := int64(0); time.Now().Before(deadline); i++ {
		ts := ts0 + i
		payload := fmt.Sprintf(`{"ts":%d,"seq":%d,"temperature":21.5,"humidity":50.1,"pressure":1013.2}`, ts, 7+i)
		if tok := c.Publish("sensors/site-1/dev-0004", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		sent = append(sent, ts)
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("telegraf --test: %v\n%s", err, out.String())
	}

	var got int
	for _, ts := range sent {
		want := fmt.Sprintf("> telemetry,device=dev-0004,site=site-1 humidity=50.1,pressure=1013.2,temperature=21.5 %d\n", ts*int64(time.Millisecond))
		if strings.Contains(out.String(), want) {
			got++
		}
	}
	// The first ones may precede the subscription; the rest must be there,
	// exactly as wanted.
	if got == 0 || got < len(sent)/2 {
		t.Errorf("%d of %d published readings written as wanted; Telegraf printed:\n%s", got, len(sent), out.String())
	}
	if strings.Contains(out.String(), "seq=") || strings.Contains(out.String(), "topic=") {
		t.Errorf("seq or the topic tag written:\n%s", out.String())
	}
}

// TestTelegrafLegCarriesABurst runs the leg for real on a small burst and a
// short paced step: the bench's servers, Telegraf on the committed
// configuration, the load generator. Every reading of both must be
// queryable in Telegraf's database, and Telegraf's session must be gone
// from the broker afterwards.
func TestTelegrafLegCarriesABurst(t *testing.T) {
	bin, config := telegrafForTest(t)
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	loadgen := filepath.Join(root, ".bin", "loadgen")
	if _, err := os.Stat(loadgen); err != nil {
		t.Skip("no .bin/loadgen: go tool task build")
	}
	if _, err := devenv.InfluxdBinary(); err != nil {
		devenv.RequireInstalled(t, err)
	}
	dir := t.TempDir()
	// The servers only: the bin directory needs nothing but nats-server.
	servers := t.TempDir()
	if _, err := devenv.BuildNATSServer(t.Context(), servers); err != nil {
		t.Fatal(err)
	}
	stack := &Stack{Dir: dir, Bin: servers, Root: root, SyncInterval: time.Second}
	t.Cleanup(func() {
		if err := stack.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if err := stack.StartServers(t.Context()); err != nil {
		devenv.RequireInstalled(t, err)
	}
	// Many devices for few readings: Telegraf time-stamps a point to the
	// payload's millisecond, so two readings of one device within a
	// millisecond would be one point.
	const count = 3000
	const rate, seconds = 1000, 2
	leg := &TelegrafLeg{Stack: stack, Bin: bin, Config: config, Loadgen: loadgen, Dir: dir,
		Load:  Load{Devices: 1000, Publishers: 1, Count: count},
		Paced: Load{Devices: 1000, Publishers: 1, Rate: rate, Duration: fmt.Sprintf("%ds", seconds)}, Settle: 20 * time.Second}
	b, paced, err := leg.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if b.Acked != count || b.Counted != count || !b.Complete {
		t.Errorf("acked %d, counted %d (complete %v), want %d and %d", b.Acked, b.Counted, b.Complete, count, count)
	}
	if b.Rate <= 0 || b.Seconds <= 0 {
		t.Errorf("rate %v over %v s", b.Rate, b.Seconds)
	}
	// The paced step's points are counted apart from the burst's.
	if paced.Acked < rate*seconds*9/10 || paced.Acked > rate*seconds*11/10 || paced.Counted != paced.Acked || !paced.Complete {
		t.Errorf("paced: acked %d, counted %d (complete %v), want about %d, all counted", paced.Acked, paced.Counted, paced.Complete, rate*seconds)
	}
	if paced.DrainSeconds <= 0 || paced.DrainSeconds >= paced.Seconds {
		t.Errorf("paced: drained after %v s of %v s", paced.DrainSeconds, paced.Seconds)
	}
	for _, br := range []Burst{b, paced} {
		for _, name := range []string{"telegraf", "mosquitto", "influxd"} {
			if u := br.Usage[name]; u.CPUSeconds <= 0 || u.RSSMaxBytes <= 0 || u.CPUPerMillion <= 0 {
				t.Errorf("%s: usage %+v", name, u)
			}
		}
	}
	// A persistent session would queue every later message for the gone
	// Telegraf: resuming it must find none.
	opts := mqtt.NewClientOptions().AddBroker(stack.MQTTURL).SetClientID(telegrafClientID).SetCleanSession(false)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	if tok.(*mqtt.ConnectToken).SessionPresent() {
		t.Error("Telegraf's session is still on the broker after the leg")
	}
}

func sampleVersus() *Versus {
	usage := func(cpuMicros float64, rssMB int64) Usage {
		return Usage{CPUPerMillion: cpuMicros, RSSMaxBytes: rssMB << 20}
	}
	return &Versus{
		Count: 200000, Devices: 1000, Publishers: 4, TelegrafVersion: "Telegraf 1.37.2", Config: "scripts/bench/telegraf.conf",
		Telegraf: Burst{Acked: 200000, Counted: 200000, Complete: true, Seconds: 13.5, Rate: 14815, PublishRate: 15000,
			Pipeline: []string{"telegraf"}, Shared: []string{"mosquitto", "influxd"},
			Usage: map[string]Usage{"telegraf": usage(30, 80), "mosquitto": usage(10, 12), "influxd": usage(5, 200),
				"nats": usage(1, 30), "bench": usage(0.5, 20), "loadgen": usage(14, 0)}},
		Edgeflow: Burst{Acked: 200000, Counted: 199990, Complete: false, Seconds: 20, Rate: 10000, PublishRate: 14000,
			Pipeline: []string{"ingest", "processor", "nats"}, Shared: []string{"mosquitto", "influxd"},
			Usage: map[string]Usage{"ingest": usage(22, 30), "processor": usage(11, 34), "nats": usage(27, 150),
				"mosquitto": usage(10, 13), "influxd": usage(6, 210), "bench": usage(0.5, 21), "loadgen": usage(14, 0)}},
	}
}

func TestVersusTotalsAndRatio(t *testing.T) {
	v := sampleVersus()
	if got := v.Ratio(); got < 0.674 || got > 0.676 {
		t.Errorf("ratio %v, want 10000/14815 = 0.675", got)
	}
	cpu, rss := v.Edgeflow.Total(v.Edgeflow.Pipeline)
	if cpu != 60 || rss != 214<<20 {
		t.Errorf("edgeflow pipeline: %v µs, %d bytes; want 60 µs and 214 MB", cpu, rss)
	}
	// The bench process is in neither of Telegraf's totals.
	cpu, rss = v.Telegraf.Total(v.Telegraf.All())
	if cpu != 45 || rss != 292<<20 {
		t.Errorf("Telegraf with the servers: %v µs, %d bytes; want 45 µs and 292 MB", cpu, rss)
	}
	if (&Versus{Edgeflow: Burst{Rate: 5}}).Ratio() != 0 {
		t.Error("a ratio without Telegraf's rate")
	}
}

func TestVersusInTheReport(t *testing.T) {
	r := sampleResult()
	r.Versus = sampleVersus()
	var b strings.Builder
	if err := r.WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Against Telegraf", "A burst of 200000 QoS 1 readings", "Telegraf 1.37.2 with `scripts/bench/telegraf.conf`",
		"**edgeflow ÷ Telegraf: 0.67** (10000 ÷ 14815 msgs/s)",
		"| end to end msgs/s | 14815 | 10000 | 0.67 |",
		"| raw points queryable | 200000 of 200000 after 13.50 s | **199990 of 200000** (the count stopped growing at 20.00 s) | |",
		"| CPU µs per reading, pipeline (telegraf; ingest + processor + nats) | 30.0 | 60.0 | 2.00 |",
		"| CPU µs per reading, with Mosquitto and InfluxDB | 45.0 | 76.0 | 1.69 |",
		"| peak RSS, pipeline | 80.0 MB | 214.0 MB | 2.67 |",
		"| peak RSS, with Mosquitto and InfluxDB | 292.0 MB | 437.0 MB | 1.50 |",
		"| telegraf | 30.0 | 80.0 MB | - | - |",
		"| ingest | - | - | 22.0 | 30.0 MB |",
		"| nats | 1.0 | 30.0 MB | 27.0 | 150.0 MB |",
		"| loadgen | 14.0 | - | 14.0 | - |",
		"| bench | 0.5 | 20.0 MB | 0.5 | 21.0 MB |",
		"`nats` is the nats-server process (idle in Telegraf's burst); `bench` is the bench process",
		"## Steps", // a full run keeps the rest of the report
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}

	if strings.Contains(md, "nats+bench") {
		t.Errorf("a report without the embedded NATS speaks of nats+bench:\n%s", md)
	}

	r.Settings.TelegrafOnly, r.Steps = true, nil
	b.Reset()
	if err := r.WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); !strings.Contains(md, "## Against Telegraf") || strings.Contains(md, "## Steps") || strings.Contains(md, "Sustained") {
		t.Errorf("a -telegraf-only report has the steps or lacks the leg:\n%s", md)
	}
}

func TestVersusInTheFigure(t *testing.T) {
	for _, only := range []bool{false, true} {
		r := sampleResult()
		r.Versus = sampleVersus()
		r.Settings.TelegrafOnly = only
		var b strings.Builder
		if err := r.WriteSVG(&b); err != nil {
			t.Fatal(err)
		}
		svg := b.String()
		wellFormed(t, svg)
		// One bar each for the rate, two groups each for CPU and RSS.
		if n := strings.Count(svg, `class="bar"`); n != 2+4+4 {
			t.Errorf("-telegraf-only %v: %d bars, want 10", only, n)
		}
		for _, want := range []string{"edgeflow ÷ Telegraf 0.67", "<title>Telegraf: 14815.0</title>", "<title>edgeflow pipeline: 60.0</title>",
			"<title>edgeflow + broker, DB: 437.0</title>"} {
			if !strings.Contains(svg, want) {
				t.Errorf("-telegraf-only %v: SVG lacks %q", only, want)
			}
		}
		if got := strings.Contains(svg, "throughput (msgs/s)"); got == only {
			t.Errorf("-telegraf-only %v: step panels drawn %v", only, got)
		}
	}
}

// Reports from before NATS ran as its own process render as they were:
// nats+bench in the pipeline, and the sentence that explains it.
func TestVersusOfAnEmbeddedNATSReport(t *testing.T) {
	v := sampleVersus()
	for _, br := range []*Burst{&v.Telegraf, &v.Edgeflow} {
		br.Usage[embeddedNATS] = br.Usage["nats"]
		delete(br.Usage, "nats")
		delete(br.Usage, "bench")
	}
	v.Edgeflow.Pipeline = []string{"ingest", "processor", embeddedNATS}
	var b strings.Builder
	v.writeMarkdown(&b)
	md := b.String()
	for _, want := range []string{"| nats+bench | 1.0 | 30.0 MB | 27.0 | 150.0 MB |", "in edgeflow's it is NATS and that counting"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| bench |") {
		t.Errorf("a bench row in a report without one:\n%s", md)
	}
}
