package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// lossyJS loses deliveries of its consumers' fetches, those lose picks: what a NATS cluster does to a pull request's deliveries sent while
// the client reconnects to another server. Fetches are numbered from 0
// across all its consumers; size, if set, shrinks a fetch's batch, so a
// test knows where each fetch starts and ends.
type lossyJS struct {
	jetstream.JetStream
	lose    func(fetch, i int, meta *jetstream.MsgMetadata) bool // lose delivery i (from 0) of that fetch?
	size    func(fetch, n int) int                               // the batch size of that fetch; nil: n
	fetches atomic.Int64
	lost    atomic.Int64
	created atomic.Int64 // consumers made
}

func (j *lossyJS) CreateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := j.JetStream.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, err
	}
	j.created.Add(1)
	return &lossyConsumer{Consumer: c, js: j}, nil
}

type lossyConsumer struct {
	jetstream.Consumer
	js *lossyJS
}

func (c *lossyConsumer) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	fetch := int(c.js.fetches.Add(1) - 1)
	if c.js.size != nil {
		n = c.js.size(fetch, n)
	}
	b, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan jetstream.Msg)
	go func() {
		defer close(out)
		i := -1
		for m := range b.Messages() {
			i++
			if meta, err := m.Metadata(); err == nil && c.js.lose(fetch, i, meta) {
				c.js.lost.Add(1)
				continue
			}
			out <- m
		}
	}()
	return &lossyBatch{MessageBatch: b, msgs: out}, nil
}

type lossyBatch struct {
	jetstream.MessageBatch
	msgs chan jetstream.Msg
}

func (b *lossyBatch) Messages() <-chan jetstream.Msg { return b.msgs }

// lossyWorker runs a worker of partition 0 reading b's TELEMETRY through js
// and writing to an InfluxDB of its own.
func lossyWorker(t *testing.T, b *testBus, js *lossyJS) *testRun {
	t.Helper()
	lossy := *b
	lossy.js = js
	return testWorker(t, &lossy, startInflux(t).URL, nil)
}

// A delivery lost in the middle of a fetch is noticed by the gap in the
// consumer sequence and read again: every reading is counted. (Before, the
// next fetch went on after the last message received and the reading was
// never folded, nor written raw; task chaos lost a few readings this way on
// every kill of the NATS server the processors were connected to.)
func TestLostDeliveryIsReadAgain(t *testing.T) {
	b := newTestBus(t)
	const n = 100
	publishGapReadings(t, b, n)
	var once atomic.Bool
	js := &lossyJS{JetStream: b.js, lose: func(_, _ int, meta *jetstream.MsgMetadata) bool {
		return meta.Sequence.Stream == n/2 && once.CompareAndSwap(false, true)
	}}
	w := lossyWorker(t, b, js)
	expectExact(t, b, w.worker, n)
	if js.lost.Load() == 0 {
		t.Fatal("no delivery was lost: the test tested nothing")
	}
}

// publishGapReadings puts n readings of one device on TELEMETRY, made in the
// last 5 s, for the lossy tests.
func publishGapReadings(t *testing.T, b *testBus, n int64) {
	t.Helper()
	made := time.Now().Add(-5 * time.Second).UnixMilli()
	for i := range n {
		ts := made + i*50
		b.publish(t, reading.Reading{Site: "lab", Device: "gap", TS: ts, Received: ts, Metrics: map[string]float64{"t": float64(i)}})
	}
}

// firstFetchOf makes the first fetch deliver at most k messages.
func firstFetchOf(k int) func(fetch, n int) int {
	return func(fetch, n int) int {
		if fetch == 0 {
			return k
		}
		return n
	}
}

