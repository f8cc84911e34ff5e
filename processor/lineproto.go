package main

import (
	"strconv"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Batch is one InfluxDB write in line protocol, built without a point
// object or map per reading: on the hot path that allocation was the largest
// share of the processor's memory. It remembers where each line ends, so a
// batch InfluxDB refuses can be split to find the offending line.
//
// No escaping is needed: measurement and tag keys are fixed, and every tag
// value and field key is a reading.ValidName ([A-Za-z0-9_-]).
type Batch struct {
	buf  []byte
	ends []int // ends[i] is the offset just past line i's newline
}

// AddReading appends a raw reading: measurement telemetry, tags site and
// device, one float field per metric, time = device time (ms).
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
	b.endLine(r.TS)
}

// AddAggregate appends one line per metric of a closed window: measurement
// telemetry_{window}, tags site, device, metric, time = window start (ms).
func (b *Batch) AddAggregate(a *reading.Aggregate) {
	for metric, s := range a.Metrics {
		b.buf = append(b.buf, MeasurementWindowPrefix...)
		b.buf = append(b.buf, a.Window...)
		b.buf = append(b.buf, ",device="...)
		b.buf = append(b.buf, a.Device...)
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
		b.endLine(a.Start)
	}
}

func (b *Batch) field(prefix string, v float64) {
	b.buf = append(b.buf, prefix...)
	b.buf = strconv.AppendFloat(b.buf, v, 'g', -1, 64)
}

func (b *Batch) endLine(ms int64) {
	b.buf = append(b.buf, ' ')
	b.buf = strconv.AppendInt(b.buf, ms, 10)
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
