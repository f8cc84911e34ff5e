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

// lossyJS loses deliveries of its ordered consumers' fetches, those lose
// picks: what a NATS cluster does to a pull request's deliveries sent while
// the client reconnects to another server. Fetches are numbered from 0
// across all its consumers; size, if set, shrinks a fetch's batch, so a
// test knows where each fetch starts and ends.
type lossyJS struct {
	jetstream.JetStream
	lose    func(fetch, i int, meta *jetstream.MsgMetadata) bool // lose delivery i (from 0) of that fetch?
	size    func(fetch, n int) int                               // the batch size of that fetch; nil: n
	fetches atomic.Int64
	lost    atomic.Int64
}

func (j *lossyJS) OrderedConsumer(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	c, err := j.JetStream.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, err
	}
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

// A delivery lost in the middle of a fetch is noticed by the gap in the
// consumer sequence and read again: every reading is counted. (Before, the
// next fetch went on after the last message received and the reading was
// never folded, nor written raw; task chaos lost a few readings this way on
// every kill of the NATS server the processors were connected to.)
func TestLostDeliveryIsReadAgain(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	const n = 100
	publishGapReadings(t, b, n)
	lossy := *b
	var once atomic.Bool
	js := &lossyJS{JetStream: b.js, lose: func(_, _ int, meta *jetstream.MsgMetadata) bool {
		return meta.Sequence.Stream == n/2 && once.CompareAndSwap(false, true)
	}}
	lossy.js = js
	w := testWorker(t, &lossy, in.URL, nil)
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

// Deliveries lost at a fetch's edges are read again too. Each Fetch of an
// ordered consumer is a new consumer numbering its deliveries from 1: the
// first deliveries of a fetch lost, the next one's consumer sequence can be
// the previous fetch's last plus one, and a lost last delivery the client
// library saw moves the next fetch's start past it, whose first delivery is
// then numbered 1. (Before, both passed for consecutive: the readings were
// never folded, and purged with the next checkpoint.)
func TestDeliveriesLostAtAFetchsEdgesAreReadAgain(t *testing.T) {
	const n = 100
	for _, tc := range []struct {
		name string
		size func(fetch, n int) int
		lose func(fetch, i int, meta *jetstream.MsgMetadata) bool
	}{
		{"first of a fetch", // fetch 0 delivers 1; fetch 1 loses its first, its second is numbered 2
			firstFetchOf(1),
			func(fetch, i int, _ *jetstream.MsgMetadata) bool { return fetch == 1 && i == 0 }},
		{"first three of a fetch", // fetch 0 delivers 3; fetch 1 loses 3, its fourth is numbered 4
			firstFetchOf(3),
			func(fetch, i int, _ *jetstream.MsgMetadata) bool { return fetch == 1 && i < 3 }},
		{"last of a fetch", // fetch 0 delivers 10 and loses the 10th; fetch 1 starts after it
			firstFetchOf(10),
			func(fetch, i int, _ *jetstream.MsgMetadata) bool { return fetch == 0 && i == 9 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBus(t)
			in := startInflux(t)
			publishGapReadings(t, b, n)
			lossy := *b
			js := &lossyJS{JetStream: b.js, size: tc.size, lose: tc.lose}
			lossy.js = js
			w := testWorker(t, &lossy, in.URL, nil)
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
	cons, err := js.OrderedConsumer(ctx, bus.StreamTelemetry, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.PartitionFilter(0)}})
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
