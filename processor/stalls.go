package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stalls records the partitions this replica owns but cannot advance: a
// worker retrying an operation (an InfluxDB write, a publish, a checkpoint)
// or ended by an error and waiting to be started again. A partition is
// stalled from its first failure until its worker next flushes, or until the
// replica stops owning it. Stalls is the replica's "partitions" readiness
// check and the gauge edgeflow_processor_partitions_stalled{op}; its callers
// log each stall's start and end. A replica whose data stopped flowing never
// reports ready.
type Stalls struct {
	mu    sync.Mutex
	by    map[int]stall
	gauge *prometheus.GaugeVec
}

// stall is why one partition cannot advance.
type stall struct {
	op    string // what failed: a retries_total op, or "worker" for a worker that ended
	err   error
	since time.Time
}

// NewStalls registers the gauge on reg.
func NewStalls(reg prometheus.Registerer) *Stalls {
	s := &Stalls{by: map[int]stall{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeflow_processor_partitions_stalled",
			Help: "Owned partitions that cannot advance, by the operation that fails (readiness fails while any is)."},
			[]string{"op"})}
	reg.MustRegister(s.gauge)
	return s
}

// Fail records that partition p cannot advance because op failed with err.
// It reports whether this starts the partition's stall (or changes what
// fails); a further failure of the same op only updates the error.
func (s *Stalls) Fail(p int, op string, err error) (started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, stalled := s.by[p]
	if stalled && old.op == op {
		old.err = err
		s.by[p] = old
		return false
	}
	if stalled {
		s.gauge.WithLabelValues(old.op).Dec()
	}
	s.by[p] = stall{op: op, err: err, since: time.Now()}
	s.gauge.WithLabelValues(op).Inc()
	return true
}

// Clear records that partition p advanced, or is no longer owned here. It
// returns how long the partition was stalled, zero if it was not.
func (s *Stalls) Clear(p int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, stalled := s.by[p]
	if !stalled {
		return 0
	}
	delete(s.by, p)
	s.gauge.WithLabelValues(old.op).Dec()
	return max(time.Since(old.since), time.Nanosecond)
}

// Stalled reports whether partition p is stalled.
func (s *Stalls) Stalled(p int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.by[p]
	return ok
}

// Check is the readiness check: it fails, naming every stalled partition
// with what fails and since when, while any partition is stalled.
func (s *Stalls) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.by) == 0 {
		return nil
	}
	var b strings.Builder
	for i, p := range slices.Sorted(maps.Keys(s.by)) {
		st := s.by[p]
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "partition %d: %s failing for %s: %v", p, st.op,
			time.Since(st.since).Round(time.Second), st.err)
	}
	return fmt.Errorf("%s", b.String())
}
