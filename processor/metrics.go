package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/service"
)

// Metrics are the processor's counters beyond the standard pipeline ones.
type Metrics struct {
	*service.Pipeline
	Late         prometheus.Counter
	OpenWindows  prometheus.Gauge
	Devices      prometheus.Gauge
	FlushLatency prometheus.Histogram
	CloseDelay   prometheus.Histogram
	Written      prometheus.Counter
	Stalls       *Stalls[int]
}

// NewMetrics registers the processor's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pipeline: service.NewPipeline(reg, "processor"),
		Late: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeflow_processor_late_total",
			Help: "Readings that arrived after their window closed (written raw, dead-lettered, not aggregated)."}),
		OpenWindows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_processor_open_windows",
			Help: "Windows open in the partitions this replica owns."}),
		Devices: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_processor_devices",
			Help: "Devices in the window state of the partitions this replica owns, as of their last checkpoint (memory grows with them)."}),
		FlushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeflow_processor_window_latency_seconds",
			Help:    "From a window's end to its aggregate written in InfluxDB.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		// The window latency above includes the lateness by definition (a
		// window may not close before a reading LATENESS past its end): this
		// is the part the pipeline adds, what a window waits beyond that.
		CloseDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "edgeflow_processor_window_close_delay_seconds",
			Help:    "From a window's end plus the lateness (the earliest it may close) to its aggregate written in InfluxDB.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		Written: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeflow_processor_points_written_total",
			Help: "Points written to InfluxDB (raw and window)."}),
		Stalls: NewStalls(reg),
	}
	reg.MustRegister(m.Late, m.OpenWindows, m.Devices, m.FlushLatency, m.CloseDelay, m.Written)
	return m
}
