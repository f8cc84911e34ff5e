package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/channel"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// deliveryConsumer is the durable consumer of one channel, shared by the
// replicas: each notification goes to one of them at a time. A failed
// attempt is negatively acknowledged with the channel's backoff as delay,
// and redelivered (to any replica) after it, without limit. AckWait is the
// failover time: what a dead replica held goes to another after it, while a
// live one keeps a slow attempt its own with InProgress.
func deliveryConsumer(name string, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       deliveryLoopName(name),
		Description:   "notifier: deliveries to channel " + name,
		FilterSubject: reading.NotificationSubject(name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 64,
	}
}

// Dispatcher runs one delivery loop per channel of the rules in effect,
// each under loops (restarted when it ends, reported while it is down).
type Dispatcher struct {
	js       jetstream.JetStream
	rules    func() *rules.Set
	metrics  *Metrics
	log      *slog.Logger
	client   *http.Client
	failover time.Duration
	loops    *Loops
	// current returns an alert's state as the replica knows it (the
	// ALERT_STATE mirror): alertmanager notifications that it has moved
	// past are not sent (superseded).
	current func(key string) (alert.State, bool)

	mu      sync.Mutex
	version string // of the rules the senders were built from
	senders map[string]channel.Sender
	running map[string]context.CancelFunc // stops a channel's loop
	wg      sync.WaitGroup
}

// NewDispatcher returns a dispatcher with no loops yet (Reconcile starts
// them); current looks alerts up (nil: never superseded).
func NewDispatcher(js jetstream.JetStream, set func() *rules.Set, m *Metrics, log *slog.Logger, failover time.Duration, loops *Loops,
	current func(key string) (alert.State, bool)) *Dispatcher {
	return &Dispatcher{js: js, rules: set, metrics: m, log: log, client: channel.NewHTTPClient(), failover: failover,
		loops: loops, current: current, senders: map[string]channel.Sender{}, running: map[string]context.CancelFunc{}}
}

// deliveryLoopName names a channel's loop (and its consumer) in readiness
// and metrics.
func deliveryLoopName(channel string) string { return "deliver-" + channel }

