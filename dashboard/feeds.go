package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/dashboard/alerts"
	"github.com/edgeflow/edgeflow/dashboard/devices"
	"github.com/edgeflow/edgeflow/dashboard/history"
	"github.com/edgeflow/edgeflow/dashboard/live"
	"github.com/edgeflow/edgeflow/dashboard/pipeline"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/retry"
	"github.com/edgeflow/edgeflow/internal/service"
)

// Dashboard is the running service: what it knows, and the live hub.
type Dashboard struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	metrics  *service.Pipeline
	devices  *devices.Registry
	hub      *live.Hub
	alerts   *alerts.Book
	history  *history.Reader
	scraper  *pipeline.Scraper
	influxUp func(context.Context) error
	uplink   *uplinkWatch // nil without EDGEFLOW_SITE_NAME

	mu          sync.RWMutex
	deadLetters []pipeline.DeadLetter // oldest first, at most cfg.DeadLetters
	health      []byte                // the latest Health, JSON
}

// Live feed pending limits: a burst the callback has not yet taken is
// dropped by the client (and counted) beyond these, never queued without
// bound. The callback only updates a map, so it keeps up with several
// thousand readings a second.
const (
	livePendingMsgs  = 100_000
	livePendingBytes = 64 << 20
)

// subscribeLive follows the live feed (bus.LiveSubjects): the newest
// reading of every device at each processor flush, with a plain (core
// NATS) subscription. The dashboard is a view, at-most-once is right for
// it, and it leaves no consumer behind.
func (d *Dashboard) subscribeLive() (*nats.Subscription, error) {
	sub, err := d.nc.Subscribe(bus.LiveSubjects, func(m *nats.Msg) {
		now := time.Now()
		reading.EachInBatch(m.Data, func(data []byte) bool {
			d.metrics.In.Inc()
			r, err := reading.Decode(data)
			if err != nil {
				d.metrics.Dropped.WithLabelValues("invalid").Inc()
				return true
			}
			d.devices.Update(&r, now)
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(livePendingMsgs, livePendingBytes); err != nil {
		return nil, err
	}
	return sub, nil
}

// seed loads the last known value of every device from InfluxDB once, so
// that a restarted dashboard shows every device (and which are offline)
// before they next report.
func (d *Dashboard) seed(ctx context.Context) {
	n := 0
	err := retry.Do(ctx, retry.Backoff{Max: 10 * time.Second}, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n = 0
		return d.history.Latest(qctx, func(site, device, metric string, start, end time.Time, v float64) {
			d.devices.Seed(site, device, metric, devices.Point{T: start.UnixMilli(), V: v}, end.UnixMilli())
			n++
		})
	}, func(err error, wait time.Duration) {
		d.log.Warn("loading last values from influxdb", "err", err, "retry_in", wait)
	})
	if err == nil {
		d.log.Info("loaded last values from influxdb", "series", n, "devices", d.devices.Len())
	}
}

// deviceBatch is the frame of one live tick on the devices topic.
type deviceBatch struct {
	Now     int64            `json:"now"`
	Updates []devices.Update `json:"u"`
}

// tick sends, once per live interval, one batch with the latest values of
// every device that changed, and each device's own update to the browsers
// on its page: at most one update per device per interval, however fast
// devices publish.
func (d *Dashboard) tick(ctx context.Context) {
	t := time.NewTicker(d.cfg.LiveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.publishChanges(now)
		}
	}
}

func (d *Dashboard) publishChanges(now time.Time) {
	ups := d.devices.TakeChanged()
	if len(ups) == 0 {
		return
	}
	// Out counts device updates sent live: readings in, coalesced updates out.
	d.metrics.Out.Add(float64(len(ups)))
	if d.hub.Wanted(live.TopicDevices) {
		if data, err := json.Marshal(deviceBatch{Now: now.UnixMilli(), Updates: ups}); err == nil {
			d.hub.Publish(live.TopicDevices, live.Frame("devices", data))
		}
	}
	for _, u := range ups {
		topic := live.DeviceTopic(u.Site, u.Device)
		if !d.hub.Wanted(topic) {
			continue
		}
		if data, err := json.Marshal(deviceBatch{Now: now.UnixMilli(), Updates: []devices.Update{u}}); err == nil {
			d.hub.Publish(topic, live.Frame("devices", data))
		}
	}
}

// followAlerts keeps the alert book: first the last state change of every
// alert (the current state, however old), then the last changes in order
// for the history, then every change live.
func (d *Dashboard) followAlerts(ctx context.Context) {
	// Every change of the current state goes to the browsers, those read
	// at start-up included: a change published while the dashboard waited
	// for the stream is as new to them as a live one.
	apply := func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		a, err := alerts.Parse(m.Data(), md.Sequence.Stream)
		if err != nil {
			d.metrics.Dropped.WithLabelValues("invalid_alert").Inc()
			d.log.Debug("invalid alert", "subject", m.Subject(), "err", err)
			return
		}
		if d.alerts.Apply(a) {
			d.publishAlert(a)
		}
	}
	// The one-shot read of current states is retried inside follow's wait
	// for the stream, which the notifier creates.
	seeded := false
	follow(ctx, d.log, d.js, bus.StreamAlerts, func(info *jetstream.StreamInfo) jetstream.OrderedConsumerConfig {
		if !seeded {
			err := readOnce(ctx, d.js, bus.StreamAlerts,
				jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy},
				apply)
			if err != nil {
				d.log.Warn("reading current alerts", "err", err)
			}
			seeded = true
		}
		return tailStart(info, d.cfg.AlertHistory)
	}, apply)
}

