package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/processor/window"
)

func TestCheckpointRoundTripAndCorruption(t *testing.T) {
	state := []byte("open windows of a partition, repeated repeated repeated repeated")
	v := encodeCheckpoint(123456789, state)
	c, err := decodeManifest(v)
	if err != nil || c.seq != 123456789 || string(c.state) != string(state) || c.chunks != 0 {
		t.Fatalf("round trip: %+v err=%v", c, err)
	}
	// The format before manifests: sequence and state in one S2 block.
	legacy := s2.Encode(nil, append(binary.BigEndian.AppendUint64(nil, 42), state...))
	if c, err := decodeManifest(legacy); err != nil || c.seq != 42 || string(c.state) != string(state) {
		t.Fatalf("old format: %+v err=%v", c, err)
	}
	chunked := checkpoint{seq: 7, chunks: 3, id: 99, size: 2_500_000, sum: [32]byte{1, 2, 3}}
	if got, err := decodeManifest(encodeChunkedCheckpoint(chunked)); err != nil || got.seq != 7 || got.chunks != 3 ||
		got.id != 99 || got.size != chunked.size || got.sum != chunked.sum || got.state != nil {
		t.Fatalf("chunked round trip: %+v err=%v", got, err)
	}
	flipped := bytes.Clone(v)
	flipped[len(flipped)/2] ^= 1
	for _, bad := range [][]byte{nil, []byte("junk"), v[:len(v)/2], flipped, legacy[:len(legacy)/2]} {
		if _, err := decodeManifest(bad); err == nil {
			t.Fatalf("decodeManifest(%q) accepted corrupt input", bad)
		}
	}
}

// stateOf is a window state of n devices with a reading each.
func stateOf(n int, cfg window.Config) *window.State {
	s := window.NewState(cfg)
	now := time.Now().UnixMilli()
	for i := range n {
		s.Add(reading.Reading{Site: "lab", Device: deviceName(i), TS: now, Received: now,
			Metrics: map[string]float64{"t": float64(i)}})
	}
	return s
}

// chunksStored is how many chunks of partition p the bucket's stream holds.
func chunksStored(t *testing.T, js jetstream.JetStream, p int) int {
	t.Helper()
	s, err := js.Stream(t.Context(), "KV_"+bus.BucketCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(fmt.Sprintf("$KV.%s.chunks.%d.>", bus.BucketCheckpoints, p)))
	if err != nil {
		t.Fatal(err)
	}
	return len(info.State.Subjects)
}

