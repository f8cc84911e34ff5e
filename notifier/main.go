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
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/retry"
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

	nc, js, err := bus.Connect(ctx, log, cfg.Config, "edgeflow-notifier-"+cfg.ID)
	if err != nil {
		return err
	}
	defer nc.Close()
	health.AddCheck("nats", bus.Ready(nc))

	var states atomic.Pointer[kvmirror.Mirror[alert.Record]]
	var wg sync.WaitGroup
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopHTTP()
	wg.Go(func() {
		if err := service.Serve(httpCtx, log, cfg.HTTPAddr, handler(health, reg, watcher, &states)); err != nil {
			log.Error("http server", "err", err)
		}
	})
	defer wg.Wait()
	defer stopHTTP()

	// The rules file is watched from the start: a replica waiting for NATS
	// or for its first valid file picks up a fix.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	wg.Go(func() { watcher.Run(watchCtx, cfg.RulesPoll) })

	// Until these succeed the service is alive but not ready: the
	// processors create AGGREGATES.
	starting := errors.New("starting")
	var startErr atomic.Pointer[error]
	startErr.Store(&starting)
	health.AddCheck("startup", func(context.Context) error { return *startErr.Load() })
	var alertKV, seenKV jetstream.KeyValue
	err = retry.Do(ctx, retry.Backoff{Max: 2 * time.Second}, func(ctx context.Context) error {
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
	}, func(err error, _ time.Duration) {
		startErr.Store(&err)
		log.Warn("waiting for dependencies", "err", err)
	})
	if err != nil {
		return nil // signalled while starting: nothing to drain
	}

	// The local copies of the shared state, current before anything is
	// decided on them.
	mirrorCtx, stopMirrors := context.WithCancel(context.Background())
	defer stopMirrors()
	alerts := kvmirror.New[alert.Record](alertKV, log)
	seen := kvmirror.New[LastSeen](seenKV, log)
	wg.Go(func() { alerts.Run(mirrorCtx) })
	wg.Go(func() { seen.Run(mirrorCtx) })
	for _, ready := range []<-chan struct{}{alerts.Ready(), seen.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
	}
	states.Store(alerts)

	// After SIGTERM, work in hand may finish within the drain timeout.
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(cfg.DrainTimeout, cancelWork) })
	defer stopDrain()

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
	dispatcher := NewDispatcher(js, watcher.Rules, metrics, log, cfg.Failover, loops)
	dispatcher.Reconcile(ctx, work)
	startErr.Store(new(error))
	log.Info("notifier running", "rules", cfg.Rules, "rules_version", watcher.Status().Version)

	var tickers sync.WaitGroup
	tickers.Go(func() {
		t := time.NewTicker(cfg.Tick)
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
	})

	reader.Run(ctx, work)
	log.Info("draining", "timeout", cfg.DrainTimeout)
	tickers.Wait()
	dispatcher.Wait()
	// Hand aggregate evaluation to another replica now rather than after
	// the pin's TTL.
	if s, err := js.Stream(work, bus.StreamAggregates); err == nil {
		_ = s.UnpinConsumer(work, ConsumerAggregates, priorityGroup)
	}
	if work.Err() != nil {
		return fmt.Errorf("drain timed out after %s; what was in hand is redelivered", cfg.DrainTimeout)
	}
	return nil
}
