package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
	"github.com/edgeflow/edgeflow/internal/service"
)

// The hub (docs/operations.md#hub). With EDGEFLOW_HUB_SITES set the processor
// runs on the hub, where no telemetry arrives: no partition, lease or
// checkpoint. It creates the hub streams, which source every site's streams
// over the leaf node links, and writes the windows of each site's
// AGGREGATES_<site> to the hub's InfluxDB, tagged edge_site = the site. A
// durable pull consumer per site keeps the position: a window is
// acknowledged only once InfluxDB took it (or dead-lettered it), and a
// window delivered again (a crash, a lapsed acknowledgement) rewrites the
// same points. Replicas may share the consumers: each window is one message,
// written whole by whichever replica fetched it.

// hubAckWait is how long a fetched window may stay unacknowledged before
// JetStream delivers it again. A writer retrying InfluxDB, NATS or a
// dead-letter publish resets it on the windows in hand (InProgress) at every
// retry, so only a writer that stopped answering loses them to another.
const hubAckWait = time.Minute

// hubAckTimeout bounds the wait for the acknowledgement of a batch's last
// window.
const hubAckTimeout = 5 * time.Second

// HubConsumerName is the durable consumer through which the hub's processors
// write stream, a hub stream such as AGGREGATES_greenhouse-north, to InfluxDB.
func HubConsumerName(stream string) string { return "processor_" + stream }

// hub writes the windows of every site.
type hub struct {
	cfg     Config
	js      jetstream.JetStream
	influx  *Influx
	metrics *Metrics
	backlog *prometheus.GaugeVec // by site
	stalls  *Stalls[string]
	log     *slog.Logger
	now     func() time.Time
}

// runHub runs the hub until ctx ends (SIGTERM): every site's writer then
// writes and acknowledges the windows it holds, within the drain timeout,
// and stops. It returns nil when signalled while starting.
func runHub(ctx context.Context, cfg Config, log *slog.Logger, js jetstream.JetStream, influx *Influx,
	reg prometheus.Registerer, metrics *Metrics, health *service.Health) error {
	h := &hub{cfg: cfg, js: js, influx: influx, metrics: metrics, stalls: newSiteStalls(), log: log, now: time.Now,
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeflow_processor_hub_backlog",
			Help: "Windows of a site's hub stream not yet written to InfluxDB (its consumer's pending count as of the last fetch, plus those in hand)."},
			[]string{"site"})}
	reg.MustRegister(h.backlog)
	health.AddCheck("hub", h.stalls.Check)

	// Until these succeed the hub is alive but not ready: its NATS or
	// InfluxDB may still be starting. The sites need not be linked: a hub
	// stream sources its site once the site's JetStream answers.
	writers := make([]*siteWriter, len(cfg.HubConfig.Sites))
	startup := health.Starting()
	err := startup.Await(ctx, log, func(ctx context.Context) error {
		if err := influx.Ensure(ctx); err != nil {
			return err
		}
		if err := bus.Ensure(ctx, js, append(cfg.HubStreams(cfg.StreamConfig), cfg.DeadLetter())...); err != nil {
			return err
		}
		for i, site := range cfg.HubConfig.Sites {
			w := &siteWriter{hub: h, site: site, stream: bus.HubStreamName(site, bus.StreamAggregates)}
			w.log = log.With("site", site)
			c, err := w.consumer(ctx)
			if err != nil {
				return err
			}
			w.cons = c
			writers[i] = w
		}
		return nil
	})
	if err != nil {
		return nil // signalled while starting: nothing to drain
	}
	startup.Done()
	log.Info("processor running as the hub", "sites", cfg.HubConfig.Sites, "streams", cfg.HubConfig.Streams)

	drain := service.NewDrain(ctx, cfg.DrainTimeout)
	defer drain.Stop()
	var wg sync.WaitGroup
	errs := make([]error, len(writers))
	for i, w := range writers {
		wg.Go(func() { errs[i] = w.run(ctx, drain.Context()) })
	}
	wg.Wait()
	if err := drain.Err("the windows in hand were not acknowledged: JetStream delivers them again"); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// siteWriter writes one site's windows: it fetches a batch, writes it in
