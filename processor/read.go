package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
)

// run reads the partition in stream order from its checkpoint (load) until
// stop is closed (a last flush, then return) or ctx ends (abort), fetching
// from one consumer while it answers. A fetch that lost a delivery, or whose
// consumer failed, is folded up to there and read again from a new consumer;
// every flush interval, or once the batch is full, flush writes, publishes
// and checkpoints what was folded (flush.go).
func (w *worker) run(ctx context.Context, stop <-chan struct{}) error {
	if err := w.load(ctx); err != nil {
		return err
	}
	defer func() {
		w.metrics.OpenWindows.Sub(float64(w.open))
		w.metrics.Devices.Sub(float64(w.devices))
		w.metrics.Backlog.Sub(float64(w.pending))
	}()
	cons, err := w.consumer(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { w.dropConsumer(ctx, cons) }()
	w.lastFlush = w.now()
	for {
		select {
		case <-stop:
			w.stopping = true
			return w.flush(ctx, false)
		default:
		}
		// Aborted (lease lost, drain timeout): Fetch does not watch ctx, and
		// a partition with nothing to flush would never notice otherwise, nor
		// hand the partition back.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		batch, err := cons.Fetch(w.cfg.FetchSize, jetstream.FetchMaxBytes(fetchBytes(w.js.Conn())), jetstream.FetchMaxWait(w.fetchWait()))
		if err != nil {
			// The consumer is gone (NATS restarted, or its server in a
			// cluster died) or NATS is away: start a new one from our own
			// position once NATS answers.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.retrying("fetch", err)
			w.log.Warn("fetch failed; recreating consumer", "partition", w.p, "err", err)
			if cons, err = w.consumer(ctx, cons); err != nil {
				return err
			}
			continue
		}
		w.fetched = w.fetched[:0]
		gap := false
		for msg := range batch.Messages() {
			if gap {
				continue // read after a lost delivery: read again from a new consumer
			}
			meta, err := msg.Metadata()
			if err != nil { // not a JetStream delivery: cannot be placed in the stream's order
				w.metrics.Dropped.WithLabelValues("no_metadata").Inc()
				w.log.Error("message without JetStream metadata skipped", "partition", w.p, "subject", msg.Subject(), "err", err)
				continue
			}
			if w.gap(meta) {
				gap = true
				continue
			}
			w.fetched = append(w.fetched, fetched{msg, meta})
		}
		if gap {
			// Fold what came before the lost delivery, then read on from
			// the last message folded. Nothing is flushed or checkpointed
			// past a reading that was never folded.
			for _, f := range w.fetched {
				w.fold(f.msg, f.meta)
			}
			clear(w.fetched)
			w.metrics.Retries.WithLabelValues("fetch_gap").Inc()
			w.stalled = true
			if cons, err = w.consumer(ctx, cons); err != nil {
				return err
			}
			continue
		}
		fetchErr := batch.Error()
		caughtUp, pending := w.caughtUp(ctx, cons, fetchErr)
		// The silence this fetch observed is accounted before its readings
		// are folded: those restart their devices' silence.
		w.listen(caughtUp)
		for _, f := range w.fetched {
			w.fold(f.msg, f.meta)
		}
		clear(w.fetched)
		w.metrics.Backlog.Add(float64(pending - w.pending))
		w.pending = pending
		if w.now().Sub(w.lastFlush) >= w.cfg.FlushInterval || w.batch.Len() >= w.cfg.BatchSize {
			if err := w.flush(ctx, caughtUp); err != nil {
				return err
			}
		}
		failed := w.consumerGone
		if consumerFailed(fetchErr) {
			failed = fetchErr
		}
		w.consumerGone = nil
		if failed != nil {
			// What arrived before the failure is folded; the consumer
			// will not deliver again (deleted, or its server gone).
			w.retrying("fetch", failed)
			w.log.Warn("consumer failed; recreating it", "partition", w.p, "err", failed)
			if cons, err = w.consumer(ctx, cons); err != nil {
				return err
			}
		}
	}
}

// consumerFailed reports whether a fetch ended on an error that says its
// consumer cannot deliver again. A fetch that simply ran out of time
// (nats.ErrTimeout) or was cut by a reconnect is retried on the same
// consumer: its numbering shows any delivery that was lost (gap).
func consumerFailed(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged)
}