func (d *Dashboard) publishAlert(a alerts.Alert) {
	if !d.hub.Wanted(live.TopicAlerts) {
		return
	}
	if data, err := json.Marshal(a); err == nil {
		d.hub.Publish(live.TopicAlerts, live.Frame("alert", data))
	}
}

// followDeadLetters keeps the latest dead-lettered messages.
func (d *Dashboard) followDeadLetters(ctx context.Context) {
	follow(ctx, d.log, d.js, bus.StreamDeadLetter, func(info *jetstream.StreamInfo) jetstream.OrderedConsumerConfig {
		return tailStart(info, d.cfg.DeadLetters)
	}, func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		dl := pipeline.NewDeadLetter(m.Subject(), md.Sequence.Stream, m.Headers(), m.Data(), md.Timestamp)
		d.mu.Lock()
		d.deadLetters = append(d.deadLetters, dl)
		if over := len(d.deadLetters) - d.cfg.DeadLetters; over > 0 {
			d.deadLetters = slices.Delete(d.deadLetters, 0, over)
		}
		d.mu.Unlock()
	})
}

// Health is the pipeline view.
type Health struct {
	At          int64                 `json:"at"`
	Services    []pipeline.Service    `json:"services"`
	Streams     []pipeline.Stream     `json:"streams"`
	DeadCount   uint64                `json:"deadletter_count"`
	DeadLetters []pipeline.DeadLetter `json:"deadletters"` // newest first
	InfluxDB    string                `json:"influxdb"`    // "ok" or the error
	Devices     int                   `json:"devices"`
	Clients     int                   `json:"clients"`
	Build       service.Build         `json:"build"` // the dashboard's own
	// Uplink is the site's link to the hub; absent without EDGEFLOW_SITE_NAME.
	Uplink *UplinkHealth `json:"uplink,omitempty"`
}

// pollPipeline refreshes the pipeline view every scrape interval and sends
// it to the browsers on the pipeline page.
func (d *Dashboard) pollPipeline(ctx context.Context) {
	t := time.NewTicker(d.cfg.ScrapeInterval)
	defer t.Stop()
	for {
		d.refreshHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dashboard) refreshHealth(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ScrapeInterval+5*time.Second)
	defer cancel()
	h := Health{At: time.Now().UnixMilli(), Services: d.scraper.Scrape(ctx), Streams: pipeline.ReadStreams(ctx, d.js),
		InfluxDB: "ok", Devices: d.devices.Len(), Clients: d.hub.Clients(), Build: service.Version()}
	if err := d.influxUp(ctx); err != nil {
		h.InfluxDB = err.Error()
	}
	if d.uplink != nil {
		u := d.uplink.snapshot()
		h.Uplink = &u
	}
	for _, s := range h.Streams {
		if s.Name == bus.StreamDeadLetter {
			h.DeadCount = s.Msgs
		}
	}
	d.mu.RLock()
	h.DeadLetters = make([]pipeline.DeadLetter, len(d.deadLetters))
	for i, dl := range d.deadLetters {
		h.DeadLetters[len(d.deadLetters)-1-i] = dl
	}
	d.mu.RUnlock()
	data, err := json.Marshal(h)
	if err != nil {
		d.log.Error("encode pipeline health", "err", err)
		return
	}
	d.mu.Lock()
	d.health = data
	d.mu.Unlock()
	d.hub.Publish(live.TopicPipeline, live.Frame("pipeline", data))
}

func (d *Dashboard) healthJSON() []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.health
}
