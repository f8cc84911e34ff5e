package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/bus"
)

// The uplink watch (EDGEFLOW_SITE_NAME set): the site's backlog towards the
// hub, measured by bus.Uplink every scrape interval, exported as metrics and
// shown in the pipeline view. It never fails readiness: the site runs
// unchanged while the link is down, and a dashboard that is not ready could
// not show why (docs/operations.md#hub).

// Uplink states, as the pipeline view and the log name them.
const (
	uplinkChecking     = "checking"      // not checked yet
	uplinkUp           = "up"            // the hub answered for every exported stream
	uplinkUnreachable  = "unreachable"   // bus.ErrHubUnreachable: the link is down or refused
	uplinkMisconfigure = "misconfigured" // the hub answers but does not source an exported stream
	uplinkFailing      = "failing"       // anything else, such as a site stream not created yet
)

// uplinkCheckTimeout bounds one check; an unreachable hub answers at once
// (no responders), a hung one must not hold up the next check for long.
const uplinkCheckTimeout = 5 * time.Second

// UplinkHealth is the "Uplink to hub" part of the pipeline view.
type UplinkHealth struct {
	Site      string `json:"site"`
	HubDomain string `json:"hub_domain"`
	State     string `json:"state"`
	// Reachable is whether the hub answered at the last check that could
	// tell (a site-side failure leaves it as it was).
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Since     int64  `json:"since"`   // Unix ms: when State began
	Checked   int64  `json:"checked"` // Unix ms: the last check, 0 before the first
	// Streams are the exported streams, in EDGEFLOW_UPLINK_STREAMS order.
	Streams []UplinkStream `json:"streams"`
}

// UplinkStream is one exported stream's progress towards the hub.
type UplinkStream struct {
	Name    string `json:"name"`
	SiteSeq uint64 `json:"site_seq"`
	HubSeq  uint64 `json:"hub_seq"`
	Backlog uint64 `json:"backlog"`
	// Problem is why the stream was not measured or cannot reach the hub.
	Problem string `json:"problem,omitempty"`
}

// uplinkMetrics are the watch's Prometheus metrics.
type uplinkMetrics struct {
	reachable        prometheus.Gauge
	backlog, siteSeq *prometheus.GaugeVec
	hubSeq           *prometheus.GaugeVec
	failures         *prometheus.CounterVec
}

// Failure reasons of edgeflow_dashboard_uplink_check_failures_total.
const (
	reasonUnreachable = "unreachable"
	reasonNotSourced  = "not_sourced"
	reasonError       = "error"
)

func newUplinkMetrics(reg prometheus.Registerer, streams []string) uplinkMetrics {
	m := uplinkMetrics{
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_dashboard_uplink_hub_reachable",
			Help: "1 when the hub's JetStream answered the last uplink check that asked it (over the leaf node link), 0 when it could not be asked."}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeflow_dashboard_uplink_backlog",
			Help: "Messages of an exported stream not known to be at the hub (site sequence - hub sequence); grows while the link is down."}, []string{"stream"}),
		siteSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeflow_dashboard_uplink_site_sequence",
			Help: "Last sequence of an exported stream at the site."}, []string{"stream"}),
		hubSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeflow_dashboard_uplink_hub_sequence",
			Help: "Site sequence of the newest message of an exported stream the hub holds, as last seen."}, []string{"stream"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeflow_dashboard_uplink_check_failures_total",
			Help: "Uplink checks that failed, by reason: unreachable (link down or refused), not_sourced (the hub does not source an exported stream), error."}, []string{"reason"}),
	}
	for _, s := range streams {
		m.backlog.WithLabelValues(s)
		m.siteSeq.WithLabelValues(s)
		m.hubSeq.WithLabelValues(s)
	}
	for _, r := range []string{reasonUnreachable, reasonNotSourced, reasonError} {
		m.failures.WithLabelValues(r)
	}
	reg.MustRegister(m.reachable, m.backlog, m.siteSeq, m.hubSeq, m.failures)
	return m
}

// uplinkWatch checks the uplink and keeps what the last check found.
type uplinkWatch struct {
	u       *bus.Uplink
	log     *slog.Logger
	metrics uplinkMetrics

	mu    sync.Mutex
	state UplinkHealth
}

