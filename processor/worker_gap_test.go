package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// lossyJS loses one delivery of its ordered consumers' fetches, the one of
// stream sequence drop, once: what a NATS cluster does to a pull request's
// deliveries sent while the client reconnects to another server.
type lossyJS struct {
	jetstream.JetStream
	drop uint64
	lost atomic.Bool
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
	b, err := c.Consumer.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	out := make(chan jetstream.Msg)
	go func() {
		defer close(out)
		for m := range b.Messages() {
			if meta, err := m.Metadata(); err == nil && meta.Sequence.Stream == c.js.drop && c.js.lost.CompareAndSwap(false, true) {
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
	made := time.Now().Add(-5 * time.Second).UnixMilli()
	for i := range int64(n) {
		ts := made + i*50
		b.publish(t, reading.Reading{Site: "lab", Device: "gap", TS: ts, Received: ts, Metrics: map[string]float64{"t": float64(i)}})
	}
	lossy := *b
	js := &lossyJS{JetStream: b.js, drop: n / 2}
	lossy.js = js
	w := testWorker(t, &lossy, in.URL, nil)
	expectExact(t, b, w.worker, n)
	if !js.lost.Load() {
		t.Fatal("no delivery was lost: the test tested nothing")
	}
}
