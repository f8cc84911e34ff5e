package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// A replica whose lease lapsed while it stalled (NATS restarted, the process
// paused) may still be running when another claims its partition. The new
// worker claims the checkpoint as it loads it, so the previous one fails its
// next checkpoint and stops, and everything it purged is at or before the
// checkpoint the new one started from. (Before, the new worker read on from
// the checkpoint it had loaded while the previous one checkpointed and purged
// past it: the new worker's windows missed the purged readings and overwrote
// the complete ones in InfluxDB. task chaos saw 10 devices' windows with a
// fraction of their readings after a NATS restart.)
func TestTakeoverWhileThePreviousOwnerRuns(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	stopSending := startSender(t, b)
	previous := testWorker(t, b, in.URL, nil)
	time.Sleep(2 * time.Second) // several checkpoints and purges
	next := testWorker(t, b, in.URL, nil)
	previous.endedWith(t, errLostOwnership)
	time.Sleep(3 * time.Second) // windows close and are written by the new owner
	n := stopSending()
	expectExact(t, b, next.worker, n)
	// AGGREGATES keeps the first of two windows with one id; InfluxDB the
	// last. Both must hold every reading.
	for _, w := range []string{"1s", "2s"} {
		if got := influxWindowCount(t, in.URL, w); got != n {
			t.Errorf("InfluxDB telemetry_%s counts %d readings, want %d", w, got, n)
		}
	}
}

// A worker stops, writing and checkpointing nothing more, once its lease may
// have lapsed: from then on another replica may own the partition and purge
// readings before this worker fetches them, and its windows would have holes.
func TestLapsedLeaseWritesNothing(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	var held atomic.Bool
	held.Store(true)
	w := testWorker(t, b, in.URL, held.Load)
	now := time.Now().UnixMilli()
	b.publish(t, reading.Reading{Site: "lab", Device: "d", TS: now, Received: now, Metrics: map[string]float64{"t": 1}})
	deadline := time.Now().Add(30 * time.Second)
	for checkpointSeq(t, b) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the first reading was never checkpointed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	held.Store(false)
	b.publish(t, reading.Reading{Site: "lab", Device: "d", TS: now + 1, Received: now + 1, Metrics: map[string]float64{"t": 2}})
	w.endedWith(t, errLeaseLapsed)
	if seq := checkpointSeq(t, b); seq != 1 {
		t.Fatalf("checkpoint at sequence %d after the lease lapsed, want 1", seq)
	}
	if got := influxQuery(t, in.URL, `SELECT count(t) FROM telemetry`); got != 1 {
		t.Fatalf("%d raw points in InfluxDB, want only the one folded while the lease was held", got)
	}
}

// The lease a replica holds lapses, by its own clock, no later than the
// bucket lets another replica claim the partition.
func TestLeaseLapsesBeforeAnotherCanClaim(t *testing.T) {
	b := newTestBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 3 * time.Second
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketLeases, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	claimed := func(held chan<- func() bool) func(context.Context, int, <-chan struct{}, func() bool) error {
		return func(ctx context.Context, _ int, stop <-chan struct{}, h func() bool) error {
			held <- h
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		}
	}
	aHeld, bHeld := make(chan func() bool, 1), make(chan func() bool, 1)
	a := NewOwnership(kv, "a", 1, ttl, time.Second, log, prometheus.NewRegistry(), NewStalls(prometheus.NewRegistry()), claimed(aHeld))
	other := NewOwnership(kv, "b", 1, ttl, time.Second, log, prometheus.NewRegistry(), NewStalls(prometheus.NewRegistry()), claimed(bHeld))
	if err := a.rebalance(ctx); err != nil { // claims partition 0 and, never renewing it, stalls
		t.Fatal(err)
	}
	defer a.releaseAll() // ends its worker
	held := <-aHeld
	if !held() {
		t.Fatal("a lease just claimed is not held")
	}
	for {
		if err := other.rebalance(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-bHeld:
			if held() {
				t.Fatal("another replica claimed the partition while the first still held it by its clock")
			}
			other.releaseAll()
			return
		case <-ctx.Done():
			t.Fatal("the lapsed lease was never claimed by the other replica")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func checkpointSeq(t *testing.T, b *testBus) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := b.ckpt.Get(ctx, checkpointKey(0))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0 // not yet claimed
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeManifest(e.Value())
	if err != nil {
		t.Fatal(err)
	}
	return c.seq
}

// influxWindowCount is the readings of metric t counted in InfluxDB's
// windows of one length.
func influxWindowCount(t *testing.T, influxURL, window string) int64 {
	t.Helper()
	return influxQuery(t, influxURL, `SELECT sum("count") FROM `+MeasurementWindowPrefix+window+` WHERE metric = 't'`)
}

// influxQuery runs a query of one number on database w (0 without a result).
func influxQuery(t *testing.T, influxURL, q string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := devenv.InfluxDB{URL: influxURL, Database: "w"}.Scalar(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return int64(v)
}

// A worker that ends with an error that will not go away (a checkpoint this
// version cannot read, say) leaves its partition stalled: readiness names
// the partition and the error, and the partition is claimed again only after
// a growing backoff, not in a busy loop. Once a worker of it advances, it is
// ready again.
func TestFailingWorkerStallsThePartition(t *testing.T) {
	b := newTestBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketLeases, TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stalls := NewStalls(prometheus.NewRegistry())
	broken := errors.New("checkpoint from the future")
	var starts atomic.Int32
	var heal atomic.Bool
	o := NewOwnership(kv, "a", 1, 3*time.Second, time.Second, log, prometheus.NewRegistry(), stalls,
		func(ctx context.Context, p int, stop <-chan struct{}, _ func() bool) error {
			starts.Add(1)
			if !heal.Load() {
				return broken
			}
			stalls.Clear(p) // what a worker's first flush does
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		})
	defer o.releaseAll()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := o.rebalance(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := starts.Load(); n < 2 || n > 3 {
		t.Errorf("worker started %d times in 3 s of rebalancing every 20 ms; want 2-3 (1 s backoff, doubling)", n)
	}
	err = stalls.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "partition 0: worker failing") || !strings.Contains(err.Error(), broken.Error()) {
		t.Fatalf("readiness while the worker keeps failing = %v", err)
	}
	heal.Store(true)
	for stalls.Stalled(0) {
		if ctx.Err() != nil {
			t.Fatal("the partition never advanced once its worker could run")
		}
		if err := o.rebalance(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := stalls.Check(ctx); err != nil {
		t.Fatalf("readiness after the worker advanced = %v", err)
	}
}