func newUplinkWatch(nc *nats.Conn, cfg bus.UplinkConfig, log *slog.Logger, reg prometheus.Registerer) (*uplinkWatch, error) {
	u, err := bus.NewUplink(nc, cfg)
	if err != nil {
		return nil, err
	}
	w := &uplinkWatch{u: u, log: log.With("site", cfg.Site, "hub_domain", cfg.HubDomain),
		metrics: newUplinkMetrics(reg, cfg.Streams),
		state: UplinkHealth{Site: cfg.Site, HubDomain: cfg.HubDomain, State: uplinkChecking,
			Since: time.Now().UnixMilli(), Streams: make([]UplinkStream, len(cfg.Streams))}}
	for i, s := range cfg.Streams {
		w.state.Streams[i] = UplinkStream{Name: s, Problem: "not checked yet"}
	}
	return w, nil
}

// run checks every interval until ctx ends.
func (w *uplinkWatch) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one Uplink.Check and records it: metrics, state, and a log
// line when the state changes (not on every check).
func (w *uplinkWatch) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, uplinkCheckTimeout)
	statuses, err := w.u.Check(cctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not a failure of the link
	}
	now := time.Now()

	notSourced := notSourcedStreams(err)
	state, reachable := uplinkUp, true
	switch {
	case err == nil:
	case errors.Is(err, bus.ErrHubUnreachable):
		state, reachable = uplinkUnreachable, false
		w.metrics.failures.WithLabelValues(reasonUnreachable).Inc()
	case len(notSourced) > 0:
		state = uplinkMisconfigure
		w.metrics.failures.WithLabelValues(reasonNotSourced).Inc()
	default:
		state = uplinkFailing
		w.metrics.failures.WithLabelValues(reasonError).Inc()
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.state
	if state != uplinkFailing {
		w.state.Reachable = reachable
	}
	w.metrics.reachable.Set(boolGauge(w.state.Reachable))
	w.state.State, w.state.Checked, w.state.Error = state, now.UnixMilli(), ""
	if err != nil {
		w.state.Error = err.Error()
	}
	if state != prev.State {
		w.state.Since = now.UnixMilli()
	}
	measured := map[string]bus.UplinkStatus{}
	for _, st := range statuses {
		measured[st.Stream] = st
	}
	for i := range w.state.Streams {
		s := &w.state.Streams[i]
		st, ok := measured[s.Name]
		switch {
		case !ok:
			s.Problem = "not measured: see the error"
			continue
		case notSourced[s.Name]:
			s.Problem = "the hub does not source it"
		default:
			s.Problem = ""
		}
		s.SiteSeq, s.HubSeq, s.Backlog = st.SiteSeq, st.HubSeq, st.Backlog
		w.metrics.siteSeq.WithLabelValues(s.Name).Set(float64(st.SiteSeq))
		w.metrics.hubSeq.WithLabelValues(s.Name).Set(float64(st.HubSeq))
		w.metrics.backlog.WithLabelValues(s.Name).Set(float64(st.Backlog))
	}
	if state != prev.State {
		w.logChange(prev.State, err)
	}
}

// logChange logs the new state once, with the error that caused it.
func (w *uplinkWatch) logChange(prev string, err error) {
	backlog := make([]any, 0, 2*len(w.state.Streams))
	for _, s := range w.state.Streams {
		backlog = append(backlog, s.Name, s.Backlog)
	}
	args := []any{"state", w.state.State, "was", prev, slog.Group("backlog", backlog...)}
	if err != nil {
		args = append(args, "err", err)
	}
	switch w.state.State {
	case uplinkUp:
		w.log.Info("uplink to the hub is up", args...)
	case uplinkUnreachable:
		w.log.Warn("uplink to the hub is down: the site runs on, the hub catches up when it returns", args...)
	case uplinkMisconfigure:
		w.log.Error("uplink cannot work as configured: the hub does not source a stream the site exports", args...)
	default:
		w.log.Warn("uplink check failing", args...)
	}
}

// snapshot is the state for the pipeline view.
func (w *uplinkWatch) snapshot() UplinkHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.state
	h.Streams = append([]UplinkStream(nil), w.state.Streams...)
	return h
}

// notSourcedStreams are the streams err reports the hub does not source
// (bus.NotSourcedError, anywhere in errors.Join's tree).
func notSourcedStreams(err error) map[string]bool {
	streams := map[string]bool{}
	var walk func(error)
	walk = func(err error) {
		if ns, ok := err.(*bus.NotSourcedError); ok {
			streams[ns.Stream] = true
			return
		}
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return streams
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
