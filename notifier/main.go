// Command notifier evaluates alert rules (rules/, a YAML file re-read when
// it changes) against the closed windows on AGGREGATES, keeps each alert's
// state machine (alert/) in the NATS KV bucket ALERT_STATE by
// compare-and-set, publishes every state change on ALERTS, and delivers
// notifications (channel/) through the NOTIFICATIONS work queue, retrying
// until each is delivered. Replicas share everything through NATS; see
// engine.go for why no notification is sent twice or lost.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/service"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/kvmirror"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

func main() { service.Main("notifier", LoadConfig, run) }

// sweepAge is how long an outbox belongs to the replica that wrote it
// before any replica's sweeper publishes it.
const sweepAge = 5 * time.Second

func run(ctx context.Context, cfg Config) error {
	log := service.NewLogger("notifier").With("replica", cfg.ID)
	reg := service.NewRegistry()
	health := service.NewHealth()
	metrics := NewMetrics(reg)

	watcher, rulesChanged := watchRules(cfg, log, metrics, health)

	nc, js, err := bus.Connect(ctx, log, cfg.Config, "edgeflow-notifier-"+cfg.ID)
	if err != nil {
		return err
	}
	defer nc.Close()
	health.AddCheck("nats", bus.Ready(nc))

	var states atomic.Pointer[kvmirror.Mirror[alert.Record]]
	g, ctx := service.NewGroup(ctx)
	defer g.Wait(nil)
	g.Serve(log, cfg.HTTPAddr, handler(health, reg, watcher, &states))

	// The rules file is watched from the start: a replica waiting for NATS
	// or for its first valid file picks up a fix.
	g.Go(func(ctx context.Context) error { watcher.Run(ctx, cfg.RulesPoll); return nil })

	// Until these succeed the service is alive but not ready: the
	// processors create AGGREGATES.
	startup := health.Starting()
	var alertKV, seenKV jetstream.KeyValue
	err = startup.Await(ctx, log, func(ctx context.Context) error {
		if err := bus.Ensure(ctx, js, cfg.Alerts(), cfg.Notifications(cfg.QueueMaxBytes), cfg.DeadLetter()); err != nil {
			return err
		}
		if _, err := js.Stream(ctx, bus.StreamAggregates); err != nil {
			return fmt.Errorf("stream %s: %w (the processors create it)", bus.StreamAggregates, err)
		}
		if alertKV, err = bus.EnsureBucket(ctx, js, cfg.AlertState()); err != nil {
			return err
		}
		seenKV, err = bus.EnsureBucket(ctx, js, cfg.LastSeen())
		return err
	})
	if err != nil {
		return g.Wait(nil) // signalled while starting: nothing to drain
	}

	alerts, seen, ok := mirror(ctx, g, alertKV, seenKV, log)
	if !ok {
		return g.Wait(nil)
	}
	states.Store(alerts)

	// After SIGTERM, work in hand may finish within the drain timeout.
	drain := service.NewDrain(ctx, cfg.DrainTimeout)
	defer drain.Stop()
	work := drain.Context()

	engine := &Engine{js: js, states: alerts, seen: seen, rules: watcher.Rules, metrics: metrics,
		log: log, now: time.Now, sweepAge: sweepAge}
	// Whatever a replica left committed but unpublished goes out now.
	if err := engine.Sweep(work, true); err != nil {
		log.Warn("sweep at start-up; retried every tick", "err", err)
	}
	// The consumer loops: each is restarted when it ends, and the replica
	// is not ready while one is not running.
	loops := NewLoops(log, metrics.Restarts)
	health.AddCheck("loops", loops.Check)
	reader := &aggregateReader{js: js, engine: engine, metrics: metrics, log: log, failover: cfg.Failover,
		loops: loops, state: loops.Add(loopAggregates)}
	dispatcher := NewDispatcher(js, watcher.Rules, metrics, log, cfg.Failover, loops, func(key string) (alert.State, bool) {
		rec, rev := alerts.Get(key)
		return rec.State, rev != 0
	})
	dispatcher.Reconcile(ctx, work)
	startup.Done()
	log.Info("notifier running", "rules", cfg.Rules, "rules_version", watcher.Status().Version)

	var tickers sync.WaitGroup
	tickers.Go(func() { tick(ctx, work, cfg.Tick, rulesChanged, dispatcher, engine, reader, log) })

	reader.Run(ctx, work)
	log.Info("draining", "timeout", cfg.DrainTimeout)
	tickers.Wait()
	dispatcher.Wait()
	// Hand aggregate evaluation to another replica now rather than after
	// the pin's TTL.
	if s, err := js.Stream(work, bus.StreamAggregates); err == nil {
		_ = s.UnpinConsumer(work, ConsumerAggregates, priorityGroup)
	}
	return g.Wait(drain.Err("what was in hand is redelivered"))
}

// watchRules reads the rules file once and returns its watcher (not yet
// running) and a channel told of every change; the replica is not ready
// while it has no valid rules.
func watchRules(cfg Config, log *slog.Logger, metrics *Metrics, health *service.Health) (*rules.Watcher, <-chan struct{}) {
	watcher := rules.NewWatcher(cfg.Rules, os.LookupEnv, log)
	rulesChanged := make(chan struct{}, 1)
	watcher.OnChange = func(s rules.Status) {
		metrics.rulesChanged(s)
		select {
		case rulesChanged <- struct{}{}:
		default:
		}
	}
	watcher.Check()
	health.AddCheck("rules", func(context.Context) error {
		if watcher.Rules() == nil {
			return fmt.Errorf("no valid rules yet: %s", watcher.Status().Error)
		}
		return nil
	})
	return watcher, rulesChanged
}

// mirror starts the local copies of the shared state as parts of g and
// waits until they are current: nothing is decided on them before. It
// reports false if ctx ended first.
func mirror(ctx context.Context, g *service.Group, alertKV, seenKV jetstream.KeyValue, log *slog.Logger) (
	*kvmirror.Mirror[alert.Record], *kvmirror.Mirror[LastSeen], bool) {
	alerts := kvmirror.New[alert.Record](alertKV, log)
	seen := kvmirror.New[LastSeen](seenKV, log)
	g.Go(func(ctx context.Context) error { alerts.Run(ctx); return nil })
	g.Go(func(ctx context.Context) error { seen.Run(ctx); return nil })
	for _, ready := range []<-chan struct{}{alerts.Ready(), seen.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, nil, false
		}
	}
	return alerts, seen, true
}

// tick runs what the clock drives until ctx ends: on every tick, and at
// once when the rules change, the delivery loops follow the rules in effect,
// the engine ticks (offline rules, reminders, the outbox sweep) and the
// queue gauges are refreshed. work bounds what is in hand.
func tick(ctx, work context.Context, every time.Duration, rulesChanged <-chan struct{},
	dispatcher *Dispatcher, engine *Engine, reader *aggregateReader, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rulesChanged:
		case <-t.C:
		}
		dispatcher.Reconcile(ctx, work)
		if err := engine.Tick(work, reader.caughtUp(work)); err != nil && ctx.Err() == nil {
			log.Warn("tick", "err", err)
		}
		dispatcher.Observe(work)
	}
}
