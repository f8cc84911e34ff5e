package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
	"github.com/edgeflow/edgeflow/internal/service"
	"github.com/edgeflow/edgeflow/processor/window"
)

// errLostOwnership ends a worker whose checkpoint was overwritten by another
// replica: that replica owns the partition now.
var errLostOwnership = errors.New("partition taken over by another replica")

// errLeaseLapsed ends a worker whose replica did not renew its lease in time:
// another replica may have claimed the partition since and purged readings
// this worker has yet to fold, so nothing it folded since is written.
var errLeaseLapsed = errors.New("lease on the partition lapsed before it was renewed")

// Metrics are the processor's counters beyond the standard pipeline ones.
type Metrics struct {
	*service.Pipeline
	Late         prometheus.Counter
	OpenWindows  prometheus.Gauge
	Devices      prometheus.Gauge
	FlushLatency prometheus.Histogram
	CloseDelay   prometheus.Histogram
	Written      prometheus.Counter
	Stalls       *Stalls
}

// NewMetrics registers the processor's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pipeline: service.NewPipeline(reg, "processor"),
		Late: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeflow_processor_late_total",
			Help: "Readings that arrived after their window closed (written raw, dead-lettered, not aggregated)."}),
		OpenWindows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_processor_open_windows",
			Help: "Windows open in the partitions this replica owns."}),
		Devices: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_processor_devices",
			Help: "Devices in the window state of the partitions this replica owns, as of their last checkpoint (memory grows with them)."}),
		FlushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeflow_processor_window_latency_seconds",
			Help:    "From a window's end to its aggregate written in InfluxDB.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		// The window latency above includes the lateness by definition (a
		// window may not close before a reading LATENESS past its end): this
		// is the part the pipeline adds, what a window waits beyond that.
		CloseDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeflow_processor_window_close_delay_seconds",
			Help:    "From a window's end plus the lateness (the earliest it may close) to its aggregate written in InfluxDB.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		Written: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeflow_processor_points_written_total",
			Help: "Points written to InfluxDB (raw and window)."}),
		Stalls: NewStalls(reg),
	}
	reg.MustRegister(m.Late, m.OpenWindows, m.Devices, m.FlushLatency, m.CloseDelay, m.Written)
	return m
}

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
	seq       uint64      // last stream sequence folded into state
	savedSeq  uint64      // seq of the last checkpoint
	rev       uint64      // revision of our checkpoint (claimed by load)
	batch     Batch       // raw readings and closed windows for the next write
	dead      []*nats.Msg // dead-letter records to publish with the next flush
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
	// cseq is the consumer sequence of the last message of this fetch, zero
	// before its first: the ordered consumer's Fetch does not check that
	// deliveries are consecutive (see gap).
	cseq uint64
	// Listening (window.State.Listen): caughtUpAt is the end of the last
	// fetch that read everything in the partition, zero when the last fetch
	// did not; reconnects is the connection's reconnect count then; stalled
	// is set by every retry since (InfluxDB or NATS away).
	caughtUpAt time.Time
	reconnects uint64
	stalled    bool
}

// fetched is one message of a fetch and its JetStream metadata.
type fetched struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
}

// infoTimeout bounds the request that checks whether an empty fetch found
// the partition caught up.
const infoTimeout = 5 * time.Second

func (w *worker) run(ctx context.Context, stop <-chan struct{}) error {
	if err := w.load(ctx); err != nil {
		return err
	}
	defer func() {
		w.metrics.OpenWindows.Sub(float64(w.open))
		w.metrics.Devices.Sub(float64(w.devices))
		w.metrics.Backlog.Sub(float64(w.pending))
	}()
	cons, err := w.consumer(ctx)
	if err != nil {
		return err
	}
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
		batch, err := cons.Fetch(w.cfg.FetchSize, jetstream.FetchMaxWait(w.fetchWait()))
		if err != nil {
			// The ordered consumer gave up recreating itself (NATS away):
			// start a new one from our own position once NATS answers.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.retrying("fetch", err)
			w.log.Warn("fetch failed; recreating consumer", "partition", w.p, "err", err)
			if cons, err = w.consumer(ctx); err != nil {
				return err
			}
			continue
		}
		w.fetched = w.fetched[:0]
		w.cseq = 0
		gap := w.startsElsewhere(cons)
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
			if cons, err = w.consumer(ctx); err != nil {
				return err
			}
			continue
		}
		caughtUp, pending := w.caughtUp(ctx, cons, batch.Error())
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
	}
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
		if ctx.Err() == nil {
			w.log.Debug("consumer info after an empty fetch", "partition", w.p, "err", err)
		}
		return false, w.pending
	}
	// The fetch's consumer delivered what never arrived: lost, not silence.
	if info.Delivered.Consumer > 0 {
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

// consumer reads the partition in order from just after the checkpoint.
func (w *worker) consumer(ctx context.Context) (jetstream.Consumer, error) {
	// MaxResetAttempts bounds how long a Fetch may block recreating the
	// consumer after a NATS restart (unbounded by default, and deaf to our
	// context); the loop in run recreates it instead.
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.PartitionFilter(w.p)}, MaxResetAttempts: 2}
	if w.seq > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = w.seq + 1
	}
	var cons jetstream.Consumer
	err := retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		var err error
		cons, err = w.js.OrderedConsumer(ctx, bus.StreamTelemetry, cc)
		return err
	}, func(err error, _ time.Duration) {
		w.retrying("consumer", err)
		w.log.Warn("create consumer", "partition", w.p, "err", err)
	})
	return cons, err
}

