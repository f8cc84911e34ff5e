package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/ingest/decode"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/service"
)

// Bridge carries MQTT messages into JetStream. Its one rule: an MQTT message
// is acknowledged only after JetStream acknowledged everything made from it
// (its readings, or its dead-letter record). Until then the broker holds it
// in ingest's persistent session and redelivers it after any crash, and
// Nats-Msg-Id makes that redelivery harmless.
//
// Two goroutines keep the order of arrival: publishLoop decodes and publishes
// asynchronously, ackLoop waits for JetStream's acknowledgements in the same
// order and then acknowledges MQTT. The paho callback only enqueues.
type Bridge struct {
	limits  decode.Limits
	log     *slog.Logger
	metrics *service.Pipeline
	latency prometheus.Histogram
	now     func() time.Time

	mu       sync.RWMutex // guards open against Handle racing Close
	open     bool
	incoming chan arrival
	pending  chan *delivery
	stopped  chan struct{} // closed when Run returns

	// failingSince is when JetStream last started refusing publishes (unix
	// nanoseconds), 0 while healthy: readiness reads it.
	failingSince atomic.Int64

	// pub keeps a republish from being overtaken: publishLoop publishes
	// through it; ackLoop settles through it and, after a publish failed,
	// releases it once every delivery published before is settled, so a
	// device's readings reach TELEMETRY in the order they arrived even when
	// a whole window of PubAcks is lost (docs/decisions.md, "Republished
	// readings are not overtaken").
	pub bus.Publisher
}

// arrival is an MQTT message as the paho callback received it.
type arrival struct {
	m  mqtt.Message
	at time.Time
}

// delivery is one MQTT message on its way: what was published for it and the
// acknowledgements still to come.
type delivery struct {
	mqtt     mqtt.Message
	received time.Time
	msgs     []*nats.Msg
	futures  []jetstream.PubAckFuture
	rejected bool
	// Backing arrays for the usual one reading per message: msgs and
	// futures need no allocations of their own.
	oneMsg    [1]*nats.Msg
	oneFuture [1]jetstream.PubAckFuture
}

// NewBridge returns a Bridge that buffers at most maxInFlight messages.
func NewBridge(js jetstream.JetStream, limits decode.Limits, maxInFlight int, log *slog.Logger, reg prometheus.Registerer) *Bridge {
	b := &Bridge{
		limits:  limits,
		log:     log,
		metrics: service.NewPipeline(reg, "ingest"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgeflow_ingest_ack_latency_seconds",
			Help:    "From MQTT receipt to JetStream acknowledgement of everything made from the message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		now:      time.Now,
		open:     true,
		incoming: make(chan arrival, maxInFlight),
		pending:  make(chan *delivery, maxInFlight),
		stopped:  make(chan struct{}),
	}
	b.pub = bus.Publisher{JS: js,
		Failed: func(_ *nats.Msg, err error) { b.onRetry(err, 0) },
		Retry:  func(_ *nats.Msg, err error, wait time.Duration) { b.onRetry(err, wait) }}
	reg.MustRegister(b.latency)
	return b
}

// Handle is the paho message handler. It never decodes or waits on the
// network; it only blocks if maxInFlight messages are already queued, which
// the broker's own in-flight limit keeps from happening.
func (b *Bridge) Handle(_ mqtt.Client, m mqtt.Message) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.open {
		return // draining: not acknowledged, so the broker redelivers it later
	}
	select {
	case b.incoming <- arrival{m, b.now()}:
		b.metrics.In.Inc()
		b.metrics.Backlog.Inc()
	case <-b.stopped: // not acknowledged: the broker redelivers it
	}
}

// Run publishes and acknowledges until Close has been called and everything
// queued is acknowledged, or ctx ends (then what is unacknowledged stays with
// the broker).
func (b *Bridge) Run(ctx context.Context) {
	defer close(b.stopped)
	var wg sync.WaitGroup
	wg.Go(func() { b.publishLoop(ctx) })
	wg.Go(func() { b.ackLoop(ctx) })
	wg.Wait()
}

// Close stops accepting messages; Run returns once the queue is drained.
func (b *Bridge) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		b.open = false
		close(b.incoming)
	}
}

// Ready reports whether JetStream is taking publishes.
func (b *Bridge) Ready(context.Context) error {
	if since := b.failingSince.Load(); since != 0 {
		return fmt.Errorf("jetstream publishes failing since %s", time.Unix(0, since).UTC().Format(time.RFC3339))
	}
	return nil
}

