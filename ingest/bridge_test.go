package main

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/ingest/decode"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// message is an MQTT message as paho hands it over; only what prepare reads.
type message struct {
	topic   string
	payload []byte
}

func (m *message) Duplicate() bool   { return false }
func (m *message) Qos() byte         { return 1 }
func (m *message) Retained() bool    { return false }
func (m *message) Topic() string     { return m.topic }
func (m *message) MessageID() uint16 { return 1 }
func (m *message) Payload() []byte   { return m.payload }
func (m *message) Ack()              {}

func newTestBridge(now time.Time, partitions int) *Bridge {
	b := NewBridge(nil, decode.DefaultLimits(), BatchOptions{Partitions: partitions, Max: 1000}, 1000,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	b.now = func() time.Time { return now }
	return b
}

// testRound is a round of MQTT messages on topic, one per payload, received at now.
func testRound(now time.Time, topic string, payloads ...string) *round {
	r := &round{}
	for _, p := range payloads {
		r.arrivals = append(r.arrivals, arrival{&message{topic: topic, payload: []byte(p)}, now})
	}
	return r
}

// batchReadings decodes every reading of a batch message.
func batchReadings(t *testing.T, data []byte) []reading.Reading {
	t.Helper()
	var out []reading.Reading
	reading.EachInBatch(data, func(line []byte) bool {
		r, err := reading.Unmarshal(line)
		if err != nil {
			t.Fatalf("batch line %q: %v", line, err)
		}
		out = append(out, r)
		return true
	})
	return out
}

// A round's readings go out as one batch per partition, each device's in the
// order they arrived, on the partition the stream's own transform would
// give the device, with a Nats-Msg-Id of their own.
func TestPrepareBatchesReadingsByPartition(t *testing.T) {
	now := time.UnixMilli(1732560000123)
	const partitions = 4
	b := newTestBridge(now, partitions)
	r := &round{}
	devices := []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"}
	for seq := range 3 {
		for _, d := range devices {
			r.arrivals = append(r.arrivals, arrival{&message{topic: "sensors/lab/" + d,
				payload: fmt.Appendf(nil, `{"ts":%d,"seq":%d,"temperature":21.5}`, 1732560000000+seq, seq)}, now})
		}
	}
	b.prepare(r)
	if len(r.futures) != len(r.msgs) || len(r.readings) != len(r.msgs) {
		t.Fatalf("%d messages, %d futures, %d counts", len(r.msgs), len(r.futures), len(r.readings))
	}
	ids := map[string]bool{}
	next := map[string]uint64{}
	total := 0
	for i, m := range r.msgs {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == "" || ids[id] {
			t.Fatalf("batch %d has Nats-Msg-Id %q (seen before: %v)", i, id, ids[id])
		}
		ids[id] = true
		if !bus.IsBatchSubject(m.Subject) {
			t.Fatalf("message on %s, want a batch subject", m.Subject)
		}
		rs := batchReadings(t, m.Data)
		if len(rs) != r.readings[i] {
			t.Fatalf("batch %d holds %d readings, counted %d", i, len(rs), r.readings[i])
		}
		for _, rd := range rs {
			if want := bus.BatchSubject(bus.Partition(rd.Site, rd.Device, partitions)); m.Subject != want {
				t.Fatalf("%s/%s in %s, want %s", rd.Site, rd.Device, m.Subject, want)
			}
			if *rd.Seq != next[rd.Device] {
				t.Fatalf("%s: seq %d after %d: order lost", rd.Device, *rd.Seq, next[rd.Device])
			}
			next[rd.Device]++
			if rd.Received != now.UnixMilli() || rd.Metrics["temperature"] != 21.5 {
				t.Fatalf("reading %+v", rd)
			}
			total++
		}
	}
	if total != 3*len(devices) {
		t.Fatalf("%d readings published, want %d", total, 3*len(devices))
	}
	if len(r.msgs) > partitions || len(r.msgs) < 2 {
		t.Fatalf("%d batches for %d partitions, want one per partition used", len(r.msgs), partitions)
	}
}

// A batch stops growing at MaxBatchBytes: the next reading starts another,
// and the device's order holds across them.
func TestPrepareSplitsBatchesAtMaxBatchBytes(t *testing.T) {
	now := time.UnixMilli(1732560000123)
	b := newTestBridge(now, 1)
	var payloads []string
	for seq := range 400 {
		payloads = append(payloads, fmt.Sprintf(`{"ts":%d,"seq":%d,"temperature":21.5,"humidity":48.25}`, 1732560000000+seq, seq))
	}
	r := testRound(now, "sensors/lab/t1", payloads...)
	b.prepare(r)
	if len(r.msgs) < 2 {
		t.Fatalf("%d batches of 400 readings, want them split at %d bytes", len(r.msgs), bus.MaxBatchBytes)
	}
	var seq uint64
	for _, m := range r.msgs {
		if len(m.Data) > bus.MaxBatchBytes {
			t.Fatalf("batch of %d bytes", len(m.Data))
		}
		for _, rd := range batchReadings(t, m.Data) {
			if *rd.Seq != seq {
				t.Fatalf("seq %d, want %d", *rd.Seq, seq)
			}
			seq++
		}
	}
	if seq != 400 {
		t.Fatalf("%d readings, want 400", seq)
	}
}

// A refused message becomes one dead-letter record saying why; the round's
// other messages are published as usual.
func TestPrepareDeadLettersWithTheReason(t *testing.T) {
	b := newTestBridge(time.Now(), 8)
	r := &round{arrivals: []arrival{
		{&message{topic: "sensors/lab/t.1", payload: []byte(`{"temperature":1}`)}, b.now()},
		{&message{topic: "sensors/lab/t1", payload: []byte(`{"temperature":2}`)}, b.now()},
	}}
	b.prepare(r)
	if len(r.msgs) != 2 || r.readings[0] != 0 || r.readings[1] != 1 {
		t.Fatalf("%d messages with %v readings, want a dead letter then a batch of one", len(r.msgs), r.readings)
	}
	m := r.msgs[0]
	if m.Subject != "deadletter.ingest" || m.Header.Get(bus.HeaderReason) != "bad_name" ||
		m.Header.Get(bus.HeaderSource) != "sensors/lab/t.1" || string(m.Data) != `{"temperature":1}` {
		t.Fatalf("dead letter %s %v %q", m.Subject, m.Header, m.Data)
	}
	if !strings.Contains(m.Header.Get(bus.HeaderDetail), "t.1") {
		t.Fatalf("detail %q does not say what was wrong", m.Header.Get(bus.HeaderDetail))
	}
}

// A round takes what is queued and, while an earlier round is
// unacknowledged, what arrives until it is settled or the batch wait ends,
// no more than the batch maximum; it ends with the queue when Close was
// called.
func TestGatherWaitsAndCaps(t *testing.T) {
	b := NewBridge(nil, decode.DefaultLimits(), BatchOptions{Partitions: 1, Wait: 200 * time.Millisecond, Max: 3}, 16,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func(n int) {
		for range n {
			b.Handle(nil, &message{topic: "sensors/lab/t1", payload: []byte(`{"temperature":1}`)})
		}
	}
	// Nothing in flight: what is queued goes at once.
	send(1)
	if r, more := b.gather(t.Context(), timer); r == nil || len(r.arrivals) != 1 || !more {
		t.Fatalf("round of %v (more %v), want the one queued message", r, more)
	}
	// A round in flight: what arrives within the wait joins.
	b.unsettled.Store(1)
	send(1)
	go func() { time.Sleep(20 * time.Millisecond); send(1) }()
	if r, _ := b.gather(t.Context(), timer); r == nil || len(r.arrivals) != 2 {
		t.Fatalf("round of %v, want the two messages that arrived within the wait", r)
	}
	send(5)
	if r, _ := b.gather(t.Context(), timer); len(r.arrivals) != 3 {
		t.Fatalf("round of %d messages, want the maximum, 3", len(r.arrivals))
	}
	b.Close()
	if r, more := b.gather(t.Context(), timer); len(r.arrivals) != 2 || more {
		t.Fatalf("round of %d (more %v) after Close, want the last 2 and no more", len(r.arrivals), more)
	}
	if r, more := b.gather(t.Context(), timer); r != nil || more {
		t.Fatalf("round %v after the queue emptied", r)
	}
}

// Under a steady flow, with every round acknowledged at once, rounds still
// go out only once per batch wait, each with what arrived since the last:
// otherwise each JetStream message would carry a reading or two.
func TestGatherPacesRoundsWhenNothingIsInFlight(t *testing.T) {
	const wait = 200 * time.Millisecond
	b := NewBridge(nil, decode.DefaultLimits(), BatchOptions{Partitions: 1, Wait: wait, Max: 100}, 16,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() { b.Handle(nil, &message{topic: "sensors/lab/t1", payload: []byte(`{"temperature":1}`)}) }
	send()
	if r, _ := b.gather(t.Context(), timer); r == nil || len(r.arrivals) != 1 {
		t.Fatalf("round of %v, want the first message at once", r)
	}
	first := time.Now()
	send()
	go func() {
		for range 3 {
			time.Sleep(20 * time.Millisecond)
			send()
		}
	}()
	r, _ := b.gather(t.Context(), timer)
	if r == nil || len(r.arrivals) != 4 {
		t.Fatalf("round of %v, want the 4 messages that arrived within the wait", r)
	}
	if gap := time.Since(first); gap < wait*3/4 {
		t.Errorf("second round after %v, want about the batch wait %v", gap, wait)
	}
	// After a quiet batch wait, a message goes at once again.
	time.Sleep(wait)
	send()
	start := time.Now()
	if r, _ := b.gather(t.Context(), timer); r == nil || len(r.arrivals) != 1 {
		t.Fatalf("round of %v, want the lone message", r)
	}
	if took := time.Since(start); took > wait/2 {
		t.Errorf("a message at a quiet ingest waited %v", took)
	}
}

// The round in flight being settled ends the gathering, however long the
// batch wait.
func TestGatherEndsWhenTheRoundInFlightIsSettled(t *testing.T) {
	b := NewBridge(nil, decode.DefaultLimits(), BatchOptions{Partitions: 1, Wait: time.Hour, Max: 100}, 16,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	b.unsettled.Store(1)
	b.Handle(nil, &message{topic: "sensors/lab/t1", payload: []byte(`{"temperature":1}`)})
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.unsettled.Store(0)
		b.settled <- struct{}{}
	}()
	if r, more := b.gather(t.Context(), timer); r == nil || len(r.arrivals) != 1 || !more {
		t.Fatalf("round of %v (more %v), want the one message once the round in flight was settled", r, more)
	}
}