// gap reports whether a delivery was lost before the message with meta.
// Each Fetch of an ordered consumer delivers from a new consumer, numbering
// its deliveries 1, 2, 3, ..., and nothing checks that none is missing: in a
// NATS cluster, when the server this replica is connected to dies, the
// consumer lives on in another server and goes on delivering the pull
// request to our inbox; what it sent during the reconnect is lost, the next
// messages arrive, and the next Fetch starts after them. Seen by task chaos
// as a few readings missing from raw and windows after each such kill.
// Numbering restarts with every fetch, so a fetch's first delivery must be
// number 1, whatever the last fetch ended with; together with
// startsElsewhere this proves every message after the last one folded was
// received.
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

// startsElsewhere reports whether the fetch just made reads from elsewhere
// than the message after the last one folded. The ordered consumer starts
// each fetch after the last message the client library received: the last
// one folded, unless a delivery was lost after the library took it. Its
// consumer sequence 1 is then a message past the lost one, and the loss
// would never show as a gap in the numbering.
func (w *worker) startsElsewhere(cons jetstream.Consumer) bool {
	info := cons.CachedInfo()
	if info == nil {
		return false // not created: the fetch failed, nothing to read past
	}
	start := info.Config.OptStartSeq
	if info.Config.DeliverPolicy == jetstream.DeliverAllPolicy {
		start = 1
	}
	if start == w.seq+1 {
		return false
	}
	w.log.Warn("the fetch does not start after the last message folded; reading again from there", "partition", w.p,
		"start_seq", start, "folded", w.seq)
	return true
}

// fold adds one message to the windows and the pending raw points.
func (w *worker) fold(msg jetstream.Msg, meta *jetstream.MsgMetadata) {
	w.seq = meta.Sequence.Stream
	w.metrics.In.Inc()
	r, err := reading.Decode(msg.Data())
	if err != nil {
		w.deadLetter("invalid_reading", err.Error(), msg)
		return
	}
	if late := w.state.Add(r); len(late) > 0 {
		w.metrics.Late.Inc()
		names := ""
		for i, d := range late {
			if i > 0 {
				names += ","
			}
			names += reading.WindowName(d)
		}
		w.deadLetter("late", fmt.Sprintf("reading at %s arrived after its %s window closed; written raw, not aggregated",
			time.UnixMilli(r.TS).UTC().Format(time.RFC3339Nano), names), msg)
	}
	if w.cfg.Influx.WriteRaw {
		w.batch.AddReading(&r)
	}
}

func (w *worker) deadLetter(reason, detail string, msg jetstream.Msg) {
	w.metrics.DeadLettered.WithLabelValues(reason).Inc()
	w.dead = append(w.dead, bus.DeadLetter{Service: "processor", Reason: reason, Detail: detail,
		Source: msg.Subject() + " seq " + strconv.FormatUint(w.seq, 10), Body: msg.Data()}.Msg(w.now()))
}

