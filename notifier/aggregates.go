package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
)

// The durable consumer all replicas share on AGGREGATES, and its priority
// group.
const (
	ConsumerAggregates = "notifier"
	priorityGroup      = "notifier"
	// caughtUpBelow is the backlog under which the windows read are
	// current enough to declare a silent device offline.
	caughtUpBelow = 10
	// pullBatch is how many windows a replica holds ahead of evaluation.
	pullBatch = 20
)

// aggregatesConsumer is pinned: the server hands the consumer's messages to
// one replica at a time, so windows are evaluated once and in stream order
// (a device's windows in the order they closed). When the pinned replica
// stops pulling for PinnedTTL, another replica is pinned and continues; the
// windows the dead replica held come back after AckWait, the same failover
// time (a window is evaluated in milliseconds, and a replica that retries
// one keeps it with InProgress). New consumers start at new windows: a
// first deployment does not alert on the day of history AGGREGATES keeps.
func aggregatesConsumer(failover time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        ConsumerAggregates,
		Description:    "notifier: closed windows evaluated against the alert rules, by one pinned replica at a time",
		FilterSubject:  "aggregates.>",
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        failover,
		MaxDeliver:     -1,
		MaxAckPending:  1000,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{priorityGroup},
		PinnedTTL:      failover,
	}
}

// loopAggregates names the reader's loop in readiness and metrics.
const loopAggregates = "aggregates"

// aggregateReader feeds the windows of AGGREGATES to the engine.
type aggregateReader struct {
	js       jetstream.JetStream
	engine   *Engine
	metrics  *Metrics
	log      *slog.Logger
	failover time.Duration
	loops    *Loops
	state    *loopState // from loops.Add(loopAggregates)
	// cons is the consumer of the current run, nil before the first.
	cons atomic.Pointer[jetstream.Consumer]
}

// Run reads until ctx ends, then evaluates what it already received and
// returns; a read that ends before (its consumer deleted, the pull ended by
// the server) starts again with backoff, on a consumer created anew. work
// bounds each evaluation: when it ends (the drain timeout), a window being
// evaluated is left unacknowledged and is redelivered.
func (a *aggregateReader) Run(ctx, work context.Context) {
	a.loops.Run(ctx, a.state, func(ctx context.Context, running func()) error {
		return a.read(ctx, work, running)
	})
}

func (a *aggregateReader) read(ctx, work context.Context, running func()) error {
	cons, err := a.js.CreateOrUpdateConsumer(ctx, bus.StreamAggregates, aggregatesConsumer(a.failover))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", ConsumerAggregates, err)
	}
	a.cons.Store(&cons)
	// Pull requests are renewed well within the pin's TTL, so an idle but
	// live replica keeps its pin.
	// A small prefetch: what a replica holds when it dies waits for AckWait.
	it, err := cons.Messages(jetstream.PullPriorityGroup(priorityGroup), jetstream.PullMaxMessages(pullBatch),
		jetstream.PullExpiry(max(a.failover/3, time.Second)))
	if err != nil {
		return fmt.Errorf("pull %s: %w", ConsumerAggregates, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	running()
	var last error
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return last
		}
		if err != nil {
			if ctx.Err() == nil {
				a.log.Debug("aggregates", "err", err)
			}
			if consumerGone(ctx, cons) {
				return fmt.Errorf("consumer %s: %w (pull: %w)", ConsumerAggregates, jetstream.ErrConsumerNotFound, err)
			}
			last = err
			continue
		}
		if !a.handle(work, msg) {
			return nil
		}
	}
}

// handle evaluates one window; it returns false when work ended.
func (a *aggregateReader) handle(work context.Context, msg jetstream.Msg) bool {
	a.metrics.In.Inc()
	if md, err := msg.Metadata(); err == nil {
		a.metrics.Backlog.Set(float64(md.NumPending))
	}
	agg, err := reading.UnmarshalAggregate(msg.Data())
	if err != nil {
		dl := bus.DeadLetter{Service: "notifier", Reason: "invalid_aggregate", Detail: err.Error(), Source: msg.Subject(), Body: msg.Data()}
		if err := retry.Do(work, retry.Backoff{Max: 2 * time.Second}, func(ctx context.Context) error {
			return dl.Publish(ctx, a.js, time.Now())
		}, nil); err != nil {
			return false
		}
		a.metrics.DeadLettered.WithLabelValues("invalid_aggregate").Inc()
		_ = msg.Ack()
		return true
	}
	retrying := false
	err = retry.Do(work, retry.Backoff{Max: 2 * time.Second}, func(ctx context.Context) error {
		if retrying {
			_ = msg.InProgress() // keep the window ours while NATS recovers
		}
		retrying = true
		return a.engine.OnAggregate(ctx, agg)
	}, func(err error, wait time.Duration) {
		a.metrics.Retries.WithLabelValues("evaluate").Inc()
		a.log.Warn("evaluate window; retrying", "subject", msg.Subject(), "err", err, "wait", wait)
	})
	if err != nil {
		return false // not acknowledged: redelivered, and evaluating it again is harmless
	}
	_ = msg.Ack()
	return true
}

// caughtUp reports whether the backlog of windows is small enough that
// last-seen times are current; not before the reader has a consumer, nor
// while its consumer is gone.
func (a *aggregateReader) caughtUp(ctx context.Context) bool {
	cons := a.cons.Load()
	if cons == nil {
		return false
	}
	info, err := (*cons).Info(ctx)
	return err == nil && info.NumPending < caughtUpBelow
}
