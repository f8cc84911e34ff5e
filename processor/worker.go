package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/processor/window"
)

// errLostOwnership ends a worker whose checkpoint was overwritten by another
// replica: that replica owns the partition now.
var errLostOwnership = errors.New("partition taken over by another replica")

// errLeaseLapsed ends a worker whose replica did not renew its lease in time:
// another replica may have claimed the partition since and purged readings
// this worker has yet to fold, so nothing it folded since is written.
var errLeaseLapsed = errors.New("lease on the partition lapsed before it was renewed")

// worker processes one partition: it folds the partition's readings, in
// stream order, into window.State, and every flush interval writes raw
// readings and closed windows to InfluxDB, publishes the windows on
// AGGREGATES, and only then checkpoints the stream sequence with the open
// windows. A crash at any point replays from the last checkpoint and
// rewrites the same points: counts stay exact.
type worker struct {
	p       int
	cfg     Config
	js      jetstream.JetStream
	ckpt    jetstream.KeyValue
	influx  *Influx
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	// held reports whether this replica's lease on the partition is surely
	// still its own (Ownership); nil: no lease (tests).
	held func() bool

	state     *window.State
	seq       uint64        // last stream sequence folded into state
	savedSeq  uint64        // seq of the last checkpoint
	rev       uint64        // revision of our checkpoint (claimed by load)
	batch     Batch         // raw readings and closed windows for the next write
	live      bus.LiveBatch // each device's newest reading since the last flush
	dead      []*nats.Msg   // dead-letter records to publish with the next flush
	lastFlush time.Time
	lastPurge time.Time
	pending   int64 // messages left in the partition at the last fetch
	open      int   // open windows at the last flush
	devices   int   // devices in the state at the last checkpoint
	// manifest is the checkpoint record last written or claimed; nextFull
	// is when the next checkpoint may be written in full (checkpoint);
	// oldChunks: chunks of checkpoints before ours may still be stored
	// (purgeChunks); ckptStream is the bucket's stream, once needed.
	manifest   []byte
	nextFull   time.Time
	oldChunks  bool
	ckptStream jetstream.Stream
	stopping   bool // the last flush: its checkpoint is written in full

	fetched []fetched // the last fetch's messages, before they are folded
	// cseq is the consumer sequence of the last message received from the
	// current consumer, zero before its first: nats.go does not check that
	// deliveries are consecutive (see gap).
	cseq uint64
	// consumerGone is the server's answer that the consumer no longer
	// exists, when caughtUp asked it about an empty fetch; run makes a new
	// one.
	consumerGone error
	// Listening (window.State.Listen): caughtUpAt is the end of the last
	// fetch that read everything in the partition, zero when the last fetch
	// did not; reconnects is the connection's reconnect count then; stalled
	// is set by every retry since (InfluxDB or NATS away).
	caughtUpAt time.Time
	reconnects uint64
	stalled    bool
}

// retrying accounts a failed attempt of op that is retried: the partition is
// stalled (Stalls) until its next flush, and listening is interrupted.
func (w *worker) retrying(op string, err error) {
	w.stalled = true
	w.metrics.Retries.WithLabelValues(op).Inc()
	if w.metrics.Stalls.Fail(w.p, op, err) {
		w.log.Warn("partition stalled; not ready until it advances", "partition", w.p, "op", op, "err", err)
	}
}

// advanced records a flush that succeeded: the partition is not stalled.
func (w *worker) advanced() {
	if d := w.metrics.Stalls.Clear(w.p); d > 0 {
		w.log.Info("partition advancing again", "partition", w.p, "stalled_for", d.Round(time.Millisecond).String())
	}
}
