package bus

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Every bucket of the topology is created with the sizing's replicas, and
// ensuring it again (the next replica's start-up) keeps it.
func TestEnsureBucketCreatesTopology(t *testing.T) {
	t.Parallel()
	_, js := connect(t, startNATS(t))
	ctx := t.Context()
	c := testStreams(1)
	for _, want := range []struct {
		cfg jetstream.KeyValueConfig
		ttl time.Duration
	}{
		{c.Leases(3 * time.Second), 3 * time.Second},
		{c.Checkpoints(), 0},
		{c.AlertState(), 0},
		{c.LastSeen(), 0},
	} {
		for range 2 {
			kv, err := EnsureBucket(ctx, js, want.cfg)
			if err != nil {
				t.Fatal(err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Bucket() != want.cfg.Bucket || st.TTL() != want.ttl || st.Config().Replicas != c.Replicas {
				t.Fatalf("bucket %s: got %s, TTL %v, %d replicas", want.cfg.Bucket, st.Bucket(), st.TTL(), st.Config().Replicas)
			}
		}
	}
	if _, err := EnsureBucket(ctx, js, jetstream.KeyValueConfig{Bucket: "bad name"}); err == nil {
		t.Fatal("an invalid bucket was created")
	}
}

// NOTIFICATIONS is a work queue on notifications.{channel} that refuses new
// notifications when full.
func TestNotificationsStream(t *testing.T) {
	t.Parallel()
	_, js := connect(t, startNATS(t))
	ctx := t.Context()
	if err := Ensure(ctx, js, testStreams(1).Notifications(1<<20)); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, StreamNotifications)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Retention != jetstream.WorkQueuePolicy || cfg.Discard != jetstream.DiscardNew || cfg.MaxBytes != 1<<20 {
		t.Fatalf("NOTIFICATIONS config %+v", cfg)
	}
	if _, err := js.Publish(ctx, "notifications.hook", []byte("x")); err != nil {
		t.Fatalf("publish to a channel: %v", err)
	}
}
