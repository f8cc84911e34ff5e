// Command processor computes event-time window aggregates from the TELEMETRY
// stream, writes them and the raw readings to InfluxDB, and publishes closed
// windows on AGGREGATES. Replicas are stateless: they share the stream's
// partitions through leases in NATS KV (ownership.go), and each partition's
// progress and open windows live in a checkpoint there too (checkpoint.go).
// On a hub (EDGEFLOW_HUB_SITES) it writes the sites' windows instead (hub.go).
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/service"
)

func main() { service.Main("processor", LoadConfig, run) }

func run(ctx context.Context, cfg Config) error {
	log := service.NewLogger("processor").With("replica", cfg.ID)
	reg := service.NewRegistry()
	health := service.NewHealth()
	metrics := NewMetrics(reg)

	nc, js, err := bus.Connect(ctx, log, cfg.Config, "edgeflow-processor-"+cfg.ID,
		jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	health.AddCheck("nats", bus.Ready(nc))

	influx := NewInflux(cfg.Influx)
	defer influx.Close()
	health.AddCheck("influxdb", influx.Ready)

	g, ctx := service.NewGroup(ctx)
	defer g.Wait(nil)
	g.Serve(log, cfg.HTTPAddr, service.Handler(health, reg))

	if cfg.IsHub() { // the hub has no telemetry of its own: no partitions
		return g.Wait(runHub(ctx, cfg, log, js, influx, reg, metrics, health))
	}

	// Until these succeed the service is alive but not ready: ingest creates
	// TELEMETRY, and InfluxDB may still be starting.
	var partitions int
	var leases, checkpoints jetstream.KeyValue
	startup := health.Starting()
	err = startup.Await(ctx, log, func(ctx context.Context) error {
		if err := influx.Ensure(ctx); err != nil {
			return err
		}
		if err := bus.Ensure(ctx, js, cfg.Aggregates(), cfg.DeadLetter()); err != nil {
			return err
		}
		n, err := bus.Partitions(ctx, js)
		if err != nil {
			return fmt.Errorf("%w (ingest creates it)", err)
		}
		if leases, err = bus.EnsureBucket(ctx, js, cfg.Leases(cfg.LeaseTTL)); err != nil {
			return err
		}
		if checkpoints, err = bus.EnsureBucket(ctx, js, cfg.Checkpoints()); err != nil {
			return err
		}
		partitions = n
		return nil
	})
	if err != nil {
		return g.Wait(nil) // signalled while starting: nothing to drain
	}
	startup.Done()

	start := func(ctx context.Context, p int, stop <-chan struct{}, held func() bool) error {
		w := &worker{p: p, cfg: cfg, js: js, ckpt: checkpoints, influx: influx, metrics: metrics,
			log: log, now: time.Now, held: held}
		return w.run(ctx, stop)
	}
	health.AddCheck("partitions", metrics.Stalls.Check)
	own := NewOwnership(leases, cfg.ID, partitions, cfg.LeaseTTL, cfg.DrainTimeout, log, reg, metrics.Stalls, start)
	log.Info("processor running", "partitions", partitions, "windows", cfg.Windows, "lateness", cfg.Lateness)
	own.Run(ctx) // returns after handing every partition back
	return g.Wait(nil)
}
