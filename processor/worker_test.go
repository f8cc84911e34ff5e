package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// startTestNATS starts an embedded NATS server with JetStream, stopped at
// cleanup, and connects to it.
func startTestNATS(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ns, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: filepath.Join(tb.TempDir(), "nats")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// testBus is an embedded NATS server with the processor's streams and a
// one-partition TELEMETRY, as ingest would create it.
type testBus struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	ckpt jetstream.KeyValue
}

func newTestBus(t *testing.T) *testBus {
	t.Helper()
	nc, js := startTestNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := bus.StreamConfig{Replicas: 1, Partitions: 1, TelemetryMaxAge: time.Hour, TelemetryMaxBytes: 1 << 30,
		DedupWindow: time.Minute, AggregatesMaxAge: time.Hour, DeadLetterMaxAge: time.Hour, DeadLetterMaxBytes: 1 << 28}
	if err := bus.Ensure(ctx, js, sc.Telemetry(), sc.Aggregates(), sc.DeadLetter()); err != nil {
		t.Fatal(err)
	}
	ckpt, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketCheckpoints})
	if err != nil {
		t.Fatal(err)
	}
	return &testBus{nc: nc, js: js, ckpt: ckpt}
}

// publish puts readings on TELEMETRY as ingest does.
func (b *testBus) publish(t *testing.T, rs ...reading.Reading) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range rs {
		data, err := rs[i].Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.js.Publish(ctx, reading.TelemetrySubject(rs[i].Site, rs[i].Device), data); err != nil {
			t.Fatal(err)
		}
	}
}

// windowCounts sums the counts of metric "t" in the windows on AGGREGATES,
// per window length.
func (b *testBus) windowCounts(t *testing.T) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	for _, a := range b.aggregates(t) {
		counts[a.Window] += a.Metrics["t"].Count
	}
	return counts
}

// aggregates returns the windows on AGGREGATES, each once (by its message
// id, the first published).
func (b *testBus) aggregates(t *testing.T) []reading.Aggregate {
	t.Helper()
	seen := map[string]bool{}
	var out []reading.Aggregate
	for _, m := range streamMsgs(t, b.js, bus.StreamAggregates) {
		var a reading.Aggregate
		if err := json.Unmarshal(m.Data(), &a); err != nil {
			t.Fatal(err)
		}
		if !seen[a.MsgID()] {
			seen[a.MsgID()] = true
			out = append(out, a)
		}
	}
	return out
}

// streamMsgs returns every message on stream, oldest first.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

