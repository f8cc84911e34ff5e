package main

import (
	"math"
	"time"
)

// latencyGrowth is the ratio between the bounds of two adjacent histogram
// buckets: quantiles are exact to within 1 %, in constant memory however
// long the run.
const latencyGrowth = 1.01

// latencyBuckets covers 1 µs to over an hour (1.01^2200 µs ≈ 3.3 h).
const latencyBuckets = 2200

var logGrowth = math.Log(latencyGrowth)

// latencyHistogram records publish→PUBACK latencies in log-spaced buckets.
// It is not safe for concurrent use; each publisher owns one under its lock.
type latencyHistogram struct {
	counts [latencyBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	i := int(math.Log(us)/logGrowth) + 1
	if i >= latencyBuckets {
		i = latencyBuckets - 1
	}
	return i
}

// bucketUpper is the upper bound of bucket i, reported for a quantile that
// falls in it.
func bucketUpper(i int) time.Duration {
	return time.Duration(math.Pow(latencyGrowth, float64(i)) * float64(time.Microsecond))
}

func (h *latencyHistogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += d
	if d > h.max {
		h.max = d
	}
}

func (h *latencyHistogram) merge(o *latencyHistogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the latency below which a fraction q of the samples
// fall, or 0 without samples.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if u := bucketUpper(i); u < h.max {
				return u
			}
			return h.max
		}
	}
	return h.max
}

func (h *latencyHistogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
