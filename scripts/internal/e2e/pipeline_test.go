package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
)

// N readings from the load generator through Mosquitto, ingest, JetStream and
// a processor give windows whose counts sum to exactly N in every window size.
func TestExactCountsThroughMosquitto(t *testing.T) {
	p := newPipeline(t, options{})
	p.startIngest("ingest-a")
	p.startProcessor("a")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := p.loadgen(ctx, "-devices", "50", "-sites", "3", "-rate", "3000", "-count", "12000")
	if r.Totals.Acked != 12000 || r.Totals.Failed != 0 {
		t.Fatalf("loadgen acked %d failed %d, want 12000 and 0", r.Totals.Acked, r.Totals.Failed)
	}
	for _, m := range []string{"temperature", "humidity", "pressure"} {
		p.expectCounts(m, r.Totals.Acked, 60*time.Second)
	}
}

// Messages published twice (as after an MQTT redelivery) are counted once:
// ingest batches both copies, and the processor drops the second where the
// windows are (docs/decisions.md, "Duplicates are dropped where the windows
// are").
func TestDuplicatesCountedOnce(t *testing.T) {
	p := newPipeline(t, options{})
	p.startIngest("ingest-a")
	proc := p.startProcessor("a")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := p.loadgen(ctx, "-devices", "20", "-rate", "2000", "-count", "4000", "-duplicates", "0.25")
	if r.Totals.DuplicatesSent == 0 {
		t.Fatal("loadgen sent no duplicates")
	}
	p.expectCounts("temperature", r.Totals.Acked, 60*time.Second)
	if got := metric(t, proc.URL, `edgeflow_processor_messages_dropped_total{reason="duplicate"}`); got != float64(r.Totals.DuplicatesSent) {
		t.Fatalf("the processor dropped %v duplicates, loadgen sent %d", got, r.Totals.DuplicatesSent)
	}
}