// Reconcile starts a loop for each channel of the rules in effect and stops
// the loops of channels that were removed (their notifications wait in the
// queue until the channel comes back). Loops stop pulling when ctx ends and
// finish what they hold within work. A loop that ends before ctx, or whose
// consumer cannot be created, is started again with backoff (Loops.Run).
func (d *Dispatcher) Reconcile(ctx, work context.Context) {
	set := d.rules()
	if set == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if set.Version != d.version {
		d.senders = map[string]channel.Sender{}
		for name, c := range set.Channels {
			s, err := channel.New(c, d.client, d.log)
			if err != nil {
				d.log.Error("channel", "channel", name, "err", err)
				continue
			}
			d.senders[name] = s
		}
		d.version = set.Version
	}
	for name := range set.Channels {
		if _, running := d.running[name]; running {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		d.running[name] = cancel
		state := d.loops.Add(deliveryLoopName(name))
		d.wg.Go(func() {
			d.loops.Run(lctx, state, func(ctx context.Context, running func()) error {
				return d.deliver(ctx, work, name, running)
			})
		})
	}
	for name, cancel := range d.running {
		if _, ok := set.Channels[name]; !ok {
			cancel()
			delete(d.running, name)
		}
	}
}

// Wait returns when every loop has returned (after ctx of Reconcile ended).
func (d *Dispatcher) Wait() { d.wg.Wait() }

// Observe refreshes the queue gauges from the consumers.
func (d *Dispatcher) Observe(ctx context.Context) {
	d.mu.Lock()
	names := make([]string, 0, len(d.running))
	for name := range d.running {
		names = append(names, name)
	}
	d.mu.Unlock()
	for _, name := range names {
		cons, err := d.js.Consumer(ctx, bus.StreamNotifications, deliveryLoopName(name))
		if err != nil {
			continue
		}
		info := cons.CachedInfo()
		d.metrics.Retrying.WithLabelValues(name).Set(float64(info.NumRedelivered))
		d.metrics.Queued.WithLabelValues(name).Set(float64(info.NumPending) + float64(info.NumAckPending))
	}
}

func (d *Dispatcher) sender(name string) (channel.Sender, rules.Channel, bool) {
	set := d.rules()
	if set == nil {
		return nil, rules.Channel{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := set.Channels[name]
	s := d.senders[name]
	return s, c, ok && s != nil && set.Version == d.version
}

// deliver is one run of a channel's delivery loop: it creates (or finds)
// the channel's consumer and delivers until ctx ends, or until its messages
// end on their own (the consumer was deleted, the server ended the pull),
// when it returns why.
func (d *Dispatcher) deliver(ctx, work context.Context, name string, running func()) error {
	cons, err := d.js.CreateOrUpdateConsumer(ctx, bus.StreamNotifications, deliveryConsumer(name, d.failover))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", deliveryLoopName(name), err)
	}
	// One message at a time: what a replica holds when it stops is what it
	// is sending, not a batch that would wait for AckWait elsewhere.
	it, err := cons.Messages(jetstream.PullMaxMessages(1), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return fmt.Errorf("pull %s: %w", deliveryLoopName(name), err)
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
			if consumerGone(ctx, cons) {
				return fmt.Errorf("consumer %s: %w (pull: %w)", deliveryLoopName(name), jetstream.ErrConsumerNotFound, err)
			}
			last = err
			continue
		}
		if work.Err() != nil {
			return nil // left unacknowledged: redelivered
		}
		d.handle(work, name, msg)
	}
}

// handle makes one delivery attempt and settles the message: acknowledged
// once delivered, otherwise negatively acknowledged with the channel's
// backoff, so it comes back (here or on another replica) after the delay.
func (d *Dispatcher) handle(work context.Context, name string, msg jetstream.Msg) {
	attempt := uint64(1)
	if md, err := msg.Metadata(); err == nil {
		attempt = md.NumDelivered
	}
	var n alert.Notification
	if err := json.Unmarshal(msg.Data(), &n); err != nil {
		dl := bus.DeadLetter{Service: "notifier", Reason: "invalid_notification", Detail: err.Error(), Source: msg.Subject(), Body: msg.Data()}
		if err := dl.Publish(work, d.js, time.Now()); err != nil {
			_ = msg.NakWithDelay(time.Second)
			return
		}
		d.metrics.DeadLettered.WithLabelValues("invalid_notification").Inc()
		_ = msg.Term()
		return
	}
	sender, c, ok := d.sender(name)
	if !ok {
		_ = msg.NakWithDelay(5 * time.Second) // the channel is being reconfigured or was removed
		return
	}
	if c.Type == rules.Alertmanager && d.superseded(n) {
		d.metrics.Deliveries.WithLabelValues(name, "superseded").Inc()
		d.log.Debug("superseded: not sent", "channel", name, "id", n.ID)
		d.ack(work, name, n.ID, msg)
		return
	}
	ctx, cancel := context.WithTimeout(work, c.Timeout)
	// An attempt may outlast AckWait (the failover time): keep the
	// notification ours meanwhile, or another replica would send it too.
	stopKeep := keep(ctx, msg, d.failover/3)
	err := sender.Send(ctx, n)
	stopKeep()
	cancel()
	if errors.Is(err, channel.ErrRejected) {
		d.reject(work, name, n, msg, err, backoff(c, attempt))
		return
	}
	if err != nil {
		d.metrics.Deliveries.WithLabelValues(name, "failed").Inc()
		delay := backoff(c, attempt)
		d.log.Warn("delivery failed; will retry", "channel", name, "id", n.ID, "attempt", attempt, "retry_in", delay, "err", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	d.metrics.Deliveries.WithLabelValues(name, "ok").Inc()
	d.metrics.Out.Inc()
	level := slog.LevelInfo
	if n.Resend {
		level = slog.LevelDebug // every minute per firing alert: the metrics count them
	}
	d.log.Log(work, level, "delivered", "channel", name, "id", n.ID, "attempt", attempt)
	d.ack(work, name, n.ID, msg)
}

// ack settles a notification for good, confirmed, so that a lost
// acknowledgement is seen (and logged) rather than turning silently into a
// second delivery after AckWait.
func (d *Dispatcher) ack(work context.Context, name, id string, msg jetstream.Msg) {
	actx, cancel := context.WithTimeout(work, 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		d.log.Warn("acknowledge delivery; it may be delivered again", "channel", name, "id", id, "err", err)
	}
}

// reject dead-letters a notification its receiver refused for good
// (channel.ErrRejected): retrying the same request would be refused again.
// If the dead letter cannot be stored, the notification is retried later
// instead: it is never dropped unrecorded.
func (d *Dispatcher) reject(work context.Context, name string, n alert.Notification, msg jetstream.Msg, err error, retry time.Duration) {
	d.metrics.Deliveries.WithLabelValues(name, "rejected").Inc()
	dl := bus.DeadLetter{Service: "notifier", Reason: "rejected_notification", Detail: err.Error(), Source: msg.Subject(), Body: msg.Data()}
	if perr := dl.Publish(work, d.js, time.Now()); perr != nil {
		d.log.Warn("dead-letter a rejected notification; will retry it", "channel", name, "id", n.ID, "err", perr)
		_ = msg.NakWithDelay(retry)
		return
	}
	d.metrics.DeadLettered.WithLabelValues("rejected_notification").Inc()
	d.log.Error("the channel refused the notification; dead-lettered, not retried", "channel", name, "id", n.ID,
		"rule", n.Rule, "site", n.Site, "device", n.Device, "state", n.State, "err", err)
	_ = msg.Term()
}

// superseded reports whether the alert of an alertmanager notification has
// moved past it. Alertmanager keeps one state per alert and takes the last
// it is told, so a notification that waited in the queue (retried while
// Alertmanager was down) must not undo a newer one: a firing alert
// delivered after its resolution would fire again there, a resolution
// delivered after the alert fired again would end the new episode. So:
//   - while the alert fires, every notification of an earlier change, and
//     a firing one that a later re-send repeats, is superseded (the later
//     one says what holds);
//   - once it no longer fires, a firing notification of an earlier change
//     is (its resolution has a notification of its own), but a resolution
//     never is: Alertmanager must hear it, even if the alert is pending
//     again since.
//
// The state comes from this replica's mirror, which may lag by a moment:
// a notification newer than what it knows is sent.
func (d *Dispatcher) superseded(n alert.Notification) bool {
	if d.current == nil {
		return false
	}
	s, ok := d.current(alert.Key(n.Rule, n.Site, n.Device))
	if !ok {
		return false
	}
	firing := n.State == string(alert.Firing)
	if s.Phase == alert.Firing {
		return s.Seq > n.Seq || (firing && s.Seq == n.Seq && s.Resent.After(n.At))
	}
	return firing && s.Seq > n.Seq
}

// keep tells the server every interval that msg is still being worked on,
// until the returned function is called.
func keep(ctx context.Context, msg jetstream.Msg, interval time.Duration) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// backoff is the wait before attempt+1 of a delivery: the project's one
// backoff (retry.Backoff, doubling with jitter) within the channel's bounds.
func backoff(c rules.Channel, attempt uint64) time.Duration {
	b := retry.Backoff{Initial: c.RetryInitial, Max: c.RetryMax}
	for i := uint64(1); i < attempt && i < 64; i++ {
		b.Next()
	}
	return b.Next()
}
