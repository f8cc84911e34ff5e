package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// publishBatch puts rs on TELEMETRY in one batch, as ingest does, with
// extra lines (not readings) appended.
func (b *testBus) publishBatch(t *testing.T, rs []reading.Reading, extra ...string) {
	t.Helper()
	var data []byte
	for i := range rs {
		line, err := reading.Encode(&rs[i])
		if err != nil {
			t.Fatal(err)
		}
		data = reading.AppendBatch(data, line)
	}
	for _, e := range extra {
		data = reading.AppendBatch(data, []byte(e))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := nats.NewMsg(bus.BatchSubject(0))
	m.Data = data
	if _, err := b.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// Ingest's batches are folded reading by reading. A reading redelivered in
// a later batch (MQTT redelivered it after ingest crashed, or the device
// sent it twice) is dropped where the windows are, so windows and raw
// points count each reading once; a line that is not a reading is
// dead-lettered with its line, and the rest of its batch still counts.
func TestBatchesCountEveryReadingOnce(t *testing.T) {
	b := newTestBus(t)
	influx := startInflux(t)
	base := time.Now().Add(-30 * time.Second).UnixMilli()
	var rs []reading.Reading
	for i := range 15 {
		for _, dev := range []string{"d1", "d2"} {
			seq := uint64(i)
			rs = append(rs, reading.Reading{Site: "lab", Device: dev, TS: base + int64(i)*100, Seq: &seq, DeviceTime: true,
				Received: base + int64(i)*100, Metrics: map[string]float64{"t": float64(i)}})
		}
	}
	b.publishBatch(t, rs[:20])
	// The last five of each device's first ten again, received later.
	replay := append([]reading.Reading(nil), rs[10:]...)
	for i := range replay[:10] {
		replay[i].Received += 5000
	}
	b.publishBatch(t, replay, `{"site":"lab","device":"d1"}`)
	w := testWorker(t, b, influx.URL, nil)

	expectExact(t, b, w.worker, int64(len(rs)))
	if got := testutil.ToFloat64(w.metrics.Dropped.WithLabelValues("duplicate")); got != 10 {
		t.Fatalf("%v readings dropped as duplicates, want the 10 replayed", got)
	}
	if got := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("invalid_reading")); got != 1 {
		t.Fatalf("%v invalid readings dead-lettered, want 1", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw := influxQuery(t, influx.URL, fmt.Sprintf(`SELECT count("t") FROM %q`, MeasurementRaw))
		if raw == int64(len(rs)) {
			break
		}
		if raw > int64(len(rs)) || time.Now().After(deadline) {
			t.Fatalf("%d raw points, want %d", raw, len(rs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	dead := streamMsgs(t, b.js, bus.StreamDeadLetter)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if src, want := dead[0].Headers().Get(bus.HeaderSource), bus.BatchSubject(0)+" seq 2 line 21"; src != want {
		t.Fatalf("dead letter source %q, want %q", src, want)
	}
}