// Every class of bad input is dead-lettered with its reason, no service
// falls over, and the valid messages between them are all counted.
func TestBadInputIsDeadLetteredAndNeighboursCounted(t *testing.T) {
	p := newPipeline(t, options{})
	ing := p.startIngest("ingest-a")
	proc := p.startProcessor("a")

	now := time.Now().UnixMilli()
	bad := []struct{ topic, payload, reason string }{
		{"sensors/lab/d1", `{"temperature":`, "invalid_json"},
		{"sensors/lab/d1", `{"temperature":"hot"}`, "wrong_type"},
		{"sensors/lab/d1", `{"temperature":{"nested":{"deep":[1,2,3]}}}`, "wrong_type"},
		{"sensors/lab/d1", `{"temperature":true}`, "wrong_type"},
		{"sensors/lab/d1/temperature", `NaN`, "non_finite"},
		{"sensors/lab/d1", `{"temperature":1e999}`, "non_finite"},
		{"sensors/lab/d1", `{"temperature":1,"x":"` + strings.Repeat("a", 70<<10) + `"}`, "too_large"},
		{"sensors/lab/dev.1", `{"temperature":1}`, "bad_name"},
		{"sensors/lab/dev*", `{"temperature":1}`, "bad_name"},
		{"sensors/lab/<script>alert(1)<%2Fscript>", `{"temperature":1}`, "bad_name"},
		{"sensors/lab/d1", `{"tempé":1}`, "bad_name"},
		{"sensors//d1", `{"temperature":1}`, "bad_topic"},
		{"sensors/lab/d1", fmt.Sprintf(`{"ts":%d,"temperature":1}`, now-30*24*3600*1000), "bad_timestamp"},
		{"sensors/lab/d1", fmt.Sprintf(`{"ts":%d,"temperature":1}`, now+3600*1000), "bad_timestamp"},
		{"sensors/lab/d1", `{"ts":"yesterday","temperature":1}`, "bad_timestamp"},
		{"sensors/lab/d1", "\xff\xfe{\"temperature\":1}", "invalid_utf8"},
		{"sensors/lab/d1", "", "empty"},
		{"sensors/lab/d1", `{"seq":-1,"temperature":1}`, "bad_seq"},
		{"sensors/lab/d1", `[{"n":"temperature","vs":"hot"}]`, "wrong_type"},
		{"sensors/lab/d1", `[{"bn":5,"n":"temperature","v":1}]`, "bad_senml"},
		{"sensors/lab/d1", `{` + manyMetrics(300) + `}`, "too_many_metrics"},
		{"sensors/lab/d1", "21.5", "wrong_type"},
		// Hostile shapes: oversized names and topics, deep nesting (within
		// the size limit, so the decoder meets it), control characters and
		// broken UTF-8 inside otherwise valid JSON.
		{"sensors/lab/" + strings.Repeat("d", 300), `{"temperature":1}`, "bad_name"},
		// A 20 KB topic. (Topics deeper than the filters never reach ingest,
		// and Mosquitto disconnects a client whose topic has over 200 levels.)
		{"sensors/" + strings.Repeat("s", 20000) + "/d1", `{"temperature":1}`, "bad_name"},
		{"sensors/lab/d1", `{"temperature":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`, "wrong_type"},
		{"sensors/lab/d1", strings.Repeat("[", 30000) + strings.Repeat("]", 30000), "bad_senml"},
		{"sensors/lab/d1", `{"temperature":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10001), "wrong_type"},
		{"sensors/lab/d1", `{"temp\u0001":1}`, "bad_name"},
		{"sensors/lab/d1", "{\"temperature\":1\x00}", "invalid_json"},
		{"sensors/lab/d1", "{\"temperature\":1,\"note\":\"\xc3\x28\"}", "invalid_utf8"},
		{"sensors/lab/d1", "\x1b[31m21.5", "invalid_json"},
	}
	c := mqttClient(t, p.mqttURL, "bad-input")
	good := 0
	for i, b := range bad {
		publish(t, c, b.topic, b.payload)
		good++
		publish(t, c, "sensors/lab/good", fmt.Sprintf(`{"ts":%d,"seq":%d,"temperature":%d}`, time.Now().UnixMilli(), i, i))
	}
	p.expectCounts("temperature", int64(good), 60*time.Second)

	reasons := map[string]int{}
	for _, m := range p.deadLetters() {
		if src := m.Headers().Get(bus.HeaderSource); src == "" {
			t.Errorf("dead letter %s has no source", m.Subject())
		}
		reasons[m.Headers().Get(bus.HeaderReason)]++
	}
	want := map[string]int{}
	for _, b := range bad {
		want[b.reason]++
	}
	for reason, n := range want {
		if reasons[reason] != n {
			t.Errorf("dead-lettered %d with reason %s, want %d (all: %v)", reasons[reason], reason, n, reasons)
		}
	}
	if got := metric(t, ing.URL, `edgeflow_ingest_messages_deadlettered_total{reason="bad_name"}`); got != float64(want["bad_name"]) {
		t.Errorf("ingest bad_name counter = %v, want %d", got, want["bad_name"])
	}
	for _, svc := range []string{ing.URL, proc.URL} {
		if resp, err := http.Get(svc + "/readyz"); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s not ready after bad input: %v %v", svc, err, resp)
		}
	}

	// A topic with a control character is malformed MQTT: the broker
	// refuses it at the protocol level and disconnects the client, so it never
	// reaches ingest (whose decoder refuses it as bad_name anyway, see
	// ingest/decode). The pipeline carries on.
	hostile := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(p.mqttURL).SetClientID("hostile").
		SetCleanSession(true).SetAutoReconnect(false))
	if tok := hostile.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	hostile.Publish("sensors/lab/d\x01", 1, false, []byte(`{"temperature":1}`)).WaitTimeout(5 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for hostile.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if hostile.IsConnectionOpen() {
		t.Error("the broker kept a client that published to a topic with a control character")
	}
	hostile.Disconnect(0)
	publish(t, c, "sensors/lab/good", fmt.Sprintf(`{"ts":%d,"seq":%d,"temperature":1}`, time.Now().UnixMilli(), len(bad)))
	p.expectCounts("temperature", int64(good+1), 60*time.Second)
	if got := len(p.deadLetters()); got != len(bad) {
		t.Errorf("%d dead letters after the hostile topic, want %d", got, len(bad))
	}
}

func manyMetrics(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"m%d":%d`, i, i)
	}
	return b.String()
}

