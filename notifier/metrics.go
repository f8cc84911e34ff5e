package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/service"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// Metrics are the notifier's own figures, beside the standard pipeline
// counters (in: aggregates read; out: notifications delivered; backlog:
// aggregates not yet evaluated).
type Metrics struct {
	*service.Pipeline
	RulesLoaded  prometheus.Gauge
	RulesInvalid prometheus.Gauge
	Reloads      *prometheus.CounterVec // by result: ok, invalid
	Evaluations  *prometheus.CounterVec // by rule kind
	Transitions  *prometheus.CounterVec // by state entered (repeat for reminders)
	Resends      prometheus.Counter
	Conflicts    prometheus.Counter
	Alerts       *prometheus.GaugeVec   // by state: firing, pending
	Deliveries   *prometheus.CounterVec // by channel and result: ok, failed, rejected, superseded
	Retrying     *prometheus.GaugeVec   // by channel
	Queued       *prometheus.GaugeVec   // by channel
	Restarts     *prometheus.CounterVec // by loop: aggregates, deliver-{channel}
}

// NewMetrics registers the notifier's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "edgeflow_notifier_"
	m := &Metrics{
		Pipeline: service.NewPipeline(reg, "notifier"),
		RulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "rules_loaded",
			Help: "Rules in effect (the last valid version of the rules file)."}),
		RulesInvalid: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "rules_invalid",
			Help: "1 while the rules file on disk is invalid (or unreadable) and the last good rules are in effect."}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "rules_reloads_total",
			Help: "Versions of the rules file read, by result (ok, invalid)."}, []string{"result"}),
		Evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "evaluations_total",
			Help: "Rule evaluations, by rule type (threshold: per matching window; offline: per device and check)."}, []string{"kind"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "transitions_total",
			Help: "Alert changes this replica committed, by state entered (repeat: a reminder)."}, []string{"state"}),
		Resends: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "resends_total",
			Help: "Firing alerts this replica queued again for their alertmanager channels (every `resend` while they fire)."}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "state_conflicts_total",
			Help: "Alert state writes that lost a compare-and-set to another writer and were decided again."}),
		// One gauge with a state label, not one per state (Prometheus's naming
		// guide): sum() is every alert not resolved.
		Alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "alerts",
			Help: "Alerts of the rules in effect now, by state: firing, or pending (breaching, not yet for their `for`)."}, []string{"state"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "deliveries_total",
			Help: "Delivery attempts by this replica, by channel and result (ok; failed: retried; rejected: refused for good by the receiver (4xx), dead-lettered; superseded: an alertmanager notification the alert's state has moved past, not sent)."}, []string{"channel", "result"}),
		Retrying: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "deliveries_retrying",
			Help: "Notifications of the channel that failed at least once and are not delivered yet."}, []string{"channel"}),
		Queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "deliveries_queued",
			Help: "Notifications of the channel not delivered yet (waiting, in flight or retrying)."}, []string{"channel"}),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "loop_restarts_total",
			Help: "Restarts of a consumer loop that ended on its own (its consumer deleted, its pull ended by the server), by loop: aggregates, deliver-{channel}."}, []string{"loop"}),
	}
	// Both states exist from the start, at 0, so a query never finds one missing.
	m.Alerts.WithLabelValues("firing")
	m.Alerts.WithLabelValues("pending")
	reg.MustRegister(m.RulesLoaded, m.RulesInvalid, m.Reloads, m.Evaluations, m.Transitions, m.Resends, m.Conflicts,
		m.Alerts, m.Deliveries, m.Retrying, m.Queued, m.Restarts)
	return m
}

// rulesChanged follows the rules watcher.
func (m *Metrics) rulesChanged(s rules.Status) {
	m.RulesLoaded.Set(float64(s.Rules))
	if s.Error != "" {
		m.RulesInvalid.Set(1)
		m.Reloads.WithLabelValues("invalid").Inc()
		return
	}
	m.RulesInvalid.Set(0)
	m.Reloads.WithLabelValues("ok").Inc()
}
