package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/ingest/decode"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// orderJS is a JetStream whose first `doomed` asynchronous publishes never
// get their PubAck (as when a NATS cluster member dies with them in flight)
// until the test fails them; every other publish is stored at once. It
// records the order the stream stores messages in.
type orderJS struct {
	jetstream.JetStream // only the methods below are called

	mu     sync.Mutex
	doomed []*future
	left   int
	stored []uint64 // seqs
}

type future struct {
	msg  *nats.Msg
	ok   chan *jetstream.PubAck
	errc chan error
}

func (f *future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *future) Err() <-chan error            { return f.errc }
func (f *future) Msg() *nats.Msg               { return f.msg }

func (js *orderJS) store(m *nats.Msg) *jetstream.PubAck {
	reading.EachInBatch(m.Data, func(data []byte) bool {
		if r, err := reading.Unmarshal(data); err == nil && r.Seq != nil {
			js.stored = append(js.stored, *r.Seq)
		}
		return true
	})
	return &jetstream.PubAck{Stream: "TELEMETRY", Sequence: uint64(len(js.stored))}
}

func (js *orderJS) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	f := &future{msg: m, ok: make(chan *jetstream.PubAck, 1), errc: make(chan error, 1)}
	if js.left > 0 {
		js.left--
		js.doomed = append(js.doomed, f)
		return f, nil
	}
	f.ok <- js.store(m)
	return f, nil
}

func (js *orderJS) PublishMsg(_ context.Context, m *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.store(m), nil
}

// fail times out the i-th doomed publish.
func (js *orderJS) fail(i int) {
	js.mu.Lock()
	f := js.doomed[i]
	js.mu.Unlock()
	f.errc <- errors.New("nats: timeout waiting for ack")
}

// ackedMessage reports its MQTT acknowledgement.
type ackedMessage struct {
	message
	acked chan<- string
}

func (m *ackedMessage) Ack() { m.acked <- string(m.payload) }

// Publishes that lost their PubAck are republished before anything newer is
// published: a device's readings reach TELEMETRY in the order they arrived,
// even though each republish acknowledges MQTT and lets a newer message in.
func TestRepublishIsNotOvertaken(t *testing.T) {
	js := &orderJS{left: 2}
	b := NewBridge(js, decode.DefaultLimits(), BatchOptions{Partitions: 8, Max: 16}, 16, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()

	acked := make(chan string, 16)
	payload := func(seq int) []byte { return fmt.Appendf(nil, `{"seq":%d,"temperature":1}`, seq) }
	send := func(seq int) {
		b.Handle(nil, &ackedMessage{message: message{topic: "sensors/lab/t1", payload: payload(seq)}, acked: acked})
	}
	waitAck := func(seq int) {
		t.Helper()
		select {
		case got := <-acked:
			if got != string(payload(seq)) {
				t.Fatalf("MQTT ack of %s, want seq %d", got, seq)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no MQTT ack of seq %d", seq)
		}
	}

	published := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			js.mu.Lock()
			got := len(js.doomed)
			js.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d publishes in flight, want %d", got, n)
			}
		}
	}
	// 1 and 2 are in flight, in two batches, when their PubAcks are lost.
	send(1)
	published(1)
	send(2)
	published(2)
	// 1 times out and is republished; its MQTT ack lets 3 in, as the
	// broker would, while 2 still waits for its PubAck.
	js.fail(0)
	waitAck(1)
	send(3)
	time.Sleep(100 * time.Millisecond) // 3's chance to overtake 2
	js.fail(1)
	waitAck(2)
	waitAck(3)

	b.Close()
	<-done
	js.mu.Lock()
	defer js.mu.Unlock()
	if want := []uint64{1, 2, 3}; !slices.Equal(js.stored, want) {
		t.Fatalf("stored seqs %v, want %v: a newer reading overtook a republished one", js.stored, want)
	}
}
