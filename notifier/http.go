package main

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/service"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/kvmirror"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// AlertsResponse is the body of GET /alerts.
type AlertsResponse struct {
	// Alerts are the alerts firing or pending now, for the rules in effect:
	// critical first, then by rule, site and device.
	Alerts       []reading.Alert `json:"alerts"`
	RulesVersion string          `json:"rules_version"`
}

// handler serves the standard /healthz and /metrics, /readyz with the rules
// file's status, and /alerts.
func handler(health *service.Health, reg *prometheus.Registry, watcher *rules.Watcher,
	states *atomic.Pointer[kvmirror.Mirror[alert.Record]]) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", service.Handler(health, reg))
	// Like service.Handler's /readyz, plus the rules file: a version that is
	// invalid is reported here (and in the log and metrics) while the
	// notifier stays ready on the last good rules, because replacing the
	// replica would not fix the file. Before any valid version it is not
	// ready (the "rules" check).
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		failed := health.Ready(ctx)
		status := "ready"
		w.Header().Set("Content-Type", "application/json")
		if len(failed) > 0 {
			status = "not ready"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "failed": failed, "rules": watcher.Status()})
	})
	mux.HandleFunc("GET /alerts", func(w http.ResponseWriter, r *http.Request) {
		m, set := states.Load(), watcher.Rules()
		if m == nil || set == nil {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(activeAlerts(m, set))
	})
	return mux
}

var severityRank = map[string]int{"critical": 0, "warning": 1, "info": 2}

func activeAlerts(m *kvmirror.Mirror[alert.Record], set *rules.Set) AlertsResponse {
	out := AlertsResponse{Alerts: []reading.Alert{}, RulesVersion: set.Version}
	m.Each(func(_ string, rec alert.Record, _ uint64) {
		r := set.Rule(rec.Rule)
		if r == nil || !rec.Active() {
			return
		}
		out.Alerts = append(out.Alerts, alert.Event(rec.State, r, alert.Change{Phase: rec.Phase, Seq: rec.Seq}))
	})
	slices.SortFunc(out.Alerts, func(a, b reading.Alert) int {
		return cmp.Or(cmp.Compare(severityRank[a.Severity], severityRank[b.Severity]),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Site, b.Site), cmp.Compare(a.Device, b.Device))
	})
	return out
}