// SIGKILL one of two processor replicas mid-stream: the survivor takes over
// its partitions from their checkpoints and the counts stay exact.
func TestProcessorKilledMidStreamKeepsCountsExact(t *testing.T) {
	p := newPipeline(t, options{})
	p.startIngest("ingest-a")
	a := p.startProcessor("a")
	p.startProcessor("b")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := p.loadgenWithFault(ctx, 6*time.Second, func() {
		if err := a.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Log("processor a killed")
	}, "-devices", "64", "-rate", "2000", "-count", "30000")
	if r.Totals.Failed != 0 {
		t.Fatalf("loadgen failed %d", r.Totals.Failed)
	}
	p.expectCounts("temperature", r.Totals.Acked, 90*time.Second)
}

// InfluxDB stopped for 30 s mid-stream: the processors hold their
// checkpoints, the stream buffers, and after the restart every reading is
// counted in its windows, exactly, with the tests' usual 2 s lateness: the
// devices kept sending, so neither the outage nor the backlog read after it
// is their silence, and no reading is late.
func TestInfluxDBOutageLosesNothing(t *testing.T) {
	p := newPipeline(t, options{ownInflux: true})
	p.startIngest("ingest-a")
	p.startProcessor("a")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := p.loadgenWithFault(ctx, 5*time.Second, func() {
		if err := p.influx.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		t.Log("influxdb stopped")
		time.Sleep(30 * time.Second)
		if err := p.influx.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Log("influxdb restarted")
	}, "-devices", "40", "-rate", "1000", "-duration", "45s", "-count", "45000")
	if r.Totals.Failed != 0 {
		t.Fatalf("loadgen failed %d", r.Totals.Failed)
	}
	p.expectCounts("temperature", r.Totals.Acked, 2*time.Minute)
	p.expectNoneLate()
}

// Mosquitto restarted mid-stream: whatever the broker acknowledged to the
// publisher reaches the windows; nothing is counted twice. (This holds for
// ingest's default plain subscription. Mosquitto 2.0 does not persist shared
// subscriptions, so with EDGEFLOW_INGEST_SHARE_GROUP set, what devices publish
// between the broker's restart and ingest's re-subscription is dropped by
// the broker: see docs/operations.md.)
func TestMosquittoRestartLosesNothingAcknowledged(t *testing.T) {
	p := newPipeline(t, options{})
	ing := p.startIngest("ingest-a")
	// Readings held up by the restart arrive seconds late; a lateness that
	// covers the outage keeps them in their windows (with the tests' usual 2 s
	// they would be dead-lettered as late, by design).
	proc := p.startProcessor("a", "EDGEFLOW_PROCESSOR_LATENESS=20s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := p.loadgenWithFault(ctx, 5*time.Second, func() {
		if err := p.mqtt.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := p.mqtt.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Log("mosquitto restarted")
	}, "-devices", "30", "-rate", "1000", "-duration", "16s", "-count", "16000")
	// Wait for the counts to settle, then bound them: at least what was
	// acknowledged, at most what was attempted (never a duplicate).
	var got, last int64 = 0, -1
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got = p.windowCount("10s", "temperature")
		if got >= r.Totals.Acked && got == last {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		last = got
		time.Sleep(3 * time.Second)
	}
	if got < r.Totals.Acked || got > r.Totals.Attempted {
		t.Fatalf("counted %d, want between acknowledged %d and attempted %d (ingest in %v out %v; processor in %v duplicates %v late %v)",
			got, r.Totals.Acked, r.Totals.Attempted,
			metric(t, ing.URL, "edgeflow_ingest_messages_in_total"), metric(t, ing.URL, "edgeflow_ingest_messages_out_total"),
			metric(t, proc.URL, "edgeflow_processor_messages_in_total"),
			metric(t, proc.URL, `edgeflow_processor_messages_dropped_total{reason="duplicate"}`), metric(t, proc.URL, "edgeflow_processor_late_total"))
	}
	if two := p.windowCount("2s", "temperature"); two != got {
		t.Fatalf("2s windows count %d, 10s windows %d: must agree", two, got)
	}
}

func mqttClient(t *testing.T, broker, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, []byte(payload))
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %q: %v", topic, tok.Error())
	}
}

