package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/retry"
)

// republishTimeout bounds one synchronous republish.
const republishTimeout = 5 * time.Second

// Publisher publishes messages asynchronously and settles their
// acknowledgements in the order they were published. A message whose
// asynchronous publish failed is published again, synchronously and with
// its Nats-Msg-Id (so never twice in the stream), until JetStream takes it.
// From that first failure until Release, no new publish starts: nothing
// published after the failure can overtake the republish. nats.go's own
// retry of an asynchronous publish that found no stream (no responders) is
// off: it would republish on a timer, out of this order, so a later message
// could land before an earlier one that failed for good.
//
// PublishAsync may run in one goroutine and Settle and Release in another;
// Settle and Release must run in the same one. A Publisher must not be
// copied.
type Publisher struct {
	JS jetstream.JetStream
	// Failed, when set, sees each message whose asynchronous publish was
	// not acknowledged, before it is published again.
	Failed func(m *nats.Msg, err error)
	// Retry, when set, sees each failed attempt that is retried after wait:
	// an asynchronous publish JetStream refused to take (disconnected, too
	// many pending), or a synchronous republish.
	Retry func(m *nats.Msg, err error, wait time.Duration)

	// order: PublishAsync publishes under its read lock; Settle takes the
	// write lock at the first failed publish, Release gives it back.
	order   sync.RWMutex
	holding bool // order's write lock; only Settle's goroutine reads it
}

// PublishAsync starts the asynchronous publish of each of msgs, storing its
// acknowledgement in futures (as long as msgs), and retries while JetStream
// refuses to take one. It returns only ctx's error.
func (p *Publisher) PublishAsync(ctx context.Context, msgs []*nats.Msg, futures []jetstream.PubAckFuture) error {
	p.order.RLock()
	defer p.order.RUnlock()
	for i, m := range msgs {
		err := retry.Do(ctx, retry.Backoff{}, func(context.Context) error {
			f, err := p.JS.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
			if err != nil {
				return err
			}
			futures[i] = f
			return nil
		}, func(err error, wait time.Duration) { p.retry(m, err, wait) })
		if err != nil {
			return err
		}
	}
	return nil
}

// Settle waits for the acknowledgement of each of msgs, in order, calling
// acked (when set) with each. A publish that failed holds back new ones
// until Release and is published again until acknowledged. It returns only
// ctx's error.
func (p *Publisher) Settle(ctx context.Context, msgs []*nats.Msg, futures []jetstream.PubAckFuture,
	acked func(i int, ack *jetstream.PubAck)) error {
	for i, f := range futures {
		var err error
		select {
		case ack := <-f.Ok():
			if acked != nil {
				acked(i, ack)
			}
			continue
		case err = <-f.Err():
		case <-ctx.Done():
			return ctx.Err()
		}
		if p.Failed != nil {
			p.Failed(msgs[i], err)
		}
		p.hold()
		err = retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
			pctx, cancel := context.WithTimeout(ctx, republishTimeout)
			defer cancel()
			ack, err := p.JS.PublishMsg(pctx, msgs[i])
			if err == nil && acked != nil {
				acked(i, ack)
			}
			return err
		}, func(err error, wait time.Duration) { p.retry(msgs[i], err, wait) })
		if err != nil {
			return err
		}
	}
	return nil
}

// Release lets new publishes start again. Call it once everything published
// before the first failure is settled; it does nothing when none failed.
func (p *Publisher) Release() {
	if p.holding {
		p.holding = false
		p.order.Unlock()
	}
}

func (p *Publisher) hold() {
	if !p.holding {
		p.order.Lock()
		p.holding = true
	}
}

func (p *Publisher) retry(m *nats.Msg, err error, wait time.Duration) {
	if p.Retry != nil {
		p.Retry(m, err, wait)
	}
}
