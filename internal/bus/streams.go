package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Stream names of the contract.
const (
	StreamTelemetry  = "TELEMETRY"
	StreamAggregates = "AGGREGATES"
	StreamAlerts     = "ALERTS"
	StreamDeadLetter = "DEADLETTER"
	// StreamNotifications is the notifier's delivery queue: one subject per
	// channel (notifications.{channel}), a work queue from which a
	// notification leaves only when its channel confirmed the delivery.
	StreamNotifications = "NOTIFICATIONS"
)

// PartitionsKey is the stream metadata key that records how many partitions
// the TELEMETRY subject transform hashes devices into. Processors read it
// from the stream rather than from their own configuration, so the writer and
// the readers can never disagree.
const PartitionsKey = "edgeflow.partitions"

// StreamConfig is the sizing of the streams (EDGEFLOW_STREAM_*). The writer
// of a stream creates or updates it at start-up with these values.
type StreamConfig struct {
	Replicas int `envconfig:"STREAM_REPLICAS" default:"1" desc:"replicas of every stream and bucket (3 on a NATS cluster)"`
	// Partitions is fixed when TELEMETRY is first created; changing it later
	// is refused because the processors' checkpoints are per partition.
	Partitions         int           `envconfig:"PARTITIONS" default:"8" desc:"TELEMETRY partitions: the unit processors share work by"`
	TelemetryMaxAge    time.Duration `envconfig:"TELEMETRY_MAX_AGE" default:"168h" desc:"oldest unprocessed reading TELEMETRY keeps"`
	TelemetryMaxBytes  int64         `envconfig:"TELEMETRY_MAX_BYTES" default:"1073741824" desc:"unprocessed backlog TELEMETRY holds before ingest stops acknowledging"`
	DedupWindow        time.Duration `envconfig:"DEDUP_WINDOW" default:"2m" desc:"how long a Nats-Msg-Id is remembered for deduplication"`
	AggregatesMaxAge   time.Duration `envconfig:"AGGREGATES_MAX_AGE" default:"24h" desc:"how long closed windows stay on AGGREGATES"`
	DeadLetterMaxAge   time.Duration `envconfig:"DEADLETTER_MAX_AGE" default:"336h" desc:"how long dead-letter records are kept"`
	DeadLetterMaxBytes int64         `envconfig:"DEADLETTER_MAX_BYTES" default:"268435456" desc:"dead-letter stream size cap (oldest records go first)"`
}

// Validate reports sizing that cannot work.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		errs = append(errs, fmt.Errorf("EDGEFLOW_STREAM_REPLICAS=%d: must be 1, 3 or 5", c.Replicas))
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("EDGEFLOW_PARTITIONS=%d: must be 1..1024", c.Partitions))
	}
	if c.TelemetryMaxAge < time.Minute || c.AggregatesMaxAge < time.Minute || c.DeadLetterMaxAge < time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_TELEMETRY_MAX_AGE, EDGEFLOW_AGGREGATES_MAX_AGE and EDGEFLOW_DEADLETTER_MAX_AGE must each be at least 1m"))
	}
	if c.TelemetryMaxBytes < 1<<20 || c.DeadLetterMaxBytes < 1<<20 {
		errs = append(errs, errors.New("EDGEFLOW_TELEMETRY_MAX_BYTES and EDGEFLOW_DEADLETTER_MAX_BYTES must each be at least 1 MiB"))
	}
	if c.DedupWindow < time.Second || c.DedupWindow > c.TelemetryMaxAge {
		errs = append(errs, errors.New("EDGEFLOW_DEDUP_WINDOW must be between 1s and the telemetry max age"))
	}
	return errors.Join(errs...)
}

// TelemetrySubjects is where one reading may be published:
// telemetry.{site}.{device}. The stream's subject transform rewrites it to
// telemetry.{partition}.{site}.{device}, hashing site and device (Partition),
// so one device always lands in one partition and keeps its order there.
const TelemetrySubjects = "telemetry.*.*"

// TelemetryBatchSubjects is where ingest publishes batches of readings
// (reading.AppendBatch), each of one partition: BatchSubject. "~" is not in
// a valid name, so no device's subject is a batch's.
const TelemetryBatchSubjects = "telemetry.*.~.batch"

// MaxBatchBytes is the size at which ingest starts a new batch: far below
// NATS's max payload, so that a processor's fetch holds many.
const MaxBatchBytes = 16 << 10

// BatchSubject is the subject of a batch of partition p's readings.
func BatchSubject(p int) string { return "telemetry." + strconv.Itoa(p) + ".~.batch" }

