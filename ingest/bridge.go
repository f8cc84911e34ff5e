package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
// in ingest's persistent session and redelivers it after any crash; the
// processor drops a redelivered reading it has already folded
// (docs/decisions.md, "Duplicates are dropped where the windows are").
//
// Readings travel in batches: publishLoop gathers messages into a round,
// about one per BatchWait under a steady flow and at most BatchMax messages
// (gather), and publishes each partition's readings of the round in
// as few messages as MaxBatchBytes allows, asynchronously. ackLoop waits for JetStream's
// acknowledgements of each round, in order, then acknowledges its MQTT
// messages in the order they arrived. The paho callback only enqueues.
type Bridge struct {
	limits     decode.Limits
	log        *slog.Logger
	metrics    *service.Pipeline
	latency    prometheus.Histogram
	batchSize  prometheus.Histogram
	now        func() time.Time
	partitions int
	batchWait  time.Duration
	batchMax   int
	// A batch's Nats-Msg-Id is runID and a counter: unique to this process,
	// so JetStream drops a batch republished after its PubAck was lost.
	runID  string
	nextID uint64
	// prepare's scratch, kept between rounds: each partition's open batch,
	// and a message's readings encoded back to back with where each ends.
	batchOf []int
	encoded []byte
	ends    []int

	mu       sync.RWMutex // guards open against Handle racing Close
	open     bool
	incoming chan arrival
	pending  chan *round
	stopped  chan struct{} // closed when Run returns

	// unsettled counts the rounds published and not yet acknowledged;
	// settled tells gather that one was.
	unsettled atomic.Int64
	settled   chan struct{}
	// lastRound is when gather last closed a round that was not full
	// (publishLoop's only).
	lastRound time.Time

	// failingSince is when JetStream last started refusing publishes (unix
	// nanoseconds), 0 while healthy: readiness reads it.
	failingSince atomic.Int64

	// pub keeps a republish from being overtaken: publishLoop publishes
	// through it; ackLoop settles through it and, after a publish failed,
	// releases it once every round published before is settled, so a
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

// round is the MQTT messages gathered for one publish and what was made from
// them: batches of readings, one partition's each, and a dead-letter record
// per message refused.
type round struct {
	arrivals []arrival
	msgs     []*nats.Msg
	readings []int // readings in each of msgs; 0 for a dead-letter record
	futures  []jetstream.PubAckFuture
}

// BatchOptions says how ingest batches: readings of partitions of the
// TELEMETRY stream (bus.Partitions), gathered for at most Wait, at most Max
// MQTT messages a round.
type BatchOptions struct {
	Partitions int
	Wait       time.Duration
	Max        int
}

// NewBridge returns a Bridge that buffers at most maxInFlight messages.
func NewBridge(js jetstream.JetStream, limits decode.Limits, batch BatchOptions, maxInFlight int, log *slog.Logger, reg prometheus.Registerer) *Bridge {
	b := &Bridge{
		limits:  limits,
		log:     log,
		metrics: service.NewPipeline(reg, "ingest"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgeflow_ingest_ack_latency_seconds",
			Help:    "From MQTT receipt to JetStream acknowledgement of everything made from the message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "edgeflow_ingest_batch_readings",
			Help:    "Readings in each batch published on TELEMETRY.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		now:        time.Now,
		partitions: max(batch.Partitions, 1),
		batchWait:  batch.Wait,
		batchMax:   max(batch.Max, 1),
		runID:      nats.NewInbox()[len(nats.InboxPrefix):] + ".",
		open:       true,
		incoming:   make(chan arrival, maxInFlight),
		pending:    make(chan *round, maxInFlight),
		stopped:    make(chan struct{}),
		settled:    make(chan struct{}, 1),
	}
	b.pub = bus.Publisher{JS: js,
		Failed: func(_ *nats.Msg, err error) { b.onRetry(err, 0) },
		Retry:  func(_ *nats.Msg, err error, wait time.Duration) { b.onRetry(err, wait) }}
	reg.MustRegister(b.latency, b.batchSize)
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
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	for {
		r, more := b.gather(ctx, gather)
		if r == nil {
			return // ctx ended: the rest stays unacknowledged with the broker
		}
		b.prepare(r)
		if err := b.pub.PublishAsync(ctx, r.msgs, r.futures); err != nil {
			return
		}
		b.unsettled.Add(1)
		b.pending <- r
		if !more {
			return
		}
	}
}

// gather waits for a message, then takes what is queued and what arrives
// until the round may go, up to batchMax: once batchWait has passed since
// the previous round went out and nothing is in flight (publishing sooner
// would only queue behind it), and never later than batchWait after its
// first message. A message arriving at a quiet ingest is published at once;
// under a steady flow rounds go out about once per batchWait, each with
// what arrived since the last, so a JetStream message carries many readings
// at any rate above a few hundred a second; in a burst a round forms while
// the last one is in flight. It returns nil when ctx ended first, and
// more=false once Close was called and the queue is empty.
func (b *Bridge) gather(ctx context.Context, wait *time.Timer) (r *round, more bool) {
	select {
	case <-ctx.Done():
		return nil, false
	case a, ok := <-b.incoming:
		if !ok {
			return nil, false
		}
		r = &round{arrivals: []arrival{a}}
	}
	latest := time.Now().Add(b.batchWait)
	paced := b.lastRound.Add(b.batchWait)
	defer wait.Stop()
	for {
		if more := b.takeQueued(r); !more || len(r.arrivals) == b.batchMax {
			// A full round lets the next one go at once: the flow is more
			// than batchMax a batchWait.
			return r, more
		}
		now := time.Now()
		if !now.Before(latest) || (!now.Before(paced) && b.unsettled.Load() == 0) {
			b.lastRound = now
			return r, true
		}
		// Sleep rather than wake for every message: what arrives meanwhile
		// waits in the queue (up to the in-flight limit) for the next take.
		if now.Before(paced) {
			wait.Reset(paced.Sub(now))
		} else {
			wait.Reset(latest.Sub(now))
		}
		select {
		case <-b.settled:
		case <-wait.C:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// takeQueued adds to r what is queued, up to batchMax, and reports
// more=false when the queue was closed and is empty.
func (b *Bridge) takeQueued(r *round) (more bool) {
	for len(r.arrivals) < b.batchMax {
		select {
		case a, ok := <-b.incoming:
			if !ok {
				return false
			}
			r.arrivals = append(r.arrivals, a)
		default:
			return true
		}
	}
	return true
}

// prepare decodes the round's MQTT messages into what it publishes: each
// partition's readings in batches of at most MaxBatchBytes (a reading larger
// than that alone), in the order they arrived, and a dead-letter record for
// each message refused, saying why.
func (b *Bridge) prepare(r *round) {
	if len(b.batchOf) != b.partitions {
		b.batchOf = make([]int, b.partitions)
	}
	clear(b.batchOf) // index in r.msgs + 1 of each partition's batch
	for _, a := range r.arrivals {
		readings, err := decode.Decode(a.m.Topic(), a.m.Payload(), a.at, b.limits)
		if err != nil {
			b.reject(r, a, string(decode.ReasonOf(err)), err)
			continue
		}
		// Every reading is encoded before any is batched: a message is
		// published whole or dead-lettered whole.
		b.encoded, b.ends = b.encoded[:0], b.ends[:0]
		for i := range readings {
			if b.encoded, err = reading.AppendEncoded(b.encoded, &readings[i]); err != nil {
				break // cannot happen for a validated reading; never crash on it
			}
			b.ends = append(b.ends, len(b.encoded))
		}
		if err != nil {
			b.reject(r, a, "internal", err)
			continue
		}
		start := 0
		for i, end := range b.ends {
			data := b.encoded[start:end]
			start = end
			p := bus.Partition(readings[i].Site, readings[i].Device, b.partitions)
			if j := b.batchOf[p] - 1; j >= 0 && len(r.msgs[j].Data)+1+len(data) <= bus.MaxBatchBytes {
				r.msgs[j].Data = reading.AppendBatch(r.msgs[j].Data, data)
				r.readings[j]++
				continue
			}
			m := nats.NewMsg(bus.BatchSubject(p))
			// Room for the partition's share of the round, if its readings are alike.
			m.Data = reading.AppendBatch(make([]byte, 0, min(bus.MaxBatchBytes, (len(r.arrivals)/b.partitions+1)*(len(data)+1))), data)
			b.nextID++
			m.Header.Set(jetstream.MsgIDHeader, b.runID+strconv.FormatUint(b.nextID, 36))
			r.msgs = append(r.msgs, m)
			r.readings = append(r.readings, 1)
			b.batchOf[p] = len(r.msgs)
		}
	}
	for _, n := range r.readings {
		if n > 0 {
			b.batchSize.Observe(float64(n))
		}
	}
	r.futures = make([]jetstream.PubAckFuture, len(r.msgs))
}

// reject adds a dead-letter record saying why a was refused.
func (b *Bridge) reject(r *round, a arrival, reason string, err error) {
	b.log.Debug("rejected message", "reason", reason, "err", err)
	b.metrics.DeadLettered.WithLabelValues(reason).Inc()
	r.msgs = append(r.msgs, bus.DeadLetter{
		Service: "ingest", Reason: reason, Detail: err.Error(), Source: a.m.Topic(), Body: a.m.Payload(),
	}.Msg(a.at))
	r.readings = append(r.readings, 0)
}

func (b *Bridge) ackLoop(ctx context.Context) {
	defer b.pub.Release()
	for r := range b.pending {
		if err := b.await(ctx, r); err != nil {
			// ctx ended: leave r and everything after it to the broker.
			b.pub.Release()
			for range b.pending {
			}
			return
		}
		now := b.now()
		for _, a := range r.arrivals {
			a.m.Ack()
			b.latency.Observe(now.Sub(a.at).Seconds())
		}
		b.metrics.Backlog.Sub(float64(len(r.arrivals)))
		b.unsettled.Add(-1)
		select {
		case b.settled <- struct{}{}:
		default: // gather has a signal waiting already
		}
		// Everything published before the failure is settled (publishLoop
		// publishes nothing while b.pub holds it): new rounds may go.
		if len(b.pending) == 0 {
			b.pub.Release()
		}
	}
}

// await waits for every acknowledgement of r, publishing again (same
// Nats-Msg-Id, so never twice in the stream) whatever failed and keeping
// newer rounds back meanwhile (bus.Publisher).
func (b *Bridge) await(ctx context.Context, r *round) error {
	if err := b.pub.Settle(ctx, r.msgs, r.futures, func(i int, ack *jetstream.PubAck) { b.acked(r.readings[i], ack) }); err != nil {
		return err
	}
	b.failingSince.Store(0)
	return nil
}

// acked counts a message of readings readings (0: a dead-letter record)
// that JetStream acknowledged.
func (b *Bridge) acked(readings int, ack *jetstream.PubAck) {
	switch {
	case readings == 0:
	case ack.Duplicate:
		b.metrics.Dropped.WithLabelValues("duplicate").Add(float64(readings))
	default:
		b.metrics.Out.Add(float64(readings))
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