func (b *Bridge) publishLoop(ctx context.Context) {
	defer close(b.pending)
	for {
		var in arrival
		select {
		case <-ctx.Done():
			return
		case a, ok := <-b.incoming:
			if !ok {
				return
			}
			in = a
		}
		d := b.prepare(in.m, in.at)
		if err := b.publish(ctx, d); err != nil {
			return // ctx ended: the rest stays unacknowledged with the broker
		}
		b.pending <- d
	}
}

// prepare decodes m, received at now, into the messages to publish: its
// readings, or one dead-letter record saying why it was rejected.
func (b *Bridge) prepare(m mqtt.Message, now time.Time) *delivery {
	d := &delivery{mqtt: m, received: now}
	d.msgs = d.oneMsg[:0]
	readings, err := decode.Decode(m.Topic(), m.Payload(), now, b.limits)
	if err != nil {
		return b.reject(d, string(decode.ReasonOf(err)), err)
	}
	for i := range readings {
		r := &readings[i]
		data, err := reading.Encode(r)
		if err != nil { // cannot happen for a validated reading; never crash on it
			return b.reject(&delivery{mqtt: m, received: now}, "internal", err)
		}
		msg := nats.NewMsg(reading.TelemetrySubject(r.Site, r.Device))
		msg.Data = data
		if id := r.MsgID(); id != "" {
			msg.Header.Set(jetstream.MsgIDHeader, id)
		}
		d.msgs = append(d.msgs, msg)
	}
	return d
}

// reject turns d into one dead-letter record saying why m was refused.
func (b *Bridge) reject(d *delivery, reason string, err error) *delivery {
	b.log.Debug("rejected message", "reason", reason, "err", err)
	b.metrics.DeadLettered.WithLabelValues(reason).Inc()
	d.rejected = true
	d.msgs = []*nats.Msg{bus.DeadLetter{
		Service: "ingest", Reason: reason, Detail: err.Error(), Source: d.mqtt.Topic(), Body: d.mqtt.Payload(),
	}.Msg(d.received)}
	return d
}

// publish starts the asynchronous publishes of d, retrying while JetStream
// refuses to take them (disconnected, too many pending).
func (b *Bridge) publish(ctx context.Context, d *delivery) error {
	if len(d.msgs) <= len(d.oneFuture) {
		d.futures = d.oneFuture[:len(d.msgs)]
	} else {
		d.futures = make([]jetstream.PubAckFuture, len(d.msgs))
	}
	return b.pub.PublishAsync(ctx, d.msgs, d.futures)
}

func (b *Bridge) ackLoop(ctx context.Context) {
	defer b.pub.Release()
	for d := range b.pending {
		if err := b.await(ctx, d); err != nil {
			// ctx ended: leave d and everything after it to the broker.
			b.pub.Release()
			for range b.pending {
			}
			return
		}
		d.mqtt.Ack()
		b.metrics.Backlog.Dec()
		b.latency.Observe(b.now().Sub(d.received).Seconds())
		// Everything published before the failure is settled (publishLoop
		// publishes nothing while b.pub holds it): new messages may go.
		if len(b.pending) == 0 {
			b.pub.Release()
		}
	}
}

// await waits for every acknowledgement of d, publishing again (same
// Nats-Msg-Id, so never twice in the stream) whatever failed and keeping
// newer messages back meanwhile (bus.Publisher).
func (b *Bridge) await(ctx context.Context, d *delivery) error {
	if err := b.pub.Settle(ctx, d.msgs, d.futures, func(_ int, ack *jetstream.PubAck) { b.acked(d, ack) }); err != nil {
		return err
	}
	b.failingSince.Store(0)
	return nil
}

func (b *Bridge) acked(d *delivery, ack *jetstream.PubAck) {
	switch {
	case d.rejected:
	case ack.Duplicate:
		b.metrics.Dropped.WithLabelValues("duplicate").Inc()
	default:
		b.metrics.Out.Inc()
	}
}

func (b *Bridge) onRetry(err error, wait time.Duration) {
	b.metrics.Retries.WithLabelValues("publish").Inc()
	if b.failingSince.CompareAndSwap(0, b.now().UnixNano()) {
		b.log.Warn("jetstream publish failing; holding MQTT acknowledgements", "err", err)
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	b.log.Debug("publish retry", "err", err, "wait", wait)
}
