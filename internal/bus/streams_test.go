package bus

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func TestStreamConfigDefaultsAreValid(t *testing.T) {
	var c StreamConfig
	// An unused prefix: only the default tags apply.
	if err := envconfig.Process("edgeflow_bus_test_unset", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Partitions != 8 || c.Replicas != 1 {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestStreamConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *StreamConfig)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(*StreamConfig) {}, ""},
		{"replicas 3", func(c *StreamConfig) { c.Replicas = 3 }, ""},
		{"replicas 5", func(c *StreamConfig) { c.Replicas = 5 }, ""},
		{"replicas 0", func(c *StreamConfig) { c.Replicas = 0 }, "EDGEFLOW_STREAM_REPLICAS=0"},
		{"replicas 2", func(c *StreamConfig) { c.Replicas = 2 }, "EDGEFLOW_STREAM_REPLICAS=2"},
		{"replicas 7", func(c *StreamConfig) { c.Replicas = 7 }, "EDGEFLOW_STREAM_REPLICAS=7"},
		{"partitions 1", func(c *StreamConfig) { c.Partitions = 1 }, ""},
		{"partitions 1024", func(c *StreamConfig) { c.Partitions = 1024 }, ""},
		{"partitions 0", func(c *StreamConfig) { c.Partitions = 0 }, "EDGEFLOW_PARTITIONS=0"},
		{"partitions negative", func(c *StreamConfig) { c.Partitions = -1 }, "EDGEFLOW_PARTITIONS=-1"},
		{"partitions 1025", func(c *StreamConfig) { c.Partitions = 1025 }, "EDGEFLOW_PARTITIONS=1025"},
		{"telemetry max age 1m", func(c *StreamConfig) { c.TelemetryMaxAge = time.Minute; c.DedupWindow = time.Minute }, ""},
		{"telemetry max age below 1m", func(c *StreamConfig) { c.TelemetryMaxAge = 59 * time.Second; c.DedupWindow = time.Second }, "MAX_AGE"},
		{"aggregates max age below 1m", func(c *StreamConfig) { c.AggregatesMaxAge = time.Second }, "MAX_AGE"},
		{"dead-letter max age zero", func(c *StreamConfig) { c.DeadLetterMaxAge = 0 }, "MAX_AGE"},
		{"telemetry max bytes 1 MiB", func(c *StreamConfig) { c.TelemetryMaxBytes = 1 << 20 }, ""},
		{"telemetry max bytes below 1 MiB", func(c *StreamConfig) { c.TelemetryMaxBytes = 1<<20 - 1 }, "MAX_BYTES"},
		{"dead-letter max bytes below 1 MiB", func(c *StreamConfig) { c.DeadLetterMaxBytes = 1000 }, "MAX_BYTES"},
		{"dedup window 1s", func(c *StreamConfig) { c.DedupWindow = time.Second }, ""},
		{"dedup window below 1s", func(c *StreamConfig) { c.DedupWindow = 999 * time.Millisecond }, "EDGEFLOW_DEDUP_WINDOW"},
		{"dedup window zero", func(c *StreamConfig) { c.DedupWindow = 0 }, "EDGEFLOW_DEDUP_WINDOW"},
		{"dedup window equal to max age", func(c *StreamConfig) { c.DedupWindow = c.TelemetryMaxAge }, ""},
		{"dedup window above max age", func(c *StreamConfig) { c.DedupWindow = c.TelemetryMaxAge + time.Second }, "EDGEFLOW_DEDUP_WINDOW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testStreams(4)
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestStreamConfigValidateReportsEveryProblem(t *testing.T) {
	c := StreamConfig{} // everything wrong at once
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() of a zero config = nil")
	}
	for _, want := range []string{"EDGEFLOW_STREAM_REPLICAS", "EDGEFLOW_PARTITIONS", "MAX_AGE", "MAX_BYTES", "EDGEFLOW_DEDUP_WINDOW"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, missing %q", err, want)
		}
	}
}

func TestPartitionFilter(t *testing.T) {
	for p, want := range map[int]string{0: "telemetry.0.>", 7: "telemetry.7.>", 1023: "telemetry.1023.>"} {
		if got := PartitionFilter(p); got != want {
			t.Errorf("PartitionFilter(%d) = %q, want %q", p, got, want)
		}
	}
}

