package main

import (
	"math"
	"strconv"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Batch is one InfluxDB write in line protocol, built without a point
// object or map per reading: it is on the hot path (docs/performance.md,
// "Figures behind the code"). It remembers where each line ends, so a batch
// InfluxDB refuses can be split to find the offending line.
//
// No escaping is needed: measurement and tag keys are fixed, and every tag
// value and field key is a reading.ValidName ([A-Za-z0-9_-]).
type Batch struct {
	buf  []byte
	ends []int // ends[i] is the offset just past line i's newline
}

// AddReading appends a raw reading: measurement telemetry, tags site and
// device, one float field per metric, time = device time (ms) plus a
// sub-millisecond offset of the reading's own (RawOffset).
func (b *Batch) AddReading(r *reading.Reading) {
	b.buf = append(b.buf, MeasurementRaw...)
	b.buf = append(b.buf, ",device="...)
	b.buf = append(b.buf, r.Device...)
	b.buf = append(b.buf, ",site="...)
	b.buf = append(b.buf, r.Site...)
	sep := byte(' ')
	for name, v := range r.Metrics {
		b.buf = append(b.buf, sep)
		b.buf = append(b.buf, name...)
		b.buf = append(b.buf, '=')
		b.buf = strconv.AppendFloat(b.buf, v, 'g', -1, 64)
		sep = ','
	}
	b.endLine(r.TS*int64(time.Millisecond) + RawOffset(r))
}

// RawOffset is the nanoseconds a raw point adds to its device time. InfluxDB
// keys a point by measurement, tags and time, so two readings of one device
// in the same millisecond (a fast sensor, a burst after reconnecting) would
// otherwise be one point, the second overwriting the first: accepted data
// lost. The offset comes from the reading itself, so a redelivered reading
// rewrites its own point (idempotent) and the millisecond is still the
// device's: its sequence number modulo 10^6 when it sends one, else a hash
// of its values (independent of map order).
func RawOffset(r *reading.Reading) int64 {
	const span = uint64(time.Millisecond)
	if r.Seq != nil {
		return int64(*r.Seq % span)
	}
	var h uint64
	for name, v := range r.Metrics {
		h += fnv64a(name) ^ math.Float64bits(v)
	}
	return int64(h % span)
}

// fnv64a is FNV-1a of s (hash/fnv's, without its allocation).
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// AddAggregate appends one line per metric of a closed window: measurement
// telemetry_{window}, tags site, device, metric, time = window start (ms).
func (b *Batch) AddAggregate(a *reading.Aggregate) { b.addAggregate("", a) }

// AddHubAggregate appends a window a site sent the hub (hub.go): the lines of
// AddAggregate with one more tag, edge_site = the site's name at the hub
// (a reading.ValidName), so that the windows of two sites that name a device
// alike are two series, not one overwriting the other.
func (b *Batch) AddHubAggregate(edgeSite string, a *reading.Aggregate) { b.addAggregate(edgeSite, a) }

// addAggregate writes the tags in key order (device, edge_site, metric,
// site), as InfluxDB keys series; edgeSite "" leaves edge_site out.
func (b *Batch) addAggregate(edgeSite string, a *reading.Aggregate) {
	for metric, s := range a.Metrics {
		b.buf = append(b.buf, MeasurementWindowPrefix...)
		b.buf = append(b.buf, a.Window...)
		b.buf = append(b.buf, ",device="...)
		b.buf = append(b.buf, a.Device...)
		if edgeSite != "" {
			b.buf = append(b.buf, ","+TagEdgeSite+"="...)
			b.buf = append(b.buf, edgeSite...)
		}
		b.buf = append(b.buf, ",metric="...)
		b.buf = append(b.buf, metric...)
		b.buf = append(b.buf, ",site="...)
		b.buf = append(b.buf, a.Site...)
		b.buf = append(b.buf, " count="...)
		b.buf = strconv.AppendInt(b.buf, s.Count, 10)
		b.buf = append(b.buf, 'i')
		b.field(",sum=", s.Sum)
		b.field(",min=", s.Min)
		b.field(",max=", s.Max)
		b.field(",mean=", s.Mean)
		b.field(",first=", s.First)
		b.field(",last=", s.Last)
		b.endLine(a.Start * int64(time.Millisecond))
	}
}

func (b *Batch) field(prefix string, v float64) {
	b.buf = append(b.buf, prefix...)
	b.buf = strconv.AppendFloat(b.buf, v, 'g', -1, 64)
}

// endLine ends a line with its time in nanoseconds (the writes' precision).
func (b *Batch) endLine(ns int64) {
	b.buf = append(b.buf, ' ')
	b.buf = strconv.AppendInt(b.buf, ns, 10)
	b.buf = append(b.buf, '\n')
	b.ends = append(b.ends, len(b.buf))
}

// Len is the number of lines.
func (b *Batch) Len() int { return len(b.ends) }

// Lines returns lines [i, j) as one request body.
func (b *Batch) Lines(i, j int) string {
	if j <= i {
		return ""
	}
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return string(b.buf[start:b.ends[j-1]])
}

// Reset empties the batch, keeping its memory for the next flush.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.ends = b.ends[:0]
}
