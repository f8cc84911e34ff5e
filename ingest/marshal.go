package main

import (
	"math"
	"slices"
	"strconv"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// marshalReading encodes r exactly as reading.Marshal (encoding/json) does,
// byte for byte (marshal_test.go holds it to that), in one allocation. It is
// ingest's hot path: encoding/json's reflection and sorted map encoder cost
// ~10 allocations and most of a microsecond per reading. Names that are not
// valid names (which decode never produces) go to encoding/json, which
// escapes them.
func marshalReading(r *reading.Reading) ([]byte, error) {
	if !reading.ValidName(r.Site) || !reading.ValidName(r.Device) {
		return r.Marshal()
	}
	var stack [16]string
	names := stack[:0]
	size := 64 + len(r.Site) + len(r.Device)
	for name := range r.Metrics {
		if !reading.ValidName(name) {
			return r.Marshal()
		}
		names = append(names, name)
		size += len(name) + 28
	}
	slices.Sort(names)

	b := make([]byte, 0, size)
	b = append(b, `{"site":"`...)
	b = append(b, r.Site...)
	b = append(b, `","device":"`...)
	b = append(b, r.Device...)
	b = append(b, `","ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	if r.Seq != nil {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, *r.Seq, 10)
	}
	b = append(b, `,"metrics":`...)
	if r.Metrics == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, `":`...)
			var ok bool
			if b, ok = appendJSONFloat(b, r.Metrics[name]); !ok {
				return r.Marshal() // NaN or Inf: encoding/json's error
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"rx":`...)
	b = strconv.AppendInt(b, r.Received, 10)
	if r.DeviceTime {
		b = append(b, `,"dt":true`...)
	}
	b = append(b, '}')
	return b, nil
}

// appendJSONFloat appends f as encoding/json writes a float64: the shortest
// representation, in exponent form below 1e-6 and from 1e21, with a
// one-digit negative exponent written without its leading zero.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}