func TestEnsureCreatesStreams(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	c := testStreams(4)
	if err := Ensure(ctx, js, c.Telemetry(), c.Aggregates(), c.DeadLetter()); err != nil {
		t.Fatal(err)
	}
	// Ensure is idempotent: every service runs it at start-up.
	if err := Ensure(ctx, js, c.Telemetry(), c.Aggregates(), c.DeadLetter()); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}

	tests := []struct {
		name     string
		subjects []string
		discard  jetstream.DiscardPolicy
		maxBytes int64
		maxAge   time.Duration
	}{
		{StreamTelemetry, []string{"telemetry.*.*", "telemetry.*.~.batch"}, jetstream.DiscardNew, c.TelemetryMaxBytes, c.TelemetryMaxAge},
		{StreamAggregates, []string{"aggregates.>"}, jetstream.DiscardOld, -1, c.AggregatesMaxAge},
		{StreamDeadLetter, []string{"deadletter.>"}, jetstream.DiscardOld, c.DeadLetterMaxBytes, c.DeadLetterMaxAge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := js.Stream(ctx, tt.name)
			if err != nil {
				t.Fatalf("stream %s: %v", tt.name, err)
			}
			cfg := st.CachedInfo().Config
			if fmt.Sprint(cfg.Subjects) != fmt.Sprint(tt.subjects) {
				t.Errorf("subjects = %v, want %v", cfg.Subjects, tt.subjects)
			}
			if cfg.Discard != tt.discard {
				t.Errorf("discard = %v, want %v", cfg.Discard, tt.discard)
			}
			if cfg.MaxBytes != tt.maxBytes {
				t.Errorf("max bytes = %d, want %d", cfg.MaxBytes, tt.maxBytes)
			}
			if cfg.MaxAge != tt.maxAge {
				t.Errorf("max age = %v, want %v", cfg.MaxAge, tt.maxAge)
			}
			if cfg.Storage != jetstream.FileStorage {
				t.Errorf("storage = %v, want file", cfg.Storage)
			}
			if cfg.Replicas != 1 {
				t.Errorf("replicas = %d, want 1", cfg.Replicas)
			}
		})
	}

	st, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Duplicates != c.DedupWindow {
		t.Errorf("TELEMETRY duplicates window = %v, want %v", cfg.Duplicates, c.DedupWindow)
	}
	if got := cfg.Metadata[PartitionsKey]; got != "4" {
		t.Errorf("TELEMETRY metadata %s = %q, want 4", PartitionsKey, got)
	}
	if cfg.SubjectTransform == nil || !strings.Contains(cfg.SubjectTransform.Destination, "partition(4,1,2)") {
		t.Errorf("TELEMETRY subject transform = %+v", cfg.SubjectTransform)
	}
}