// one or a few InfluxDB requests, publishes the dead letters, acknowledges
// every window of the batch, and fetches the next.
type siteWriter struct {
	*hub
	site, stream string
	log          *slog.Logger
	cons         jetstream.Consumer // nil: created again before the next fetch

	batch   Batch
	msgs    []jetstream.Msg // the batch's windows, acknowledged once written
	windows int             // of msgs, those written (the others dead-lettered)
	dead    []*nats.Msg     // dead letters to publish before acknowledging
	live    bus.LiveBatch   // each device's newest window, for the hub's dashboard
	pending uint64          // the consumer's pending count at the last fetch
	shown   float64         // what this writer adds to the backlog gauge
}

// consumer creates or updates the site's durable consumer: explicit
// acknowledgement, delivered until written (no delivery limit), from the
// stream's first window.
func (w *siteWriter) consumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := w.js.CreateOrUpdateConsumer(ctx, w.stream, jetstream.ConsumerConfig{
		Durable:       HubConsumerName(w.stream),
		Description:   "the hub's processors write site " + w.site + "'s windows to InfluxDB",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cmp.Or(w.cfg.hubAckWait, hubAckWait),
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer of hub stream %s: %w", w.stream, err)
	}
	return c, nil
}

// run writes until stop ends, then returns once the batch in hand is
// written and acknowledged. work is what the batch is written on: it
// outlives stop by the drain timeout.
func (w *siteWriter) run(stop, work context.Context) error {
	defer w.showBacklog(0)
	for stop.Err() == nil {
		if err := w.fetch(stop); err != nil {
			return nil // stopped while NATS was away: nothing in hand
		}
		if len(w.msgs) == 0 {
			w.advanced()
			w.showBacklog(w.pending)
			continue
		}
		w.showBacklog(w.pending + uint64(len(w.msgs)))
		if err := w.flush(work); err != nil {
			return fmt.Errorf("site %s: %w", w.site, err)
		}
		w.showBacklog(w.pending)
	}
	return nil
}