// IsBatchSubject reports whether a stored TELEMETRY subject is a batch's.
func IsBatchSubject(subject string) bool { return strings.HasSuffix(subject, ".~.batch") }

// Partition is the partition of n that the stream's subject transform
// (partition(n,1,2), FNV-1a of site and device joined without separator)
// gives site's device: ingest batches by it, so a device's readings share a
// partition whichever way they were published.
func Partition(site, device string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(site))
	h.Write([]byte(device))
	return int(h.Sum32() % uint32(n))
}

// PartitionFilter is the stored-subject filter of one TELEMETRY partition:
// its readings and its batches.
func PartitionFilter(p int) string { return "telemetry." + strconv.Itoa(p) + ".>" }

// Telemetry is the TELEMETRY stream. Readings leave it when the processor
// that owns their partition has written and checkpointed them (it purges
// below its checkpoint), so MaxBytes bounds the unprocessed backlog and
// DiscardNew turns a full backlog into back-pressure: ingest's publishes fail,
// it stops acknowledging MQTT, and the broker keeps the messages.
func (c StreamConfig) Telemetry() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamTelemetry,
		Description: "normalised readings from ingest, partitioned by device",
		Subjects:    []string{TelemetrySubjects, TelemetryBatchSubjects},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      TelemetrySubjects,
			Destination: fmt.Sprintf("telemetry.{{partition(%d,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}", c.Partitions),
		},
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardNew,
		MaxAge:     c.TelemetryMaxAge,
		MaxBytes:   c.TelemetryMaxBytes,
		Duplicates: c.DedupWindow,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		Metadata:   map[string]string{PartitionsKey: strconv.Itoa(c.Partitions)},
	}
}

// Aggregates is the AGGREGATES stream: closed windows, kept briefly for the
// dashboard and notifier.
func (c StreamConfig) Aggregates() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamAggregates,
		Description: "closed window aggregates from the processors",
		Subjects:    []string{"aggregates.>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.AggregatesMaxAge,
		Duplicates:  c.DedupWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// AlertsMaxAge is how long ALERTS keeps alert state changes: a month of
// history for the dashboard. Changes are rare (one per transition), so age
// alone bounds the stream.
const AlertsMaxAge = 30 * 24 * time.Hour

// Alerts is the ALERTS stream: alert state changes from the notifier
// (alerts.{site}.{device}.{rule}), read by the dashboard. The notifier
// publishes each change with a Nats-Msg-Id, so the duplicate window makes a
// change published twice (after a crash) appear once.
func (c StreamConfig) Alerts() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamAlerts,
		Description: "alert state changes from the notifier",
		Subjects:    []string{"alerts.>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      AlertsMaxAge,
		Duplicates:  c.DedupWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// DeadLetter is the DEADLETTER stream: what a service rejected, with why.
func (c StreamConfig) DeadLetter() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDeadLetter,
		Description: "rejected messages: original bytes and Edgeflow-Reason headers",
		Subjects:    []string{"deadletter.>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DeadLetterMaxAge,
		MaxBytes:    c.DeadLetterMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// Notifications is the NOTIFICATIONS stream, holding at most maxBytes.
// DiscardNew: a full queue refuses new notifications (they stay in their
// alert's outbox and are retried) rather than dropping the oldest.
func (c StreamConfig) Notifications(maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamNotifications,
		Description: "notifications waiting for delivery, notifications.{channel}; removed once delivered",
		Subjects:    []string{reading.NotificationSubject("*")},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxBytes,
		Duplicates:  c.DedupWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// Ensure creates or updates each stream. TELEMETRY's partition count may not
// change once created: the processors' checkpoints are per partition.
func Ensure(ctx context.Context, js jetstream.JetStream, cfgs ...jetstream.StreamConfig) error {
	for _, cfg := range cfgs {
		if cfg.Name == StreamTelemetry {
			if s, err := js.Stream(ctx, cfg.Name); err == nil {
				have := s.CachedInfo().Config.Metadata[PartitionsKey]
				if have == "" {
					return fmt.Errorf("stream %s exists without %s metadata (not created by edgeflow): refusing to change its partitioning", cfg.Name, PartitionsKey)
				}
				if want := cfg.Metadata[PartitionsKey]; have != want {
					return fmt.Errorf("stream %s has %s partitions, configuration asks for %s: partitions cannot change on a live stream",
						cfg.Name, have, want)
				}
			}
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// Partitions reads the partition count from the TELEMETRY stream.
func Partitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, StreamTelemetry)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", StreamTelemetry, err)
	}
	n, err := strconv.Atoi(s.CachedInfo().Config.Metadata[PartitionsKey])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("stream %s has no valid %s metadata", StreamTelemetry, PartitionsKey)
	}
	return n, nil
}
