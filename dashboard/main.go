// Command dashboard serves the browser view of the pipeline: every device
// live (Server-Sent Events fed from NATS), a device's history from InfluxDB's
// window aggregates, alerts from the ALERTS stream, and pipeline health from
// the services' /metrics and the streams. It only reads: it writes to no
// stream, bucket or database. Assets are embedded (dashboard/web).
package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/dashboard/alerts"
	"github.com/edgeflow/edgeflow/dashboard/devices"
	"github.com/edgeflow/edgeflow/dashboard/history"
	"github.com/edgeflow/edgeflow/dashboard/live"
	"github.com/edgeflow/edgeflow/dashboard/pipeline"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/service"
)

func main() { service.Main("dashboard", LoadConfig, run) }

func run(ctx context.Context, cfg Config) error {
	log := service.NewLogger("dashboard")
	reg := service.NewRegistry()
	health := service.NewHealth()

	nc, js, err := bus.Connect(ctx, log, cfg.Config, "edgeflow-dashboard")
	if err != nil {
		return err
	}
	defer nc.Close()
	health.AddCheck("nats", bus.Ready(nc))

	d := &Dashboard{
		cfg:     cfg,
		log:     log,
		nc:      nc,
		js:      js,
		metrics: service.NewPipeline(reg, "dashboard"),
		devices: devices.NewRegistry(int64(cfg.DeviceMemory) << 20),
		hub:     live.NewHub(live.Options{Buffer: cfg.SSEBuffer}, live.NewMetrics(reg)),
		alerts:  alerts.NewBook(10000, cfg.AlertHistory),
		history: history.NewReader(history.NewClient(cfg.Influx.URL, cfg.Influx.Token, cfg.Influx.Timeout), cfg.Influx.Bucket, cfg.Influx.RawBucket, cfg.Windows),
		scraper: pipeline.NewScraper(cfg.Targets(), 3*time.Second),
	}
	d.influxUp = d.history.Ready
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeflow_dashboard_devices",
			Help: "Devices kept in memory."}, func() float64 { return float64(d.devices.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeflow_dashboard_device_bytes",
			Help: "Heap the devices kept are charged (EDGEFLOW_DASHBOARD_DEVICE_MEMORY_MIB bounds it)."},
			func() float64 { return float64(d.devices.Bytes()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "edgeflow_dashboard_devices_evicted_total",
			Help: "Devices forgotten, least recently heard first, to stay within EDGEFLOW_DASHBOARD_DEVICE_MEMORY_MIB."},
			func() float64 { return float64(d.devices.Evicted()) }),
	)

	if cfg.UplinkConfig.Enabled() {
		if d.uplink, err = newUplinkWatch(nc, cfg.UplinkConfig, log, reg); err != nil {
			return err
		}
	}

	sub, err := d.subscribeLive()
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()

	g, ctx := service.NewGroup(ctx)
	defer g.Wait(nil)
	g.Serve(log, cfg.HTTPAddr, d.Handler(service.Handler(health, reg)))
	var wg sync.WaitGroup
	wg.Go(func() { d.seed(ctx) })
	wg.Go(func() { d.tick(ctx) })
	wg.Go(func() { d.followAlerts(ctx) })
	wg.Go(func() { d.followDeadLetters(ctx) })
	wg.Go(func() { d.pollPipeline(ctx) })
	if d.uplink != nil {
		wg.Go(func() { d.uplink.run(ctx, cfg.ScrapeInterval) })
	}

	<-ctx.Done()
	// SIGTERM drain: every live stream ends with a "bye" at once, so the
	// server's graceful shutdown is not held up by connections that never
	// go idle; browsers reconnect (to another replica, or to this one when
	// it is back).
	d.hub.Close()
	wg.Wait()
	return g.Wait(nil)
}
