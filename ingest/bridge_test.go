package main

import (
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

func newTestBridge(now time.Time) *Bridge {
	b := NewBridge(nil, decode.DefaultLimits(), 16, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	b.now = func() time.Time { return now }
	return b
}

func TestPrepareTurnsReadingsIntoTelemetryMessages(t *testing.T) {
	now := time.UnixMilli(1732560000123)
	b := newTestBridge(now)
	d := b.prepare(&message{topic: "sensors/lab/t1", payload: []byte(`{"ts":1732560000000,"seq":7,"temperature":21.5}`)}, b.now())
	if d.rejected || len(d.msgs) != 1 {
		t.Fatalf("rejected=%v msgs=%d, want one reading", d.rejected, len(d.msgs))
	}
	m := d.msgs[0]
	if m.Subject != "telemetry.lab.t1" {
		t.Fatalf("subject %q", m.Subject)
	}
	r, err := reading.Unmarshal(m.Data)
	if err != nil || r.TS != 1732560000000 || r.Received != now.UnixMilli() || *r.Seq != 7 || r.Metrics["temperature"] != 21.5 {
		t.Fatalf("reading %+v err %v", r, err)
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id == "" || id != r.MsgID() {
		t.Fatalf("Nats-Msg-Id %q, want %q", id, r.MsgID())
	}
	// The same bytes again (an MQTT redelivery) get the same ID: JetStream drops the copy.
	again := b.prepare(&message{topic: "sensors/lab/t1", payload: []byte(`{"ts":1732560000000,"seq":7,"temperature":21.5}`)}, b.now())
	if again.msgs[0].Header.Get(jetstream.MsgIDHeader) != m.Header.Get(jetstream.MsgIDHeader) {
		t.Fatal("a redelivered message got another Nats-Msg-Id")
	}
}

func TestPrepareDeadLettersWithTheReason(t *testing.T) {
	b := newTestBridge(time.Now())
	d := b.prepare(&message{topic: "sensors/lab/t.1", payload: []byte(`{"temperature":1}`)}, b.now())
	if !d.rejected || len(d.msgs) != 1 {
		t.Fatalf("rejected=%v msgs=%d, want one dead letter", d.rejected, len(d.msgs))
	}
	m := d.msgs[0]
	if m.Subject != "deadletter.ingest" || m.Header.Get(bus.HeaderReason) != "bad_name" ||
		m.Header.Get(bus.HeaderSource) != "sensors/lab/t.1" || string(m.Data) != `{"temperature":1}` {
		t.Fatalf("dead letter %s %v %q", m.Subject, m.Header, m.Data)
	}
	if !strings.Contains(m.Header.Get(bus.HeaderDetail), "t.1") {
		t.Fatalf("detail %q does not say what was wrong", m.Header.Get(bus.HeaderDetail))
	}
}