// TestTelemetryPartitioning publishes as ingest does, on
// telemetry.{site}.{device}, and reads each partition back as a processor
// does: every reading is stored under telemetry.{p}.{site}.{device} with p in
// [0, partitions), a device always lands in the same partition, and its
// readings keep their order there.
func TestTelemetryPartitioning(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	const partitions = 4
	c := testStreams(partitions)
	if err := Ensure(ctx, js, c.Telemetry()); err != nil {
		t.Fatal(err)
	}

	const devices, perDevice = 24, 5
	sites := []string{"lab", "plant-2"}
	type key struct{ site, device string }
	published := map[key]int{}
	for round := range perDevice {
		for d := range devices {
			k := key{sites[d%len(sites)], fmt.Sprintf("t%d", d)}
			ack, err := js.Publish(ctx, reading.TelemetrySubject(k.site, k.device), []byte(strconv.Itoa(round)))
			if err != nil {
				t.Fatal(err)
			}
			if ack.Stream != StreamTelemetry {
				t.Fatalf("published to stream %q", ack.Stream)
			}
			published[k]++
		}
	}

	partitionOf := map[key]int{}
	readSoFar := map[key]int{}
	total := 0
	for p := range partitions {
		for _, m := range storedIn(t, ctx, js, PartitionFilter(p)) {
			tok := strings.Split(m.Subject(), ".")
			if len(tok) != 4 || tok[0] != "telemetry" {
				t.Fatalf("stored subject %q, want telemetry.{p}.{site}.{device}", m.Subject())
			}
			got, err := strconv.Atoi(tok[1])
			if err != nil || got != p {
				t.Fatalf("stored subject %q read through partition %d filter", m.Subject(), p)
			}
			k := key{tok[2], tok[3]}
			if _, ok := published[k]; !ok {
				t.Fatalf("stored subject %q: unknown device", m.Subject())
			}
			if prev, seen := partitionOf[k]; seen && prev != p {
				t.Fatalf("device %v stored in partitions %d and %d", k, prev, p)
			}
			if mine := Partition(k.site, k.device, partitions); mine != p {
				t.Fatalf("device %v: the server put it in partition %d, Partition says %d", k, p, mine)
			}
			// The device's readings arrive in publish order: the n-th one read
			// was published in round n.
			if want := strconv.Itoa(readSoFar[k]); string(m.Data()) != want {
				t.Fatalf("device %v in partition %d: reading %q, want %q (order lost)", k, p, m.Data(), want)
			}
			readSoFar[k]++
			partitionOf[k] = p
			total++
		}
	}
	if total != devices*perDevice {
		t.Fatalf("read %d readings from the partitions, published %d", total, devices*perDevice)
	}
	if len(partitionOf) != devices {
		t.Fatalf("%d devices found, want %d", len(partitionOf), devices)
	}
	for k, n := range published {
		if readSoFar[k] != n {
			t.Fatalf("device %v: read %d readings, published %d", k, readSoFar[k], n)
		}
	}
	used := map[int]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	if len(used) < 2 {
		t.Fatalf("%d devices all hashed into partitions %v: no spreading", devices, used)
	}

	// The same device keeps its partition for later readings too.
	for k, p := range partitionOf {
		ack, err := js.Publish(ctx, reading.TelemetrySubject(k.site, k.device), []byte("late"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, StreamTelemetry)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := st.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("telemetry.%d.%s.%s", p, k.site, k.device); raw.Subject != want {
			t.Fatalf("later reading of %v stored as %q, want %q", k, raw.Subject, want)
		}
	}
}

// A batch published to its partition's subject is stored there as is, read
// through that partition's filter only, and recognised as a batch.
func TestTelemetryBatchesStayInTheirPartition(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	const partitions = 3
	if err := Ensure(ctx, js, testStreams(partitions).Telemetry()); err != nil {
		t.Fatal(err)
	}
	for p := range partitions {
		if _, err := js.Publish(ctx, BatchSubject(p), []byte("batch "+strconv.Itoa(p))); err != nil {
			t.Fatal(err)
		}
	}
	for p := range partitions {
		got := storedIn(t, ctx, js, PartitionFilter(p))
		if len(got) != 1 || got[0].Subject() != BatchSubject(p) || string(got[0].Data()) != "batch "+strconv.Itoa(p) {
			t.Fatalf("partition %d holds %d messages, want its one batch on %s", p, len(got), BatchSubject(p))
		}
		if !IsBatchSubject(got[0].Subject()) {
			t.Fatalf("%s not recognised as a batch", got[0].Subject())
		}
	}
	if IsBatchSubject("telemetry.0.batch.t1") || IsBatchSubject("telemetry.0.lab.t1") {
		t.Fatal("a device's subject taken for a batch")
	}
}

func TestPartitions(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)

	if _, err := Partitions(ctx, js); err == nil {
		t.Fatal("Partitions() without a TELEMETRY stream = nil error")
	}
	c := testStreams(6)
	if err := Ensure(ctx, js, c.Telemetry()); err != nil {
		t.Fatal(err)
	}
	n, err := Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Fatalf("Partitions() = %d, want 6", n)
	}
}

func TestPartitionsRejectsMissingMetadata(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	for _, md := range []map[string]string{nil, {PartitionsKey: "x"}, {PartitionsKey: "0"}, {PartitionsKey: "-3"}} {
		cfg := testStreams(4).Telemetry()
		cfg.Metadata = md
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if n, err := Partitions(ctx, js); err == nil {
			t.Fatalf("metadata %v: Partitions() = %d, want an error", md, n)
		}
	}
}

// A TELEMETRY stream that edgeflow did not create (no partition metadata)
// is not silently re-partitioned.
func TestEnsureRefusesForeignTelemetryStream(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	cfg := testStreams(4).Telemetry()
	cfg.Metadata = nil
	cfg.SubjectTransform = nil
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, js, testStreams(4).Telemetry()); err == nil {
		t.Fatal("Ensure re-partitioned a TELEMETRY stream it did not create")
	}
}

func TestEnsureRefusesPartitionChange(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	if err := Ensure(ctx, js, testStreams(4).Telemetry()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{1, 8} {
		err := Ensure(ctx, js, testStreams(p).Telemetry())
		if err == nil {
			t.Fatalf("Ensure with %d partitions on a 4-partition stream = nil", p)
		}
		if !strings.Contains(err.Error(), "partitions") {
			t.Fatalf("Ensure error %q does not say why", err)
		}
	}
	n, err := Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("after refused changes Partitions() = %d, want 4", n)
	}
	// Other sizing may still change.
	c := testStreams(4)
	c.TelemetryMaxBytes = 32 << 20
	if err := Ensure(ctx, js, c.Telemetry()); err != nil {
		t.Fatalf("Ensure with new max bytes: %v", err)
	}
	st, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxBytes; got != 32<<20 {
		t.Fatalf("max bytes = %d after update, want %d", got, 32<<20)
	}
}

