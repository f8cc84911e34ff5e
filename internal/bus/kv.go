package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Buckets of the contract: the services' shared state in NATS KV. Each is
// created or updated at start-up by the service that uses it (EnsureBucket).
const (
	// BucketLeases holds members.{id} heartbeats and lease.{partition}
	// ownership records; both expire after the lease TTL unless renewed, so a
	// replica that dies (SIGKILL, lost node) frees its partitions by itself.
	BucketLeases = "PROCESSOR_LEASES"
	// BucketCheckpoints holds, per partition, the last stream sequence folded
	// into the windows and the open windows themselves.
	BucketCheckpoints = "PROCESSOR_CHECKPOINTS"
	// BucketAlerts holds one alert record per rule and device, key
	// {rule}.{site}.{device}: the state machine and its outbox.
	BucketAlerts = "ALERT_STATE"
	// BucketLastSeen holds, per device (key {site}.{device}), when its newest
	// reading arrived, as its closed windows tell.
	BucketLastSeen = "DEVICE_LAST_SEEN"
)

// Leases is the PROCESSOR_LEASES bucket; ttl is the lease TTL.
func (c StreamConfig) Leases(ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: BucketLeases,
		Description: "processor membership and partition leases", TTL: ttl,
		Storage: jetstream.FileStorage, Replicas: c.Replicas}
}

// Checkpoints is the PROCESSOR_CHECKPOINTS bucket.
func (c StreamConfig) Checkpoints() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: BucketCheckpoints,
		Description: "processor partition checkpoints: stream sequence and open windows",
		Storage:     jetstream.FileStorage, Replicas: c.Replicas}
}

// AlertState is the ALERT_STATE bucket.
func (c StreamConfig) AlertState() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: BucketAlerts,
		Description: "notifier: alert state machines and their unsent messages, {rule}.{site}.{device}",
		Storage:     jetstream.FileStorage, Replicas: c.Replicas}
}

// LastSeen is the DEVICE_LAST_SEEN bucket.
func (c StreamConfig) LastSeen() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: BucketLastSeen,
		Description: "notifier: when each device's newest reading arrived, as its closed windows tell, {site}.{device}",
		Storage:     jetstream.FileStorage, Replicas: c.Replicas}
}

// EnsureBucket creates or updates the bucket cfg and returns it.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}
