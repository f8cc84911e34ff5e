package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/processor/window"
)

// burstDevices is how many distinct devices TestManyDevicesInOnePartition
// sends: EDGEFLOW_TEST_DEVICES, else 20,000, about twice what a partition's
// checkpoint held when it had to fit in one KV value.
func burstDevices(t *testing.T) int {
	t.Helper()
	v := os.Getenv("EDGEFLOW_TEST_DEVICES")
	if v == "" {
		return 20_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("EDGEFLOW_TEST_DEVICES=%q: want a positive number", v)
	}
	return n
}

// A burst of distinct devices into one partition (one MQTT client with the
// shared device credential making up names, say) is processed like any
// other load: every reading checkpointed and counted exactly, the partition
// never stalled, and the next owner loads every device. (Before, the
// checkpoint was one KV value: once the partition's devices no longer fit in
// NATS's max payload, the checkpoint was refused and retried forever, the
// partition stopped, TELEMETRY filled and ingest stopped acknowledging.)
func TestManyDevicesInOnePartition(t *testing.T) {
	n := burstDevices(t)
	b := newTestBus(t)
	in := startInflux(t)
	w := testWorker(t, b, in.URL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	start := time.Now()
	publishDevices(t, b, n)
	t.Logf("%d readings of distinct devices published in %s", n, time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(60*time.Second + time.Duration(n)*time.Millisecond)
	for seq := checkpointSeq(t, b); seq != uint64(n); seq = checkpointSeq(t, b) {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint at sequence %d of %d after %s; readiness: %v", seq, n,
				time.Since(start).Round(time.Second), w.metrics.Stalls.Check(ctx))
		}
		time.Sleep(200 * time.Millisecond)
	}
	c := storedCheckpoint(t, b.ckpt, 0)
	t.Logf("every reading checkpointed %s after the first was published: %d bytes in %d chunks",
		time.Since(start).Round(time.Millisecond), c.size, c.chunks)
	if c.chunks < 2 {
		t.Fatalf("the checkpoint of %d devices fits in one message (%d chunks): the test no longer tests what it should", n, c.chunks)
	}
	expectExact(t, b, w.worker, int64(n))
	t.Logf("every window counted %s after the first reading was published", time.Since(start).Round(time.Millisecond))
	// InfluxDB has them all too: every device is a tag value.
	if got := influxQuery(t, in.URL, `SELECT count(t) FROM `+MeasurementRaw); got != int64(n) {
		t.Errorf("InfluxDB holds %d raw readings, want %d", got, n)
	}
	for _, win := range []string{"1s", "2s"} {
		if got := influxWindowCount(t, in.URL, win); got != int64(n) {
			t.Errorf("InfluxDB telemetry_%s counts %d readings, want %d", win, got, n)
		}
	}
	if err := w.metrics.Stalls.Check(ctx); err != nil {
		t.Errorf("readiness after the burst: %v", err)
	}

	next := &worker{p: 0, cfg: w.cfg, js: b.js, ckpt: b.ckpt, metrics: NewMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	loadStart := time.Now()
	loaded := heapPerDevice(n, func() any {
		if err := next.load(ctx); err != nil {
			t.Fatal(err)
		}
		return next.state
	})
	if got := next.state.Devices(); got != n || next.seq != uint64(n) {
		t.Fatalf("the next owner loaded %d devices at sequence %d, want %d at %d", got, next.seq, n, n)
	}
	c = storedCheckpoint(t, b.ckpt, 0)
	t.Logf("the next owner loaded %d devices (%d bytes in %d chunks) in %s; its state holds %.0f bytes of heap per device",
		n, c.size, c.chunks, time.Since(loadStart).Round(time.Millisecond), loaded)
	// What a device costs while its windows are open, in the default
	// configuration and with the load generator's three metrics.
	open := heapPerDevice(n, func() any {
		s := window.NewState(window.DefaultConfig())
		now := time.Now().UnixMilli()
		for i := range n {
			s.Add(reading.Reading{Site: "lab", Device: deviceName(i), TS: now, Received: now,
				Metrics: map[string]float64{"temperature": 21, "humidity": 50, "pressure": 1013}})
		}
		return s
	})
	t.Logf("with its 10 s and 1 m windows open (3 metrics), a device holds %.0f bytes of heap", open)
}

// heapPerDevice is the heap that what build makes holds, per device of n.
func heapPerDevice(n int, build func() any) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
}

// deviceName is the name of the i-th made-up device: 64 hex digits, the
// longest a name may be and as random as names come, the worst case for the
// checkpoint's size.
func deviceName(i int) string {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	return hex.EncodeToString(sum[:])
}

// publishDevices puts one reading of each of n devices (deviceName) on
// TELEMETRY, at the current time.
func publishDevices(t *testing.T, b *testBus, n int) {
	t.Helper()
	const batch = 2000
	for i := 0; i < n; i += batch {
		futures := make([]jetstream.PubAckFuture, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			now := time.Now().UnixMilli()
			r := reading.Reading{Site: "lab", Device: deviceName(j), TS: now, Received: now,
				Metrics: map[string]float64{"t": float64(j % 1000)}}
			data, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: reading.TelemetrySubject(r.Site, r.Device), Data: data})
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("publish not acknowledged within 30 s")
			}
		}
	}
}