// TestTelemetryDiscardNew fills a 1 MiB TELEMETRY: once full, a publish is
// refused (back-pressure on ingest) and no stored reading is dropped.
func TestTelemetryDiscardNew(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	c := testStreams(2)
	c.TelemetryMaxBytes = 1 << 20
	if err := Ensure(ctx, js, c.Telemetry()); err != nil {
		t.Fatal(err)
	}

	payload := bytes.Repeat([]byte("x"), 10<<10)
	const n = 113 // ~1.1 MiB
	accepted := 0
	var refused error
	for i := range n {
		_, err := js.Publish(ctx, reading.TelemetrySubject("lab", fmt.Sprintf("t%d", i%5)), payload)
		if err != nil {
			refused = err
			break
		}
		accepted++
	}
	if refused == nil {
		t.Fatalf("published %d bytes into a %d-byte stream without an error", n*len(payload), c.TelemetryMaxBytes)
	}
	var apiErr *jetstream.APIError
	if !errors.As(refused, &apiErr) {
		t.Fatalf("refusal %v is not a JetStream API error", refused)
	}
	if accepted < 90 {
		t.Fatalf("refused after only %d messages (%d bytes): %v", accepted, accepted*len(payload), refused)
	}
	st, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 1 || info.State.Msgs != uint64(accepted) {
		t.Fatalf("stream state first=%d msgs=%d, want first=1 msgs=%d: old readings were dropped",
			info.State.FirstSeq, info.State.Msgs, accepted)
	}
	if info.State.Bytes > uint64(c.TelemetryMaxBytes) {
		t.Fatalf("stream holds %d bytes, above max %d", info.State.Bytes, c.TelemetryMaxBytes)
	}
	// It stays refused: still full.
	if _, err := js.Publish(ctx, reading.TelemetrySubject("lab", "t0"), payload); err == nil {
		t.Fatal("a publish into the full stream succeeded")
	}
}

// TestPurgePartitionBelowSequence is how a processor releases what it has
// checkpointed: only its partition, only below the checkpoint.
func TestPurgePartitionBelowSequence(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	const partitions = 2
	if err := Ensure(ctx, js, testStreams(partitions).Telemetry()); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if _, err := js.Publish(ctx, reading.TelemetrySubject("lab", fmt.Sprintf("t%d", i%12)), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(p int) []uint64 {
		var out []uint64
		for _, m := range storedIn(t, ctx, js, PartitionFilter(p)) {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, md.Sequence.Stream)
		}
		return out
	}
	before := [partitions][]uint64{seqs(0), seqs(1)}
	if len(before[0]) < 4 || len(before[1]) < 4 {
		t.Fatalf("devices not spread over both partitions: %d and %d readings", len(before[0]), len(before[1]))
	}

	const p = 1
	cut := before[p][len(before[p])/2] // the checkpoint: purge strictly below it
	st, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(PartitionFilter(p)), jetstream.WithPurgeSequence(cut)); err != nil {
		t.Fatal(err)
	}

	var wantKept []uint64
	for _, q := range before[p] {
		if q >= cut {
			wantKept = append(wantKept, q)
		}
	}
	if got := seqs(p); fmt.Sprint(got) != fmt.Sprint(wantKept) {
		t.Fatalf("partition %d after purge below %d: %v, want %v", p, cut, got, wantKept)
	}
	if got := seqs(1 - p); fmt.Sprint(got) != fmt.Sprint(before[1-p]) {
		t.Fatalf("other partition changed by the purge: %v, want %v", got, before[1-p])
	}
}

// A batch published again with its Nats-Msg-Id (ingest's republish after a
// lost PubAck) is stored once within the duplicate window, and again after.
func TestTelemetryDedup(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	c := testStreams(2)
	c.DedupWindow = time.Second
	if err := Ensure(ctx, js, c.Telemetry()); err != nil {
		t.Fatal(err)
	}
	publish := func(id string) *jetstream.PubAck {
		t.Helper()
		ack, err := js.Publish(ctx, BatchSubject(1), []byte(`{"site":"lab","device":"t1","ts":1000,"metrics":{"t":1},"rx":0}`), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}

	first := publish("run1.1")
	if first.Duplicate {
		t.Fatal("first publish reported as duplicate")
	}
	second := publish("run1.1")
	if !second.Duplicate {
		t.Fatal("second publish with the same Nats-Msg-Id inside the window: Duplicate = false")
	}
	if second.Sequence != first.Sequence {
		t.Fatalf("duplicate acknowledged with sequence %d, want the original %d", second.Sequence, first.Sequence)
	}
	if other := publish("run1.2"); other.Duplicate {
		t.Fatal("the next batch reported as duplicate")
	}

	st, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2", info.State.Msgs)
	}

	// After the window the ID is forgotten.
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(250 * time.Millisecond)
		if ack := publish("run1.1"); !ack.Duplicate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Nats-Msg-Id still deduplicated 5s after a %v window", c.DedupWindow)
		}
	}
}
