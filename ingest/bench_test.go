package main

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkBridgePrepare is ingest's per-message work before the publish, in
// a round of 1,000 messages from 100 devices: decode and validate the load
// generator's payload, encode the reading and add it to its partition's
// batch.
func BenchmarkBridgePrepare(b *testing.B) {
	b.ReportAllocs()
	now := time.UnixMilli(1732560000123)
	bridge := newTestBridge(now, 8)
	const size = 1000
	msgs := make([]*message, size)
	for i := range msgs {
		msgs[i] = &message{topic: fmt.Sprintf("sensors/site-0/dev-%04d", i%100),
			payload: []byte(`{"ts":1732560000100,"seq":7,"temperature":21.5,"humidity":48.3,"pressure":1004.6}`)}
	}
	b.SetBytes(int64(len(msgs[0].payload)))
	r := &round{arrivals: make([]arrival, 0, size)}
	for b.Loop() {
		if len(r.arrivals) == size {
			r.arrivals, r.msgs, r.readings = r.arrivals[:0], nil, nil
		}
		r.arrivals = append(r.arrivals, arrival{msgs[len(r.arrivals)], now})
		if len(r.arrivals) == size {
			bridge.prepare(r)
			if len(r.msgs) == 0 || r.readings[0] == 0 {
				b.Fatalf("%d messages, %v readings", len(r.msgs), r.readings)
			}
		}
	}
}
