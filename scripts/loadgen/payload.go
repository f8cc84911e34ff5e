package main

import "strconv"

// namedMetrics are the first metrics of every message with their base value
// in tenths; metric i beyond them is named "m<i>" with base 100.0.
var namedMetrics = [...]struct {
	name   string
	tenths int64
}{
	{"temperature", 200},
	{"humidity", 500},
	{"pressure", 10130},
}

// MetricName is the field name of metric i (0-based).
func MetricName(i int) string {
	if i < len(namedMetrics) {
		return namedMetrics[i].name
	}
	return "m" + strconv.Itoa(i)
}

// valueTenths is metric i of a device's message seq, in tenths of a unit:
// within ±10.0 of the metric's base, a pure function of its arguments so a
// test can recompute every value, sum or min/max it reads downstream.
func valueTenths(metric, device int, seq uint64) int64 {
	base := int64(1000)
	if metric < len(namedMetrics) {
		base = namedMetrics[metric].tenths
	}
	h := (uint64(device)*31 + seq*17 + uint64(metric)*7) % 201
	return base + int64(h) - 100
}

// Value is metric i of device's message seq, exactly as the JSON payload
// carries it (the nearest float64 to a number with one decimal).
func Value(metric, device int, seq uint64) float64 {
	return float64(valueTenths(metric, device, seq)) / 10
}

// appendPayload appends the JSON object of one message:
// {"ts":<ms>,"seq":<seq>,"temperature":21.5,...}.
func appendPayload(b []byte, tsMillis int64, seq uint64, device, metrics int) []byte {
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, tsMillis, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	for m := 0; m < metrics; m++ {
		b = append(b, ',', '"')
		b = append(b, MetricName(m)...)
		b = append(b, '"', ':')
		t := valueTenths(m, device, seq) // always positive: every base is >= 20.0
		b = strconv.AppendInt(b, t/10, 10)
		b = append(b, '.', byte('0'+t%10))
	}
	return append(b, '}')
}
