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

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
)

// flush writes what was folded since the last flush and the windows that
// closed, then checkpoints. Nothing is checkpointed that was not written.
func (w *worker) flush(ctx context.Context, caughtUp bool) error {
	// Past the lease, another replica may own the partition and have purged
	// readings before this worker fetched: what it folded may have holes, and
	// its windows would overwrite the new owner's with short counts.
	if w.held != nil && !w.held() {
		return errLeaseLapsed
	}
	// The live view first: it shows what arrived, whether or not InfluxDB
	// takes it now.
	if err := w.live.Publish(w.js.Conn(), bus.LiveSubject(strconv.Itoa(w.p))); err != nil && ctx.Err() == nil {
		w.log.Debug("live feed not published", "partition", w.p, "err", err)
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

// write sends the batch to InfluxDB by lineWriter's rules; lines InfluxDB
// refuses as points join the dead letters published with the flush.
func (w *worker) write(ctx context.Context) error {
	lw := lineWriter{influx: w.influx, batchSize: w.cfg.BatchSize, metrics: w.metrics,
		log: w.log.With("partition", w.p), source: fmt.Sprintf("partition %d", w.p),
		now: w.now, retrying: w.retrying, dead: w.dead}
	err := lw.write(ctx, &w.batch)
	w.dead = lw.dead
	return err
}

// lineWriter writes a Batch to InfluxDB for one partition worker or one hub
// site (hub.go).
type lineWriter struct {
	influx    *Influx
	batchSize int
	metrics   *Metrics
	log       *slog.Logger // says whose lines they are
	source    string       // a dead letter's Source: whose lines they are
	now       func() time.Time
	// retrying accounts a failed attempt that is retried (the writer is
	// stalled until it advances).
	retrying func(op string, err error)
	// dead receives the lines InfluxDB refused as points, as dead letters;
	// the caller publishes them before it records the batch as written.
	dead []*nats.Msg
}

// write sends the batch to InfluxDB in requests of at most batchSize lines,
// retrying while it does not take them for a reason of its own: unavailable,
// its database or bucket missing (created again), a limit configured on it
// (the writer stalls until an operator raises it). Lines it refuses as
// points (a field type conflict, say) are found by halving and
// dead-lettered, so one bad point cannot stall a partition or a site.
func (lw *lineWriter) write(ctx context.Context, b *Batch) error {
	for start := 0; start < b.Len(); start += lw.batchSize {
		if err := lw.writeLines(ctx, b, start, min(start+lw.batchSize, b.Len())); err != nil {
			return err
		}
	}
	return nil
}

func (lw *lineWriter) writeLines(ctx context.Context, b *Batch, i, j int) error {
	body := b.Lines(i, j)
	var refused *WriteError
	err := retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		err := lw.influx.Write(ctx, body)
		var we *WriteError
		if !errors.As(err, &we) {
			return err // written, or InfluxDB did not answer
		}
		switch {
		case we.Fault == FaultPoints, we.Fault == FaultTooLarge && j-i > 1:
			refused = we
			return nil
		case we.Fault == FaultMissing:
			if err := lw.influx.Ensure(ctx); err != nil {
				return fmt.Errorf("%w; creating it: %w", we, err)
			}
			lw.log.Warn("influxdb database or bucket was missing; created it again", "err", we)
		}
		// The points are not at fault: written once the server is well
		// (unavailable, a limit, a missing database just created, or one
		// line alone larger than it takes).
		return we
	}, func(err error, wait time.Duration) {
		lw.retrying("influx_write", err)
		lw.log.Warn("influxdb write failed; retrying, nothing is checkpointed or acknowledged meanwhile", "err", err, "wait", wait)
	})
	switch {
	case err != nil:
		return err
	case refused == nil:
		lw.metrics.Written.Add(float64(j - i))
		return nil
	case refused.Fault == FaultPoints && (j-i == 1 || refused.Dropped >= j-i):
		// Every point refused, by InfluxDB's own count: splitting would
		// only cost a request per point.
		lw.rejectLines(body, refused)
		return nil
	case refused.Fault == FaultTooLarge:
		lw.log.Warn("influxdb refused a request as too large; splitting it (EDGEFLOW_PROCESSOR_BATCH_SIZE sets the largest)",
			"lines", j-i, "err", refused)
	}
	half := i + (j-i)/2
	if err := lw.writeLines(ctx, b, i, half); err != nil {
		return err
	}
	return lw.writeLines(ctx, b, half, j)
}

// rejectLines dead-letters lines InfluxDB refused as points, in records of
// whole lines no larger than a dead letter's body, so none is truncated.
func (lw *lineWriter) rejectLines(lines string, refused error) {
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
		lw.metrics.DeadLettered.WithLabelValues("influx_rejected").Inc()
		lw.dead = append(lw.dead, bus.DeadLetter{Service: "processor", Reason: "influx_rejected",
			Detail: fmt.Sprintf("%d points: %v", strings.Count(chunk, "\n"), refused),
			Source: lw.source, Body: []byte(chunk)}.Msg(lw.now()))
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