// storedCheckpoint is the manifest partition p's checkpoint holds now.
func storedCheckpoint(t testing.TB, kv jetstream.KeyValue, p int) checkpoint {
	t.Helper()
	e, err := kv.Get(t.Context(), checkpointKey(p))
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeManifest(e.Value())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A checkpoint too large for one message is written in chunks, under the
// processor's own NATS permissions, and loaded whole by the next owner.
// The compare-and-set on the manifest fences writers as it fenced the one
// value: the previous owner's next checkpoint fails once the partition is
// claimed, and its chunks, left behind, go with the new owner's next
// checkpoint; a checkpoint's chunks replace the previous one's.
func TestChunkedCheckpointIsFencedAndCollected(t *testing.T) {
	for u, pw := range map[string]string{"ingest": "pw-ingest", "processor": "pw-processor", "notifier": "pw-notifier", "dashboard": "pw-dashboard"} {
		t.Setenv(strings.ToUpper(u)+"_PASSWORD", pw)
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// 64 KiB messages at most: a few thousand devices take several chunks.
	ns, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: filepath.Join(t.TempDir(), "nats"), MaxPayload: 64 << 10,
		AuthConfig: filepath.Join(root, devenv.NATSAuthConfig)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nc, js, err := bus.Connect(ctx, log, bus.Config{URL: ns.ClientURL(), ConnectTimeout: 5 * time.Second,
		User: "processor", Password: "pw-processor"}, "checkpoint-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketCheckpoints})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Windows: []time.Duration{time.Second, 2 * time.Second}, Lateness: 2 * time.Second,
		IdleGrace: time.Second, ForgetAfter: 24 * time.Hour}
	newWorker := func() *worker {
		return &worker{p: 3, cfg: cfg, js: js, ckpt: kv, metrics: NewMetrics(prometheus.NewRegistry()), log: log, now: time.Now}
	}
	// full writes a checkpoint in full, however soon after the last.
	full := func(w *worker) error {
		w.nextFull = time.Time{}
		return w.checkpoint(ctx)
	}

	previous := newWorker()
	if err := previous.load(ctx); err != nil {
		t.Fatal(err)
	}
	previous.state, previous.seq = stateOf(3000, cfg.Window()), 10
	if err := full(previous); err != nil {
		t.Fatal(err)
	}
	first := storedCheckpoint(t, kv, 3)
	if first.chunks < 3 || chunksStored(t, js, 3) != first.chunks {
		t.Fatalf("a checkpoint of %d bytes in %d chunks, %d stored; want several chunks, all stored",
			first.size, first.chunks, chunksStored(t, js, 3))
	}
	t.Logf("3000 devices: %d bytes in %d chunks", first.size, first.chunks)
	previous.state, previous.seq = stateOf(3500, cfg.Window()), 20
	if err := full(previous); err != nil {
		t.Fatal(err)
	}
	second := storedCheckpoint(t, kv, 3)
	if got := chunksStored(t, js, 3); got != second.chunks {
		t.Fatalf("%d chunks stored after a second checkpoint of %d chunks: the first's were not removed", got, second.chunks)
	}
	// Before its next full checkpoint is due, a flush only writes the
	// manifest again.
	previous.seq, previous.nextFull = 25, time.Now().Add(time.Hour)
	rev := previous.rev
	if err := previous.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if c := storedCheckpoint(t, kv, 3); previous.rev == rev || c.seq != 20 || c.id != second.id || chunksStored(t, js, 3) != second.chunks {
		t.Fatalf("a checkpoint before the next full one is due: revision %d (was %d), sequence %d, chunks of id %d (%d stored); "+
			"want the manifest written again unchanged", previous.rev, rev, c.seq, c.id, chunksStored(t, js, 3))
	}

	next := newWorker()
	if err := next.load(ctx); err != nil {
		t.Fatal(err)
	}
	if next.seq != 20 || next.state.Devices() != 3500 {
		t.Fatalf("the next owner loaded %d devices at sequence %d, want 3500 at 20", next.state.Devices(), next.seq)
	}
	if err := previous.checkpoint(ctx); !errors.Is(err, errLostOwnership) {
		t.Fatalf("the previous owner's manifest rewritten after the claim: %v, want %v", err, errLostOwnership)
	}
	previous.state, previous.seq = stateOf(4000, cfg.Window()), 30
	if err := full(previous); !errors.Is(err, errLostOwnership) {
		t.Fatalf("the previous owner's checkpoint after the claim: %v, want %v", err, errLostOwnership)
	}
	if got := chunksStored(t, js, 3); got <= second.chunks {
		t.Fatalf("%d chunks stored: the refused checkpoint's chunks were expected left behind", got)
	}
	if err := full(next); err != nil {
		t.Fatal(err)
	}
	if got, want := chunksStored(t, js, 3), storedCheckpoint(t, kv, 3).chunks; got != want {
		t.Fatalf("%d chunks stored after the new owner's checkpoint of %d: old ones left", got, want)
	}
	again := newWorker()
	if err := again.load(ctx); err != nil || again.seq != 20 || again.state.Devices() != 3500 {
		t.Fatalf("loaded %d devices at sequence %d (%v), want 3500 at 20", again.state.Devices(), again.seq, err)
	}
	// Back under one message: the chunks go too.
	again.state = stateOf(10, cfg.Window())
	if err := full(again); err != nil {
		t.Fatal(err)
	}
	if c := storedCheckpoint(t, kv, 3); c.chunks != 0 || chunksStored(t, js, 3) != 0 {
		t.Fatalf("a small checkpoint in %d chunks, %d chunks stored; want it inline and none stored", c.chunks, chunksStored(t, js, 3))
	}
}

// A checkpoint written before manifests is loaded, and the next checkpoint
// is written in the new format.
func TestOldCheckpointIsLoadedAndUpgraded(t *testing.T) {
	b := newTestBus(t)
	cfg := Config{Windows: []time.Duration{time.Second, 2 * time.Second}, Lateness: 2 * time.Second,
		IdleGrace: time.Second, ForgetAfter: 24 * time.Hour}
	state, err := stateOf(50, cfg.Window()).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ckpt.Create(t.Context(), checkpointKey(0), s2.Encode(nil, append(binary.BigEndian.AppendUint64(nil, 77), state...))); err != nil {
		t.Fatal(err)
	}
	w := &worker{p: 0, cfg: cfg, js: b.js, ckpt: b.ckpt, metrics: NewMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	if err := w.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.seq != 77 || w.state.Devices() != 50 {
		t.Fatalf("loaded %d devices at sequence %d, want 50 at 77", w.state.Devices(), w.seq)
	}
	if err := w.checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	e, err := b.ckpt.Get(t.Context(), checkpointKey(0))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(e.Value(), []byte(checkpointMagic)) {
		t.Fatal("the checkpoint after the upgrade is not a manifest")
	}
}

// A manifest whose chunks are gone cannot be loaded however often it is
// tried: load fails at once, naming the damage, instead of retrying.
func TestDamagedCheckpointIsNotRetried(t *testing.T) {
	b := newTestBus(t)
	c := checkpoint{seq: 5, chunks: 2, id: 1, size: 100}
	if _, err := b.ckpt.Create(t.Context(), checkpointKey(0), encodeChunkedCheckpoint(c)); err != nil {
		t.Fatal(err)
	}
	w := &worker{p: 0, cfg: Config{Windows: []time.Duration{time.Second}, Lateness: time.Second, IdleGrace: time.Second,
		ForgetAfter: time.Hour}, js: b.js, ckpt: b.ckpt, metrics: NewMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.load(ctx); !errors.Is(err, errCheckpointDamaged) {
		t.Fatalf("load = %v, want %v", err, errCheckpointDamaged)
	}
}

// A checkpoint NATS refuses for its size (here the bucket's largest value,
// set below what the processor writes) would be refused again: the worker
// ends at once instead of retrying, and the replica reports the partition
// not ready, with the reason, in its readiness and its stalled gauge.
func TestCheckpointRefusedForItsSizeStallsThePartition(t *testing.T) {
	b := newTestBus(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ckpt, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketCheckpoints, MaxValueSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	leases, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketLeases, TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	// No raw writes and no window closes before the checkpoint fails:
	// InfluxDB is never asked.
	cfg := Config{Windows: []time.Duration{time.Minute}, Lateness: time.Minute, IdleGrace: time.Minute,
		ForgetAfter: 24 * time.Hour, FlushInterval: 100 * time.Millisecond, BatchSize: 1000, FetchSize: 500,
		PurgeInterval: time.Second}
	metrics := NewMetrics(prometheus.NewRegistry())
	in := NewInflux(cfg.Influx)
	defer in.Close()
	o := NewOwnership(leases, "a", 1, 3*time.Second, time.Second, log, prometheus.NewRegistry(), metrics.Stalls,
		func(ctx context.Context, p int, stop <-chan struct{}, held func() bool) error {
			w := &worker{p: p, cfg: cfg, js: b.js, ckpt: ckpt, influx: in, metrics: metrics, log: log, now: time.Now, held: held}
			return w.run(ctx, stop)
		})
	defer o.releaseAll()
	publishDevices(t, b, 1000)
	for {
		if err := o.rebalance(ctx); err != nil {
			t.Fatal(err)
		}
		err := metrics.Stalls.Check(ctx)
		if err != nil && strings.Contains(err.Error(), "partition 0: worker failing") {
			if !strings.Contains(err.Error(), "checkpoint of") || !strings.Contains(err.Error(), "message size exceeds maximum allowed") {
				t.Fatalf("readiness = %v, want the refused checkpoint named", err)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the partition was never reported stalled by its failing worker; readiness: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := testutil.ToFloat64(metrics.Retries.WithLabelValues("checkpoint")); n != 0 {
		t.Errorf("the refused checkpoint was retried %v times", n)
	}
	if n := testutil.ToFloat64(metrics.Stalls.gauge.WithLabelValues("worker")); n != 1 {
		t.Errorf("edgeflow_processor_partitions_stalled{op=worker} = %v, want 1", n)
	}
	if !strings.Contains(logged.String(), "partition worker ended") || !strings.Contains(logged.String(), "message size exceeds maximum allowed") {
		t.Errorf("the log does not tell why the partition stalled:\n%s", logged.String())
	}
}

// BenchmarkCheckpoint is what one full checkpoint of a partition costs
// (encoding, compression, chunks and manifest written, older chunks purged)
// by devices, each with a reading in its 10 s and 1 m windows, three metrics
// and a 64-character name: go test -run XXX -bench Checkpoint ./processor
func BenchmarkCheckpoint(b *testing.B) {
	for _, n := range []int{1000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			js, kv := checkpointBucket(b)
			cfg := Config{Windows: window.DefaultConfig().Sizes, Lateness: 5 * time.Second, IdleGrace: 5 * time.Second,
				ForgetAfter: 24 * time.Hour}
			w := &worker{p: 0, cfg: cfg, js: js, ckpt: kv, metrics: NewMetrics(prometheus.NewRegistry()),
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
			if err := w.load(b.Context()); err != nil {
				b.Fatal(err)
			}
			w.state = window.NewState(cfg.Window())
			now := time.Now().UnixMilli()
			for i := range n {
				w.state.Add(reading.Reading{Site: "lab", Device: deviceName(i), TS: now, Received: now,
					Metrics: map[string]float64{"temperature": 21, "humidity": 50, "pressure": 1013}})
			}
			b.ResetTimer()
			for b.Loop() {
				w.seq++
				w.nextFull = time.Time{}
				if err := w.checkpoint(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			e, err := kv.Get(b.Context(), checkpointKey(0))
			if err != nil {
				b.Fatal(err)
			}
			c := storedCheckpoint(b, kv, 0)
			size := c.size
			if c.chunks == 0 {
				size = len(e.Value())
			}
			b.ReportMetric(float64(size), "bytes")
			b.ReportMetric(float64(c.chunks), "chunks")
		})
	}
}

// checkpointBucket is an embedded NATS server with the checkpoint bucket.
func checkpointBucket(tb testing.TB) (jetstream.JetStream, jetstream.KeyValue) {
	tb.Helper()
	_, js := startTestNATS(tb)
	kv, err := js.CreateOrUpdateKeyValue(tb.Context(), jetstream.KeyValueConfig{Bucket: bus.BucketCheckpoints})
	if err != nil {
		tb.Fatal(err)
	}
	return js, kv
}

// A full checkpoint is put off by its cost in the partition's time or in
// bytes written to NATS, whichever is larger, never past the cap: a small
// state is written in full at every flush, a busy partition's state of
// hundreds of kilobytes every few seconds.
func TestFullCheckpointDelay(t *testing.T) {
	for _, c := range []struct {
		took time.Duration
		size int
		want time.Duration
	}{
		{time.Millisecond, 512, checkpointShare * time.Millisecond},
		{time.Millisecond, 320 << 10, 5 * time.Second},
		{time.Second, 1 << 10, checkpointShare * time.Second},
		{5 * time.Second, 1 << 10, maxCheckpointDelay},
		{time.Millisecond, 64 << 20, maxCheckpointDelay},
	} {
		if got := fullCheckpointDelay(c.took, c.size); got != c.want {
			t.Errorf("full checkpoint of %d bytes in %v: next after %v, want %v", c.size, c.took, got, c.want)
		}
	}
}