// fetchBytes is how much one fetch of a partition may bring besides its
// count: the largest message NATS takes, with its subject and headers. A
// fetch smaller than a message it meets would bring nothing, ever; one this
// size holds about 6,000 readings in ingest's batches. (FetchBytes alone
// would do, but nats.go then buffers a million deliveries, 16 MB a fetch.)
func fetchBytes(nc *nats.Conn) int { return int(nc.MaxPayload()) + 4096 }

// fetched is one message of a fetch and its JetStream metadata.
type fetched struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
}

// infoTimeout bounds the request that checks whether an empty fetch found
// the partition caught up.
const infoTimeout = 5 * time.Second

// idleFetchWait is how long a fetch waits on a partition with nothing to do.
const idleFetchWait = 2 * time.Second

// fetchWait is how long the next fetch may wait for messages: until the next
// flush is due; or, when the partition was caught up at the last fetch with
// everything folded checkpointed and no window open, idleFetchWait, as no
// flush can have anything to do before a reading comes. An idle replica then
// makes a few requests a second instead of dozens (8 partitions at a 250 ms
// flush interval: a fetch and a consumer info each, 64 a second), at the cost
// of folding the first reading after the silence up to idleFetchWait later.
func (w *worker) fetchWait() time.Duration {
	if !w.caughtUpAt.IsZero() && w.open == 0 && w.seq == w.savedSeq && w.batch.Len() == 0 && len(w.dead) == 0 {
		return idleFetchWait
	}
	return max(w.cfg.FlushInterval-w.now().Sub(w.lastFlush), 50*time.Millisecond)
}

// caughtUp reports whether the fetch just done read everything in the
// partition, measured now (not remembered from an earlier fetch), and how
// many messages are left. Only then may windows close for silence.
func (w *worker) caughtUp(ctx context.Context, cons jetstream.Consumer, fetchErr error) (bool, int64) {
	if fetchErr != nil && !errors.Is(fetchErr, nats.ErrTimeout) {
		// An interrupted fetch says nothing about what is left to read.
		if ctx.Err() == nil {
			w.log.Debug("fetch batch", "partition", w.p, "err", fetchErr)
		}
		return false, w.pending
	}
	if !w.js.Conn().IsConnected() {
		return false, w.pending
	}
	if n := len(w.fetched); n > 0 {
		left := w.fetched[n-1].meta.NumPending
		return left == 0, int64(left)
	}
	// An empty fetch proves nothing by itself: it ends empty when its wait
	// (as short as 50 ms after a long flush) runs out before a loaded server
	// delivers, and without an error when its request never reached the
	// server. Ask the server what is left.
	ictx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		if consumerFailed(err) {
			w.consumerGone = err
		}
		if ctx.Err() == nil {
			w.log.Debug("consumer info after an empty fetch", "partition", w.p, "err", err)
		}
		return false, w.pending
	}
	// The consumer delivered what never arrived: lost, not silence.
	if info.Delivered.Consumer > w.cseq {
		return false, int64(info.NumPending)
	}
	return info.NumPending == 0, int64(info.NumPending)
}

// listen accounts the time since the previous fetch as listening
// (window.State.Listen), the silence that closes the windows of devices that
// stopped sending: only when both fetches found the partition caught up and
// nothing held the worker up in between (no failed fetch, no retried write,
// publish or checkpoint, no NATS reconnect). An outage, or a backlog being
// read, is not silence: the readings it held back are still to come.
func (w *worker) listen(caughtUp bool) {
	now := w.now()
	reconnects := w.js.Conn().Stats().Reconnects
	if caughtUp && !w.caughtUpAt.IsZero() && !w.stalled && reconnects == w.reconnects {
		w.state.Listen(now.Sub(w.caughtUpAt))
	}
	w.caughtUpAt, w.reconnects, w.stalled = time.Time{}, reconnects, false
	if caughtUp {
		w.caughtUpAt = now
	}
}

// consumerInactive is how long NATS keeps a consumer that no fetch asks
// of (a replica that died, or one stalled on InfluxDB for longer): a later
// fetch finds it gone and run makes a new one.
const consumerInactive = 5 * time.Minute