// testWorker runs a worker on partition 0 with short windows (1 s and 2 s),
// 2 s lateness and 1 s idle grace, writing to influxURL, its lease held while
// held says so (nil: no lease); opts change that configuration. Unless it
// ended on its own (the test checks why), it is stopped at cleanup and must
// return nil.
func testWorker(t *testing.T, b *testBus, influxURL string, held func() bool, opts ...func(*Config)) *testRun {
	t.Helper()
	cfg := Config{
		Influx:        InfluxConfig{Config: influx.Config{URL: influxURL, Org: "edgeflow", Bucket: "w", Timeout: 2 * time.Second}, WriteRaw: true},
		Windows:       []time.Duration{time.Second, 2 * time.Second},
		Lateness:      2 * time.Second,
		IdleGrace:     time.Second,
		ForgetAfter:   24 * time.Hour,
		FlushInterval: 100 * time.Millisecond,
		BatchSize:     1000,
		FetchSize:     500,
		PurgeInterval: time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	in := NewInflux(cfg.Influx)
	t.Cleanup(in.Close)
	stop := make(chan struct{})
	r := &testRun{ended: make(chan struct{}), stop: stop, worker: &worker{p: 0, cfg: cfg, js: b.js, ckpt: b.ckpt, influx: in,
		metrics: NewMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, held: held}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.err = r.run(ctx, stop); close(r.ended) }()
	t.Cleanup(func() {
		defer cancel()
		select {
		case <-r.ended:
			return
		default:
		}
		close(stop)
		select {
		case <-r.ended:
			if r.err != nil {
				t.Errorf("worker: %v", r.err)
			}
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return r
}

// testRun is a worker running in the background.
type testRun struct {
	*worker
	stop  chan struct{} // closed to stop it, as SIGTERM does
	ended chan struct{} // closed when run returned
	err   error         // what run returned, once ended
}

// stopped stops the worker as SIGTERM does (it flushes and checkpoints) and
// waits until it returned nil.
func (r *testRun) stopped(t *testing.T) {
	t.Helper()
	close(r.stop)
	r.endedWith(t, nil)
}

// endedWith waits for the worker to end on its own with want.
func (r *testRun) endedWith(t *testing.T, want error) {
	t.Helper()
	select {
	case <-r.ended:
		if !errors.Is(r.err, want) {
			t.Fatalf("worker ended with %v, want %v", r.err, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("worker still running, want it ended with %v", want)
	}
}

// startSender publishes a reading of devices a and b every 20 ms until the
// returned function is called, which returns how many were sent. It stops
// between ticks, never inside a publish: a publish whose wait for the ack
// were cancelled may still be stored, and the count would miss a reading the
// stream holds.
func startSender(t *testing.T, b *testBus) (stop func() int64) {
	t.Helper()
	quit := make(chan struct{})
	sent := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { sent <- n }()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			now := time.Now().UnixMilli()
			for _, dev := range []string{"a", "b"} {
				r := reading.Reading{Site: "lab", Device: dev, TS: now, Received: now, Metrics: map[string]float64{"t": float64(n)}}
				data, _ := r.Marshal()
				pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := b.js.Publish(pctx, reading.TelemetrySubject(r.Site, r.Device), data)
				pcancel()
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				n++
			}
		}
	}()
	return func() int64 {
		close(quit)
		n := <-sent
		t.Logf("%d readings sent", n)
		// The worker purges what it checkpointed: the last sequence is what
		// the stream took.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := b.js.Stream(ctx, bus.StreamTelemetry)
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(s.CachedInfo().State.LastSeq); got != n {
			t.Fatalf("TELEMETRY holds %d readings, the sender counted %d", got, n)
		}
		return n
	}
}

func startInflux(t *testing.T) *devenv.Process {
	t.Helper()
	_, err := devenv.InfluxdBinary()
	devenv.RequireInstalled(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := devenv.StartInfluxDB(ctx, devenv.InfluxOptions{Dir: filepath.Join(t.TempDir(), "influxdb"), Database: "w"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

// expectExact waits until every window length counts want readings, then
// checks that none was late.
func expectExact(t *testing.T, b *testBus, w *worker, want int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		counts := b.windowCounts(t)
		if counts["1s"] == want && counts["2s"] == want {
			break
		}
		if counts["1s"] > want || counts["2s"] > want || time.Now().After(deadline) {
			t.Fatalf("windows count %v, want %d in each length (late: %v)", counts, want, testutil.ToFloat64(w.metrics.Late))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if late := testutil.ToFloat64(w.metrics.Late); late != 0 {
		t.Fatalf("%v readings late", late)
	}
}

// Readings held up upstream (ingest waiting for NATS, the broker's queue)
// reach TELEMETRY long after they were made. The processor, caught up with
// them as they come, must not take the time they were held for silence: the
// device was sending all along, and its windows close by its own event time.
// (Before silence was measured from the consumption of a device's readings,
// every flush closed by the wall clock the windows of the readings just read,
// 30 s old, and the next readings of those windows were late.)
func TestReadingsHeldUpstreamAreNotLate(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	w := testWorker(t, b, in.URL, nil)

	// Made 30 s ago at 10 per second, released 5 times as fast: several
	// flushes (every 100 ms) fall inside each 1 s window.
	made := time.Now().Add(-30 * time.Second).UnixMilli()
	time.Sleep(500 * time.Millisecond) // the worker is caught up with an empty partition
	const n = 200
	for i := range int64(n) {
		ts := made + i*100
		b.publish(t, reading.Reading{Site: "lab", Device: "held", TS: ts, Received: ts, Metrics: map[string]float64{"t": float64(i)}})
		time.Sleep(20 * time.Millisecond)
	}
	expectExact(t, b, w.worker, n)
}

// A device that keeps sending while InfluxDB is down longer than lateness +
// grace: the worker is blocked on its write, the stream buffers, and when
// InfluxDB is back the backlog is read and none of it is late.
func TestInfluxDBOutageMakesNothingLate(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	w := testWorker(t, b, in.URL, nil)

	stopSending := startSender(t, b)
	time.Sleep(2 * time.Second)
	if err := in.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	if err := in.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	n := stopSending()
	if retries := testutil.ToFloat64(w.metrics.Retries.WithLabelValues("influx_write")); retries == 0 {
		t.Fatal("the worker never retried a write: InfluxDB was not down while it flushed")
	}
	expectExact(t, b, w.worker, n)
}

// An empty fetch is not proof of being caught up: caughtUp asks the server.
func TestCaughtUpIsMeasuredNotAssumed(t *testing.T) {
	b := newTestBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range int64(10) {
		b.publish(t, reading.Reading{Site: "lab", Device: "d", TS: 1_732_560_000_000 + i, Metrics: map[string]float64{"t": 1}})
	}
	w := &worker{p: 0, js: b.js, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cons, err := b.js.CreateConsumer(ctx, bus.StreamTelemetry, jetstream.ConsumerConfig{FilterSubjects: []string{bus.PartitionFilter(0)}, AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(n int) []fetched {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		var out []fetched
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fetched{m, meta})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		fetch    int
		keep     bool // false: as if the fetch had come back empty
		caughtUp bool
		pending  int64
	}{
		{"fetch came back empty with 6 pending", 4, false, false, 6},
		{"fetch read 4 of 6", 4, true, false, 2},
		{"fetch read the last 2", 10, true, true, 0},
		{"fetch came back empty, nothing pending", 10, false, true, 0},
	} {
		got := fetch(tc.fetch)
		w.fetched = nil
		if tc.keep && len(got) > 0 {
			w.fetched = got
			w.cseq = got[len(got)-1].meta.Sequence.Consumer // as gap keeps it
		}
		caughtUp, pending := w.caughtUp(ctx, cons, nil)
		if caughtUp != tc.caughtUp || pending != tc.pending {
			t.Fatalf("%s: caughtUp %v with %d pending, want %v with %d", tc.name, caughtUp, pending, tc.caughtUp, tc.pending)
		}
	}
	if caughtUp, _ := w.caughtUp(ctx, cons, fmt.Errorf("interrupted: %w", nats.ErrConnectionClosed)); caughtUp {
		t.Fatal("an interrupted fetch counted as caught up")
	}
}

// A worker whose context ends (its lease was lost) returns even when its
// partition is idle and it has nothing to flush, so the partition can be
// claimed again.
func TestAbortedWorkerReturnsWhenIdle(t *testing.T) {
	b := newTestBus(t)
	cfg := Config{Windows: []time.Duration{time.Second}, Lateness: time.Second, IdleGrace: time.Second,
		FlushInterval: 100 * time.Millisecond, BatchSize: 100, FetchSize: 50, PurgeInterval: time.Second}
	w := &worker{p: 0, cfg: cfg, js: b.js, ckpt: b.ckpt, metrics: NewMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx, make(chan struct{})) }()
	time.Sleep(500 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an aborted idle worker kept running")
	}
}

// A partition caught up with nothing open or unsaved fetches with the long
// idle wait; anything to flush brings the flush interval back.
func TestFetchWaitsLongOnlyWhenIdle(t *testing.T) {
	now := time.Now()
	idle := func() *worker {
		return &worker{cfg: Config{FlushInterval: 250 * time.Millisecond}, now: func() time.Time { return now },
			lastFlush: now, caughtUpAt: now, seq: 7, savedSeq: 7}
	}
	r := reading.Reading{Site: "lab", Device: "d", TS: now.UnixMilli(), Metrics: map[string]float64{"t": 1}}
	for _, tc := range []struct {
		name string
		set  func(*worker)
		want time.Duration
	}{
		{"idle", func(*worker) {}, idleFetchWait},
		{"not caught up at the last fetch", func(w *worker) { w.caughtUpAt = time.Time{} }, 250 * time.Millisecond},
		{"a window open", func(w *worker) { w.open = 1 }, 250 * time.Millisecond},
		{"folded, not yet checkpointed", func(w *worker) { w.seq = 8 }, 250 * time.Millisecond},
		{"a raw reading to write", func(w *worker) { w.batch.AddReading(&r) }, 250 * time.Millisecond},
		{"a dead letter to publish", func(w *worker) { w.dead = append(w.dead, nats.NewMsg("x")) }, 250 * time.Millisecond},
		{"a flush nearly due", func(w *worker) { w.open, w.lastFlush = 1, now.Add(-240*time.Millisecond) }, 50 * time.Millisecond},
	} {
		w := idle()
		tc.set(w)
		if got := w.fetchWait(); got != tc.want {
			t.Errorf("%s: fetch wait %s, want %s", tc.name, got, tc.want)
		}
	}
}
