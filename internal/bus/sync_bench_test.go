package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
)

// BenchmarkTelemetryPublishSync is the cost of JetStream's storage sync
// policy on the leg it slows down: ingest's pipelined publishes into the
// partitioned, deduplicating TELEMETRY file stream (a 120-byte reading with a
// Nats-Msg-Id, at most 4096 in flight, as ingest publishes). The policies:
// the server's default (fsync every 2 minutes), the 1 s that the manifests
// and task up use, and "always" (fsync before every acknowledgement).
//
//	go test -run XXX -bench TelemetryPublishSync -benchtime 50000x ./internal/bus
func BenchmarkTelemetryPublishSync(b *testing.B) {
	for _, p := range []struct {
		name     string
		interval time.Duration
		always   bool
	}{
		{"default-2m", 0, false},
		{"interval-1s", time.Second, false},
		{"always", 0, true},
	} {
		b.Run(p.name, func(b *testing.B) {
			s, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: b.TempDir(), SyncInterval: p.interval, SyncAlways: p.always})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { s.Shutdown(); s.WaitForShutdown() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			nc, js, err := Connect(ctx, quiet, Config{URL: s.ClientURL(), ConnectTimeout: 5 * time.Second}, "sync-bench",
				jetstream.WithPublishAsyncMaxPending(4096))
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			if err := Ensure(ctx, js, testStreams(8).Telemetry()); err != nil {
				b.Fatal(err)
			}
			payload := []byte(`{"site":"site-1","device":"dev-0001","ts":1732560000123,"seq":1,"metrics":{"temperature":21.5,"humidity":48.3}}`)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				m := nats.NewMsg(fmt.Sprintf("telemetry.site-%d.dev-%04d", i%10, i%1000))
				m.Data = payload
				m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("bench-%d", i))
				// As ingest: when 4096 are in flight, wait for room and try again.
				for {
					_, err := js.PublishMsgAsync(m)
					if err == nil {
						break
					}
					if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
						b.Fatal(err)
					}
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("acknowledgements did not arrive")
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