// metric reads one sample from a service's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// Two ingest replicas in one shared-subscription group split the messages
// between them, and the counts stay exact.
func TestIngestReplicasShareTheLoad(t *testing.T) {
	p := newPipeline(t, options{})
	a := p.startIngest("ingest-a", "EDGEFLOW_INGEST_SHARE_GROUP=ingest")
	b := p.startIngest("ingest-b", "EDGEFLOW_INGEST_SHARE_GROUP=ingest")
	p.startProcessor("a")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := p.loadgen(ctx, "-devices", "40", "-rate", "2000", "-count", "6000")
	p.expectCounts("temperature", r.Totals.Acked, 60*time.Second)
	inA := metric(t, a.URL, "edgeflow_ingest_messages_in_total")
	inB := metric(t, b.URL, "edgeflow_ingest_messages_in_total")
	if inA == 0 || inB == 0 || inA+inB != float64(r.Totals.Acked) {
		t.Fatalf("replicas received %v and %v messages, want both > 0 and %d in all", inA, inB, r.Totals.Acked)
	}
}

// NATS restarted mid-stream: ingest stops acknowledging MQTT and reports not
// ready while it is away (Mosquitto keeps the messages), the processors ride
// through, and every reading is counted in its windows exactly once, none
// late: the processor does not take the outage for its devices' silence.
func TestNATSRestartLosesNothing(t *testing.T) {
	p := newPipeline(t, options{})
	ing := p.startIngest("ingest-a")
	// Ingest holds readings while NATS is away and publishes them after it
	// (those whose publishes were in flight, only once their acknowledgements
	// fail, after newer ones). The outage is not silence to the processor,
	// but that tail can reach the stream seconds after the processor caught
	// up again, or behind newer readings of its device, which it cannot see:
	// with the tests' usual 2 s lateness 1 run in 13 had 11 of 20,000
	// readings late. A lateness that covers the tail keeps this test exact.
	p.startProcessor("a", "EDGEFLOW_PROCESSOR_LATENESS=15s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := p.loadgenWithFault(ctx, 5*time.Second, func() {
		p.nats.Shutdown()
		p.nats.WaitForShutdown()
		t.Log("nats stopped")
		notReady := false
		for range 50 {
			if resp, err := http.Get(ing.URL + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					notReady = true
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !notReady {
			t.Error("ingest stayed ready while NATS was down")
		}
		time.Sleep(4 * time.Second)
		p.startNATS()
		t.Log("nats restarted")
	}, "-devices", "30", "-rate", "1000", "-duration", "20s", "-count", "20000")
	if r.Totals.Failed != 0 {
		t.Fatalf("loadgen failed %d", r.Totals.Failed)
	}
	p.expectCounts("temperature", r.Totals.Acked, 90*time.Second)
	p.expectNoneLate()
}

// A point InfluxDB refuses (a field type conflict) is isolated and
// dead-lettered; the rest of its batch is written and counted.
func TestInfluxDBRejectedPointIsDeadLettered(t *testing.T) {
	p := newPipeline(t, options{})
	// "status" becomes a string field of telemetry; a numeric status later conflicts.
	if err := devenv.CreateInfluxDatabase(context.Background(), p.influxURL, p.db); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.influxURL+"/write?db="+p.db+"&precision=ms", "text/plain",
		strings.NewReader(fmt.Sprintf(`telemetry,device=x,site=lab status="ok" %d`, time.Now().UnixMilli())))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("seed write: %v %v", err, resp)
	}
	p.startIngest("ingest-a")
	p.startProcessor("a")
	c := mqttClient(t, p.mqttURL, "conflict")
	for i := range 20 {
		publish(t, c, "sensors/lab/good", fmt.Sprintf(`{"ts":%d,"seq":%d,"temperature":%d}`, time.Now().UnixMilli(), i, i))
	}
	publish(t, c, "sensors/lab/bad", fmt.Sprintf(`{"ts":%d,"seq":1,"status":1}`, time.Now().UnixMilli()))
	p.expectCounts("temperature", 20, 60*time.Second)
	var rejected []string
	deadline := time.Now().Add(30 * time.Second)
	for len(rejected) == 0 && time.Now().Before(deadline) {
		for _, m := range p.deadLetters() {
			if m.Headers().Get(bus.HeaderReason) == "influx_rejected" {
				rejected = append(rejected, string(m.Data()))
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0], "device=bad") || !strings.Contains(rejected[0], "status=1") {
		t.Fatalf("influx_rejected dead letters %q, want the one status line of device bad", rejected)
	}
}
