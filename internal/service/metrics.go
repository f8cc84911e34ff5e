package service

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Pipeline holds the counters every service exports, so dashboards and
// alerts read the same names from each: edgeflow_<service>_<name>.
type Pipeline struct {
	In           prometheus.Counter
	Out          prometheus.Counter
	Dropped      *prometheus.CounterVec // by reason; only ever deliberate (duplicates)
	DeadLettered *prometheus.CounterVec // by reason
	Retries      *prometheus.CounterVec // by operation
	Backlog      prometheus.Gauge
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// which carry the RSS and GC figures the performance work reads, and
// edgeflow_build_info (version.go), so every service exports its build.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo())
	return reg
}

// NewPipeline registers the standard counters of service on reg.
func NewPipeline(reg prometheus.Registerer, service string) *Pipeline {
	ns := "edgeflow_" + service
	p := &Pipeline{
		In: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_messages_in_total",
			Help: "Messages received."}),
		Out: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "_messages_out_total",
			Help: "Messages delivered downstream and acknowledged."}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_messages_dropped_total",
			Help: "Messages deliberately not forwarded, by reason (e.g. duplicate)."}, []string{"reason"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_messages_deadlettered_total",
			Help: "Messages rejected to the dead-letter stream, by reason."}, []string{"reason"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "_retries_total",
			Help: "Retried operations, by operation."}, []string{"op"}),
		Backlog: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "_backlog",
			Help: "Messages accepted but not yet delivered (ingest) or not yet processed (processor)."}),
	}
	reg.MustRegister(p.In, p.Out, p.Dropped, p.DeadLettered, p.Retries, p.Backlog)
	return p
}
