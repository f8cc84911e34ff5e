package window

import (
	"math"
	"strings"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// metricStats are the running statistics of one metric in one open window.
// count == 0 marks a slot kept from an earlier window of the same device
// (see window.reset) that this window has not used: it is neither emitted
// nor checkpointed.
type metricStats struct {
	name  string
	count int64
	// The values add up to sum·2^sumExp. sumExp stays 0 (sum is the plain
	// float64 sum) until the sum would overflow; then it grows by one each
	// time it would, so sum stays finite, and since scaling by a power of
	// two is exact, the mean stays exact where it is representable.
	sum             float64
	sumExp          int
	min, max        float64
	first, last     float64
	firstTS, lastTS int64
}

// maxSumExp bounds sumExp: 2^63 values of at most math.MaxFloat64 add up to
// less than math.MaxFloat64·2^63.
const maxSumExp = 64

// window is one open window of one device and length. metrics is sorted by
// name, so lookups are a binary search and the checkpoint is canonical.
type window struct {
	start   int64
	metrics []metricStats
}

// find returns the index of name in w.metrics, or where to insert it.
func (w *window) find(name string) (int, bool) {
	ms := w.metrics
	lo, hi := 0, len(ms)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if ms[h].name < name {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(ms) && ms[lo].name == name
}

// observe folds one value at event time ts into the window. It allocates
// only for a metric name the window has never held.
func (w *window) observe(name string, v float64, ts int64) {
	i, ok := w.find(name)
	if !ok {
		w.metrics = append(w.metrics, metricStats{})
		copy(w.metrics[i+1:], w.metrics[i:])
		w.metrics[i] = metricStats{name: strings.Clone(name)}
	}
	m := &w.metrics[i]
	if m.count == 0 {
		// sum starts at v, not 0 + v, so a single -0 keeps its sign and
		// count == 1 means all five values are the same bits (checkpoint).
		*m = metricStats{name: m.name, count: 1, sum: v, min: v, max: v, first: v, last: v, firstTS: ts, lastTS: ts}
		return
	}
	m.count++
	if s := m.sum + v; m.sumExp == 0 && !math.IsInf(s, 0) {
		m.sum = s
	} else {
		m.addScaled(v)
	}
	if v < m.min {
		m.min = v
	}
	if v > m.max {
		m.max = v
	}
	if ts < m.firstTS {
		m.first, m.firstTS = v, ts
	}
	if ts >= m.lastTS {
		m.last, m.lastTS = v, ts
	}
}

// addScaled adds v to a sum that overflowed or would overflow, halving the
// sum (exactly: it is near the top of the float64 range) until it fits.
func (m *metricStats) addScaled(v float64) {
	for {
		if s := m.sum + math.Ldexp(v, -m.sumExp); !math.IsInf(s, 0) {
			m.sum = s
			return
		}
		m.sum /= 2
		m.sumExp++
	}
}

// total returns the sum and the mean of the values. A sum beyond the float64
// range is reported as ±math.MaxFloat64, so that an aggregate is always
// finite (JSON and line protocol have no infinity); the mean is the mean.
func (m *metricStats) total() (sum, mean float64) {
	if m.sumExp == 0 {
		return m.sum, m.sum / float64(m.count)
	}
	return saturate(math.Ldexp(m.sum, m.sumExp)), saturate(math.Ldexp(m.sum/float64(m.count), m.sumExp))
}

// saturate returns v, or the largest finite float64 of its sign for ±Inf.
func saturate(v float64) float64 {
	if math.IsInf(v, 0) {
		return math.Copysign(math.MaxFloat64, v)
	}
	return v
}

// used reports how many metrics the window holds values for.
func (w *window) used() int {
	n := 0
	for i := range w.metrics {
		if w.metrics[i].count > 0 {
			n++
		}
	}
	return n
}

// stats returns the window's result, one entry per metric it holds.
func (w *window) stats() map[string]reading.Stats {
	out := make(map[string]reading.Stats, w.used())
	for i := range w.metrics {
		m := &w.metrics[i]
		if m.count == 0 {
			continue
		}
		sum, mean := m.total()
		out[m.name] = reading.Stats{
			Count: m.count,
			Sum:   sum,
			Min:   m.min,
			Max:   m.max,
			Mean:  mean,
			First: m.first,
			Last:  m.last,
		}
	}
	return out
}

// reset empties a closed window for reuse by the next window of the same
// device and length. It keeps the names the window used, since the next
// window most likely sees the same metrics (Add then does not allocate), and
// drops the ones it did not, so that a device changing metric names does
// not grow the slice forever.
func (w *window) reset() {
	kept := w.metrics[:0]
	for _, m := range w.metrics {
		if m.count > 0 {
			kept = append(kept, metricStats{name: m.name})
		}
	}
	clear(w.metrics[len(kept):])
	w.metrics = kept
	w.start = 0
}