// fetch fetches the next batch into the writer, waiting at most the flush
// interval for it to fill, retrying until NATS answers or ctx ends.
func (w *siteWriter) fetch(ctx context.Context) error {
	return retry.Do(ctx, retry.Backoff{Max: 2 * time.Second}, func(ctx context.Context) error {
		if w.cons == nil {
			c, err := w.consumer(ctx)
			if err != nil {
				return err
			}
			w.cons = c
		}
		batch, err := w.cons.Fetch(w.cfg.FetchSize, jetstream.FetchMaxWait(w.cfg.FlushInterval))
		if err != nil {
			w.cons = nil
			return fmt.Errorf("fetch from %s: %w", w.stream, err)
		}
		for m := range batch.Messages() {
			w.add(m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			if len(w.msgs) > 0 {
				return nil // written and acknowledged; the next fetch tells
			}
			// The consumer or its stream may be gone (deleted by an
			// operator): ensured again before the next fetch.
			w.cons = nil
			return fmt.Errorf("fetch from %s: %w", w.stream, err)
		}
		if len(w.msgs) == 0 {
			w.pending = 0
		}
		return nil
	}, func(err error, wait time.Duration) {
		w.retrying("fetch", err)
		w.log.Warn("fetch failed; retrying", "err", err, "wait", wait)
	})
}

// add adds one fetched window to the batch. Its site is the hub stream's,
// read from the subject the hub's sourcing gave it, never from the
// payload: a site cannot write into another site's series. What does not
// decode is dead-lettered, and acknowledged with the batch.
func (w *siteWriter) add(m jetstream.Msg) {
	w.metrics.In.Inc()
	w.msgs = append(w.msgs, m)
	if meta, err := m.Metadata(); err == nil {
		w.pending = meta.NumPending
	}
	site, ok := bus.SiteOfHubSubject(m.Subject())
	if !ok || site != w.site {
		w.deadLetter("invalid_subject", fmt.Sprintf("not a subject of site %s's hub stream %s", w.site, w.stream), m)
		return
	}
	a, err := reading.UnmarshalAggregate(m.Data())
	if err != nil {
		w.deadLetter("invalid_aggregate", err.Error(), m)
		return
	}
	w.batch.AddHubAggregate(site, &a)
	w.windows++
	w.addLive(&a)
}

// addLive keeps a window as its device's newest value on the hub's live
// feed: each metric's last value at the window's end, which is the same for
// every window length ending then (they end on their newest reading).
func (w *siteWriter) addLive(a *reading.Aggregate) {
	r := reading.Reading{Site: a.Site, Device: a.Device, TS: a.End, Received: a.Received, Metrics: make(map[string]float64, len(a.Metrics))}
	for name, s := range a.Metrics {
		r.Metrics[name] = s.Last
	}
	if data, err := reading.Encode(&r); err == nil {
		w.live.Add(a.Site, a.Device, data)
	}
}

func (w *siteWriter) deadLetter(reason, detail string, m jetstream.Msg) {
	w.metrics.DeadLettered.WithLabelValues(reason).Inc()
	w.log.Warn("window dead-lettered", "reason", reason, "subject", m.Subject(), "detail", detail)
	w.dead = append(w.dead, bus.DeadLetter{Service: "processor", Reason: reason, Detail: detail,
		Source: m.Subject(), Body: m.Data()}.Msg(w.now()))
}

// flush writes the batch (lineWriter: retried while InfluxDB does not take
// it, refused points dead-lettered), publishes the dead letters, and only
// then acknowledges the batch's windows.
func (w *siteWriter) flush(ctx context.Context) error {
	lw := lineWriter{influx: w.influx, batchSize: w.cfg.BatchSize, metrics: w.metrics, log: w.log,
		source: "hub stream " + w.stream, now: w.now, retrying: w.retrying, dead: w.dead}
	err := lw.write(ctx, &w.batch)
	w.dead = lw.dead
	if err != nil {
		return err
	}
	if err := w.live.Publish(w.js.Conn(), bus.LiveSubject("hub."+w.site)); err != nil && ctx.Err() == nil {
		w.log.Debug("live feed not published", "err", err)
	}
	if err := w.publishDead(ctx); err != nil {
		return err
	}
	if err := w.ack(ctx); err != nil {
		return err
	}
	w.metrics.Out.Add(float64(w.windows))
	w.advanced()
	w.batch.Reset()
	clear(w.msgs)
	w.msgs = w.msgs[:0]
	clear(w.dead)
	w.dead = w.dead[:0]
	w.windows = 0
	return nil
}

// publishDead sends the dead letters to the hub's DEADLETTER and waits until
// JetStream has them all.
func (w *siteWriter) publishDead(ctx context.Context) error {
	if len(w.dead) == 0 {
		return nil
	}
	futures := make([]jetstream.PubAckFuture, len(w.dead))
	pub := bus.Publisher{JS: w.js, Retry: func(m *nats.Msg, err error, _ time.Duration) {
		w.retrying("publish", err)
		w.log.Warn("dead-letter publish failed; retrying", "subject", m.Subject, "err", err)
	}}
	defer pub.Release()
	if err := pub.PublishAsync(ctx, w.dead, futures); err != nil {
		return err
	}
	return pub.Settle(ctx, w.dead, futures, nil)
}

// ack acknowledges the batch's windows, the last one synchronously, so that
// the acknowledgements are with NATS before the writer fetches again or
// stops. One that is lost (NATS away) only means the window is delivered
// again after hubAckWait and its points written again, the same.
func (w *siteWriter) ack(ctx context.Context) error {
	last := len(w.msgs) - 1
	for _, m := range w.msgs[:last] {
		if err := m.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			w.log.Warn("acknowledgement failed; the window is delivered and written again", "subject", m.Subject(), "err", err)
		}
	}
	return retry.Do(ctx, retry.Backoff{}, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, hubAckTimeout)
		defer cancel()
		err := w.msgs[last].DoubleAck(actx)
		if errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return nil
		}
		return err
	}, func(err error, wait time.Duration) {
		w.retrying("ack", err)
		w.log.Warn("acknowledgement failed; retrying", "err", err, "wait", wait)
	})
}

// retrying accounts a failed attempt of op that is retried: the site is
// stalled (readiness) until its writer next advances, and the windows in
// hand stay its own (InProgress restarts their acknowledgement wait).
func (w *siteWriter) retrying(op string, err error) {
	w.metrics.Retries.WithLabelValues(op).Inc()
	if w.stalls.Fail(w.site, op, err) {
		w.log.Warn("site stalled; not ready until it advances", "op", op, "err", err)
	}
	for _, m := range w.msgs {
		_ = m.InProgress() // NATS away: the writer retries that first
	}
}

// advanced records a fetch or flush that succeeded: the site is not stalled.
func (w *siteWriter) advanced() {
	if d := w.stalls.Clear(w.site); d > 0 {
		w.log.Info("site advancing again", "stalled_for", d.Round(time.Millisecond).String())
	}
}

// showBacklog sets the site's backlog gauge and its share of the total.
func (w *siteWriter) showBacklog(n uint64) {
	w.backlog.WithLabelValues(w.site).Set(float64(n))
	w.metrics.Backlog.Add(float64(n) - w.shown)
	w.shown = float64(n)
}