// flush writes what was folded since the last flush and the windows that
// closed, then checkpoints. Nothing is checkpointed that was not written.
func (w *worker) flush(ctx context.Context, caughtUp bool) error {
	// Past the lease, another replica may own the partition and have purged
	// readings before this worker fetched: what it folded may have holes, and
	// its windows would overwrite the new owner's with short counts.
	if w.held != nil && !w.held() {
		return errLeaseLapsed
	}
	now := w.now()
	closed := w.state.CloseDue(now, caughtUp)
	w.lastFlush = now
	if len(closed) == 0 && w.batch.Len() == 0 && len(w.dead) == 0 && w.seq == w.savedSeq {
		w.advanced()
		return nil
	}
	for i := range closed {
		w.batch.AddAggregate(&closed[i])
	}
	if err := w.write(ctx); err != nil {
		return err
	}
	written := w.now()
	for i := range closed {
		end := time.UnixMilli(closed[i].End)
		w.metrics.FlushLatency.Observe(written.Sub(end).Seconds())
		w.metrics.CloseDelay.Observe(written.Sub(end.Add(w.cfg.Lateness)).Seconds())
	}
	if err := w.publish(ctx, closed); err != nil {
		return err
	}
	if err := w.checkpoint(ctx); err != nil {
		return err
	}
	w.advanced()
	w.metrics.Out.Add(float64(len(closed)))
	w.batch.Reset()
	w.dead = w.dead[:0]
	open := w.state.Open()
	w.metrics.OpenWindows.Add(float64(open - w.open))
	w.open = open
	if now.Sub(w.lastPurge) >= w.cfg.PurgeInterval {
		w.purge(ctx)
		w.lastPurge = now
	}
	return nil
}

// write sends the batch to InfluxDB in requests of at most BatchSize lines,
// retrying while it does not take them for a reason of its own: unavailable,
// its database or bucket missing (created again), a limit configured on it
// (the partition stalls until an operator raises it). Lines it refuses as
// points (a field type conflict, say) are found by halving and
// dead-lettered, so one bad point cannot stall a partition.
func (w *worker) write(ctx context.Context) error {
	for start := 0; start < w.batch.Len(); start += w.cfg.BatchSize {
		if err := w.writeLines(ctx, start, min(start+w.cfg.BatchSize, w.batch.Len())); err != nil {
			return err
		}
	}
	return nil
}

func (w *worker) writeLines(ctx context.Context, i, j int) error {
	body := w.batch.Lines(i, j)
	var refused *WriteError
	err := retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		err := w.influx.Write(ctx, body)
		var we *WriteError
		if !errors.As(err, &we) {
			return err // written, or InfluxDB did not answer
		}
		switch {
		case we.Fault == FaultPoints, we.Fault == FaultTooLarge && j-i > 1:
			refused = we
			return nil
		case we.Fault == FaultMissing:
			if err := w.influx.Ensure(ctx); err != nil {
				return fmt.Errorf("%w; creating it: %w", we, err)
			}
			w.log.Warn("influxdb database or bucket was missing; created it again", "partition", w.p, "err", we)
		}
		// The points are not at fault: written once the server is well
		// (unavailable, a limit, a missing database just created, or one
		// line alone larger than it takes).
		return we
	}, func(err error, wait time.Duration) {
		w.retrying("influx_write", err)
		w.log.Warn("influxdb write failed; retrying, nothing is checkpointed meanwhile", "partition", w.p, "err", err, "wait", wait)
	})
	switch {
	case err != nil:
		return err
	case refused == nil:
		w.metrics.Written.Add(float64(j - i))
		return nil
	case refused.Fault == FaultPoints && (j-i == 1 || refused.Dropped >= j-i):
		// Every point refused, by InfluxDB's own count: splitting would
		// only cost a request per point.
		w.rejectLines(body, refused)
		return nil
	case refused.Fault == FaultTooLarge:
		w.log.Warn("influxdb refused a request as too large; splitting it (EDGEFLOW_PROCESSOR_BATCH_SIZE sets the largest)",
			"partition", w.p, "lines", j-i, "err", refused)
	}
	half := i + (j-i)/2
	if err := w.writeLines(ctx, i, half); err != nil {
		return err
	}
	return w.writeLines(ctx, half, j)
}

// rejectLines dead-letters lines InfluxDB refused as points, in records of
// whole lines no larger than a dead letter's body, so none is truncated.
func (w *worker) rejectLines(lines string, refused error) {
	for lines != "" {
		chunk := lines
		if len(chunk) > bus.MaxDeadLetterBody {
			end := strings.LastIndexByte(chunk[:bus.MaxDeadLetterBody], '\n')
			if end < 0 { // one line larger than a record: truncated, its size in a header
				end = strings.IndexByte(chunk, '\n')
			}
			if end >= 0 {
				chunk = chunk[:end+1]
			}
		}
		lines = lines[len(chunk):]
		w.metrics.DeadLettered.WithLabelValues("influx_rejected").Inc()
		w.dead = append(w.dead, bus.DeadLetter{Service: "processor", Reason: "influx_rejected",
			Detail: fmt.Sprintf("%d points: %v", strings.Count(chunk, "\n"), refused),
			Source: fmt.Sprintf("partition %d", w.p), Body: []byte(chunk)}.Msg(w.now()))
	}
}

