package main

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Readings delivered again (ingest redelivered after a reconnect, a device's
// QoS 1 retransmission) reach TELEMETRY twice; with a replica restarted in
// between, the second delivery is read by a worker that knows the first
// only from the checkpoint. Each reading counts once, and the second
// delivery is counted as dropped.
func TestRedeliveredReadingsCountOnce(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	first := testWorker(t, b, in.URL, nil)

	const n = 20
	made := time.Now().UnixMilli()
	rs := make([]reading.Reading, n)
	for i := range rs {
		seq, ts := uint64(i), made+int64(i)*50
		rs[i] = reading.Reading{Site: "lab", Device: "redelivered", TS: ts, Received: ts, Seq: &seq, DeviceTime: true,
			Metrics: map[string]float64{"t": float64(i)}}
	}
	half := rs[:n/2]
	b.publish(t, half...)
	for i := range half {
		half[i].Received += 300 // received again
	}
	b.publish(t, half...)
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(first.metrics.In) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the first replica read %v messages, want %d", testutil.ToFloat64(first.metrics.In), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first.stopped(t)
	if d := testutil.ToFloat64(first.metrics.Dropped.WithLabelValues("duplicate")); d != n/2 {
		t.Fatalf("the first replica dropped %v duplicates, want %d", d, n/2)
	}

	next := testWorker(t, b, in.URL, nil)
	b.publish(t, rs...) // the first half again, and the second half
	for i := range rs {
		rs[i].Received += 300
	}
	b.publish(t, rs[n/2:]...)
	expectExact(t, b, next.worker, n)
	if d := testutil.ToFloat64(next.metrics.Dropped.WithLabelValues("duplicate")); d != n {
		t.Fatalf("the next replica dropped %v duplicates, want %d", d, n)
	}
}
