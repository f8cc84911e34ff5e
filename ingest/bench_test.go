package main

import (
	"testing"
	"time"
)

// BenchmarkBridgePrepare is ingest's per-message work before the publish:
// decode and validate the load generator's payload, marshal the reading,
// and build the NATS message with its Nats-Msg-Id.
func BenchmarkBridgePrepare(b *testing.B) {
	b.ReportAllocs()
	now := time.UnixMilli(1732560000123)
	bridge := newTestBridge(now)
	m := &message{topic: "sensors/site-0/dev-0000",
		payload: []byte(`{"ts":1732560000100,"seq":7,"temperature":21.5,"humidity":48.3,"pressure":1004.6}`)}
	b.SetBytes(int64(len(m.payload)))
	for b.Loop() {
		if d := bridge.prepare(m, time.Now()); d.rejected || len(d.msgs) != 1 {
			b.Fatalf("rejected=%v msgs=%d", d.rejected, len(d.msgs))
		}
	}
}