// publish sends closed windows on AGGREGATES and the pending dead letters,
// and waits until JetStream has them all. A window that does not encode (a
// value JSON has no number for) is dead-lettered instead: an empty message
// would tell its consumers nothing, not even where it came from.
func (w *worker) publish(ctx context.Context, closed []reading.Aggregate) error {
	msgs := w.dead
	for i := range closed {
		a := &closed[i]
		subject := reading.AggregateSubject(a.Window, a.Site, a.Device)
		data, err := json.Marshal(a)
		if err != nil {
			w.metrics.DeadLettered.WithLabelValues("invalid_aggregate").Inc()
			w.log.Error("window does not encode; dead-lettered", "partition", w.p, "subject", subject, "start", a.Start, "err", err)
			msgs = append(msgs, bus.DeadLetter{Service: "processor", Reason: "invalid_aggregate", Detail: err.Error(),
				Source: subject + " start " + strconv.FormatInt(a.Start, 10), Body: fmt.Appendf(nil, "%+v", *a)}.Msg(w.now()))
			continue
		}
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, a.MsgID())
		msgs = append(msgs, m)
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	pub := bus.Publisher{JS: w.js,
		Failed: func(*nats.Msg, error) { w.stalled = true }, // NATS may be away
		Retry: func(m *nats.Msg, err error, _ time.Duration) {
			w.retrying("publish", err)
			w.log.Warn("publish failed; retrying", "partition", w.p, "subject", m.Subject, "err", err)
		}}
	defer pub.Release()
	if err := pub.PublishAsync(ctx, msgs, futures); err != nil {
		return err
	}
	return pub.Settle(ctx, msgs, futures, nil)
}

// load restores the partition's checkpoint and claims it: the checkpoint is
// written back by compare-and-set (created empty on a first run). A previous
// owner still running, its lease lapsed while it stalled, then fails its next
// checkpoint and stops, and cannot purge readings this worker has yet to read:
// whatever it purged is at or before the checkpoint claimed here. The chunks
// of a large checkpoint are read after the claim, when no writer removes them
// any more (checkpoint_store.go).
func (w *worker) load(ctx context.Context) error {
	w.state = window.NewState(w.cfg.Window())
	key := checkpointKey(w.p)
	var seq uint64
	var state []byte
	err := retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		entry, err := w.ckpt.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if state, err = w.state.MarshalBinary(); err != nil {
				return retry.Permanent(fmt.Errorf("partition %d: encode state: %w", w.p, err))
			}
			seq, w.manifest = 0, encodeCheckpoint(0, state)
			w.rev, err = w.ckpt.Create(ctx, key, w.manifest)
		case err == nil:
			c, derr := decodeManifest(entry.Value())
			if derr != nil {
				return retry.Permanent(fmt.Errorf("partition %d checkpoint: %w", w.p, derr))
			}
			if w.rev, err = w.ckpt.Update(ctx, key, entry.Value(), entry.Revision()); err != nil {
				break
			}
			// Claimed: from now on no writer removes the chunks it names.
			// Others may be left over (a write that lost its compare-and-set,
			// a replica that died before its manifest): the next checkpoint
			// removes them.
			seq, w.manifest, w.oldChunks = c.seq, entry.Value(), true
			if state, err = readState(ctx, w.ckpt, w.p, c); errors.Is(err, errCheckpointDamaged) {
				return retry.Permanent(fmt.Errorf("partition %d checkpoint: %w", w.p, err))
			}
		}
		return err // a conflict too: the checkpoint was written meanwhile, read it again
	}, func(err error, _ time.Duration) {
		w.retrying("checkpoint_load", err)
		w.log.Warn("load checkpoint failed; retrying", "partition", w.p, "err", err)
	})
	if err != nil {
		return err
	}
	changed, err := w.state.Load(state)
	if err != nil {
		return fmt.Errorf("partition %d checkpoint state: %w", w.p, err)
	}
	if changed.Changed() {
		w.log.Warn("window configuration changed: checkpoint carried over to it", "partition", w.p, "change", changed)
	}
	w.seq, w.savedSeq = seq, seq
	w.open = w.state.Open()
	w.metrics.OpenWindows.Add(float64(w.open))
	w.log.Info("partition resumed from checkpoint", "partition", w.p, "seq", seq, "open_windows", w.open)
	return nil
}

// purge removes the partition's checkpointed readings from TELEMETRY, so the
// stream's byte limit bounds only what is not yet processed.
func (w *worker) purge(ctx context.Context) {
	s, err := w.js.Stream(ctx, bus.StreamTelemetry)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(bus.PartitionFilter(w.p)), jetstream.WithPurgeSequence(w.savedSeq+1))
	}
	if err != nil && ctx.Err() == nil {
		w.log.Warn("purge processed readings", "partition", w.p, "err", err)
	}
}