// consumer makes the partition's consumer, reading in order from just after
// the last message folded, and deletes old, the one it replaces (nil: none).
// One consumer serves every fetch until it fails: nats.go's ordered consumer
// deletes and recreates its server-side consumer at every Fetch, three API
// requests each (docs/performance.md, "what a paced reading pays for").
// Nothing is acknowledged: the checkpoint is the position.
func (w *worker) consumer(ctx context.Context, old jetstream.Consumer) (jetstream.Consumer, error) {
	w.dropConsumer(ctx, old)
	cc := jetstream.ConsumerConfig{FilterSubjects: []string{bus.PartitionFilter(w.p)}, AckPolicy: jetstream.AckNonePolicy,
		MemoryStorage: true, Replicas: 1, InactiveThreshold: consumerInactive}
	if w.seq > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = w.seq + 1
	}
	var cons jetstream.Consumer
	err := retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		var err error
		cons, err = w.js.CreateConsumer(ctx, bus.StreamTelemetry, cc)
		return err
	}, func(err error, _ time.Duration) {
		w.retrying("consumer", err)
		w.log.Warn("create consumer", "partition", w.p, "err", err)
	})
	w.cseq = 0
	return cons, err
}

// dropConsumerTimeout bounds deleting a consumer no longer read; one that
// is not deleted goes after consumerInactive.
const dropConsumerTimeout = 2 * time.Second

// dropConsumer deletes cons (nil: nothing) on the server, best effort, also
// when ctx has ended (the replica stopping).
func (w *worker) dropConsumer(ctx context.Context, cons jetstream.Consumer) {
	if cons == nil {
		return
	}
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropConsumerTimeout)
	defer cancel()
	if err := w.js.DeleteConsumer(dctx, bus.StreamTelemetry, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		w.log.Debug("delete consumer", "partition", w.p, "consumer", info.Name, "err", err)
	}
}

// gap reports whether a delivery was lost before the message with meta.
// A consumer numbers its deliveries 1, 2, 3, ... across fetches, and nothing
// in nats.go checks that none is missing: in a NATS cluster, what a consumer
// sent while this replica reconnected is lost and the next delivery arrives
// (docs/decisions.md, "Every delivery is numbered"). The first delivery of
// a new consumer, which starts just after the last message folded, must be
// number 1, and each next one the previous + 1: together this proves every
// message after the last one folded was received.
func (w *worker) gap(meta *jetstream.MsgMetadata) bool {
	c := meta.Sequence.Consumer
	if c != w.cseq+1 {
		w.log.Warn("a delivery was lost; reading again from the last message folded", "partition", w.p,
			"consumer_seq", c, "previous", w.cseq, "stream_seq", meta.Sequence.Stream, "folded", w.seq)
		return true
	}
	w.cseq = c
	return false
}

// fold adds one message to the windows and the pending raw points: a batch
// of readings (ingest's) or one reading.
func (w *worker) fold(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	w.seq = meta.Sequence.Stream
	if !bus.IsBatchSubject(msg.Subject()) {
		w.foldReading(msg.Data(), msg.Subject(), 0)
		return
	}
	line := 0
	reading.EachInBatch(msg.Data(), func(data []byte) bool {
		line++
		w.foldReading(data, msg.Subject(), line)
		return true
	})
}

// foldReading adds one reading in the wire form, from subject (line of a
// batch, 0 when alone), to the windows and the pending raw points.
func (w *worker) foldReading(data []byte, subject string, line int) {
	w.metrics.In.Inc()
	r, err := reading.Decode(data)
	if err != nil {
		w.deadLetter("invalid_reading", err.Error(), subject, line, data)
		return
	}
	late, duplicate := w.state.Add(r)
	if duplicate {
		// Folded before (window package comment, "Duplicates"): neither its
		// raw point nor its live value is new.
		w.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return
	}
	if len(late) > 0 {
		w.metrics.Late.Inc()
		names := ""
		for i, d := range late {
			if i > 0 {
				names += ","
			}
			names += reading.WindowName(d)
		}
		w.deadLetter("late", fmt.Sprintf("reading at %s arrived after its %s window closed; written raw, not aggregated",
			time.UnixMilli(r.TS).UTC().Format(time.RFC3339Nano), names), subject, line, data)
	}
	if w.cfg.Influx.WriteRaw {
		w.batch.AddReading(&r)
	}
	w.live.Add(r.Site, r.Device, data)
}

// deadLetter records why the reading data, from subject (line of a batch, 0
// when alone), was refused, for the next flush to publish.
func (w *worker) deadLetter(reason, detail, subject string, line int, data []byte) {
	w.metrics.DeadLettered.WithLabelValues(reason).Inc()
	source := subject + " seq " + strconv.FormatUint(w.seq, 10)
	if line > 0 {
		source += " line " + strconv.Itoa(line)
	}
	w.dead = append(w.dead, bus.DeadLetter{Service: "processor", Reason: reason, Detail: detail,
		Source: source, Body: data}.Msg(w.now()))
}