// Deliveries lost at a fetch's edges are read again too: the numbering runs
// on across the fetches of a consumer, so a loss between two fetches is a
// gap like any other. (With nats.go's ordered consumer, a new consumer at
// every Fetch, both passed for consecutive once: the readings were never
// folded, and purged with the next checkpoint.)
func TestDeliveriesLostAtAFetchsEdgesAreReadAgain(t *testing.T) {
	const n = 100
	for _, tc := range []struct {
		name string
		size func(fetch, n int) int
		lose func(fetch, i int, meta *jetstream.MsgMetadata) bool
	}{
		{"first of a fetch", // fetch 0 delivers 1; fetch 1 loses its first (2), its second is numbered 3
			firstFetchOf(1),
			func(fetch, i int, _ *jetstream.MsgMetadata) bool { return fetch == 1 && i == 0 }},
		{"first three of a fetch", // fetch 0 delivers 3; fetch 1 loses 3 (4-6), its fourth is numbered 7
			firstFetchOf(3),
			func(fetch, i int, _ *jetstream.MsgMetadata) bool { return fetch == 1 && i < 3 }},
		{"last of a fetch", // fetch 0 delivers 10 and loses the 10th; fetch 1 starts with 11
			firstFetchOf(10),
			func(fetch, i int, _ *jetstream.MsgMetadata) bool { return fetch == 0 && i == 9 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBus(t)
			publishGapReadings(t, b, n)
			js := &lossyJS{JetStream: b.js, size: tc.size, lose: tc.lose}
			w := lossyWorker(t, b, js)
			expectExact(t, b, w.worker, n)
			if js.lost.Load() == 0 {
				t.Fatal("no delivery was lost: the test tested nothing")
			}
			// Noticed once, and no fetch after it taken for a gap.
			if retries := testutil.ToFloat64(w.metrics.Retries.WithLabelValues("fetch_gap")); retries != 1 {
				t.Fatalf("%v gaps noticed, want 1", retries)
			}
		})
	}
}

// A fetch whose every delivery was lost came back empty, but proves nothing
// about being caught up: the consumer delivered what it had.
func TestFetchWithEveryDeliveryLostIsNotCaughtUp(t *testing.T) {
	b := newTestBus(t)
	publishGapReadings(t, b, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := &lossyJS{JetStream: b.js, lose: func(int, int, *jetstream.MsgMetadata) bool { return true }}
	cons, err := js.CreateConsumer(ctx, bus.StreamTelemetry, jetstream.ConsumerConfig{FilterSubjects: []string{bus.PartitionFilter(0)}, AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
		t.Fatal("a delivery came through")
	}
	if js.lost.Load() != 10 {
		t.Fatalf("%d deliveries lost, want 10", js.lost.Load())
	}
	w := &worker{p: 0, js: b.js, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if caughtUp, _ := w.caughtUp(ctx, cons, batch.Error()); caughtUp {
		t.Fatal("caught up after a fetch that lost every delivery")
	}
}

// One consumer serves every fetch of a partition: no consumer is made
// again while it answers. (nats.go's ordered consumer deleted and created
// its server-side consumer at every Fetch: three API requests each, 8 % of
// NATS's CPU at 8,000 readings a second.)
func TestOneConsumerServesEveryFetch(t *testing.T) {
	b := newTestBus(t)
	const n = 100
	publishGapReadings(t, b, n)
	js := &lossyJS{JetStream: b.js, size: func(int, int) int { return 7 },
		lose: func(int, int, *jetstream.MsgMetadata) bool { return false }}
	w := lossyWorker(t, b, js)
	expectExact(t, b, w.worker, n)
	if f := js.fetches.Load(); f < n/7 {
		t.Fatalf("%d fetches: the test tested nothing", f)
	}
	if c := js.created.Load(); c != 1 {
		t.Fatalf("%d consumers made for %d fetches, want 1", c, js.fetches.Load())
	}
}

// A consumer that goes away (NATS restarted, or the server it lived on in a
// cluster died) is made again from the last message folded, and nothing is
// lost or counted twice.
func TestDeletedConsumerIsMadeAgain(t *testing.T) {
	b := newTestBus(t)
	const n = 100
	publishGapReadings(t, b, n/2)
	js := &lossyJS{JetStream: b.js, lose: func(int, int, *jetstream.MsgMetadata) bool { return false }}
	w := lossyWorker(t, b, js)
	expectExact(t, b, w.worker, n/2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, bus.StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	names := s.ConsumerNames(ctx)
	deleted := 0
	for name := range names.Name() {
		if err := s.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != 1 {
		t.Fatalf("%d consumers on TELEMETRY, want the worker's one", deleted)
	}
	made := time.Now().Add(-500 * time.Millisecond).UnixMilli() // after the first half, not late
	for i := range int64(n / 2) {
		ts := made + i*10
		b.publish(t, reading.Reading{Site: "lab", Device: "gap", TS: ts, Received: ts, Metrics: map[string]float64{"t": float64(n/2 + i)}})
	}
	expectExact(t, b, w.worker, n)
	if c := js.created.Load(); c < 2 {
		t.Fatalf("%d consumers made: the deleted one was not replaced", c)
	}
}
