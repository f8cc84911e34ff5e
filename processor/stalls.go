package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stalls records what this replica owns but cannot advance: a partition
// whose worker retries an operation (an InfluxDB write, a publish, a
// checkpoint) or ended by an error and waits to be started again; at a hub,
// a site whose windows cannot be fetched, written or acknowledged. One is
// stalled from its first failure until it next advances, or until the
// replica stops owning it. Stalls is a readiness check ("partitions",
// "hub"); its callers log each stall's start and end. A replica whose data
// stopped flowing never reports ready.
type Stalls[K cmp.Ordered] struct {
	mu    sync.Mutex
	by    map[K]stall
	name  func(K) string       // "partition 3", "site north"
	gauge *prometheus.GaugeVec // nil: none
}

// stall is why one partition or site cannot advance.
type stall struct {
	op    string // what failed: a retries_total op, or "worker" for a worker that ended
	err   error
	since time.Time
}

// NewStalls is the partitions' check, with the gauge
// edgeflow_processor_partitions_stalled{op} registered on reg.
func NewStalls(reg prometheus.Registerer) *Stalls[int] {
	s := &Stalls[int]{by: map[int]stall{}, name: func(p int) string { return "partition " + strconv.Itoa(p) },
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgeflow_processor_partitions_stalled",
			Help: "Owned partitions that cannot advance, by the operation that fails (readiness fails while any is)."},
			[]string{"op"})}
	reg.MustRegister(s.gauge)
	return s
}

// newSiteStalls is the hub's check, by site.
func newSiteStalls() *Stalls[string] {
	return &Stalls[string]{by: map[string]stall{}, name: func(site string) string { return "site " + site }}
}

// Fail records that k cannot advance because op failed with err. It
// reports whether this starts k's stall (or changes what fails); a further
// failure of the same op only updates the error.
func (s *Stalls[K]) Fail(k K, op string, err error) (started bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, stalled := s.by[k]
	if stalled && old.op == op {
		old.err = err
		s.by[k] = old
		return false
	}
	if stalled {
		s.count(old.op, -1)
	}
	s.by[k] = stall{op: op, err: err, since: time.Now()}
	s.count(op, 1)
	return true
}

// Clear records that k advanced, or is no longer owned here. It returns how
// long k was stalled, zero if it was not.
func (s *Stalls[K]) Clear(k K) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, stalled := s.by[k]
	if !stalled {
		return 0
	}
	delete(s.by, k)
	s.count(old.op, -1)
	return max(time.Since(old.since), time.Nanosecond)
}

func (s *Stalls[K]) count(op string, d float64) {
	if s.gauge != nil {
		s.gauge.WithLabelValues(op).Add(d)
	}
}

// Stalled reports whether k is stalled.
func (s *Stalls[K]) Stalled(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.by[k]
	return ok
}

// Check is the readiness check: it fails, naming everything stalled with
// what fails and since when, while anything is stalled.
func (s *Stalls[K]) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.by) == 0 {
		return nil
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(s.by)) {
		st := s.by[k]
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s failing for %s: %v", s.name(k), st.op,
			time.Since(st.since).Round(time.Second), st.err)
	}
	return errors.New(b.String())
}
