package bus

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkUplink measures how fast a hub takes a site's backlog over the
// leaf node link: the site holds backlog messages, the hub creates its
// stream, which sources them from the first; one op is the whole backlog.
// msgs/s is the uplink's throughput, B/msg what the hub stores per message.
func BenchmarkUplink(b *testing.B) {
	const backlog = 20000
	for _, bc := range []struct {
		name, stream string
		subject      func(n uint64) string
		payload      func(n uint64) []byte
	}{
		{"windows", StreamAggregates, func(n uint64) string { return fmt.Sprintf("aggregates.10s.lab.t%d", n%16) }, windowPayload},
		{"readings", StreamTelemetry, func(n uint64) string { return fmt.Sprintf("telemetry.lab.t%d", n%16) }, readingPayload},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hub := startHub(b)
			site, _ := startSite(b, north, hub.LeafURL(leafUser, leafPassword))
			_, sjs := connectURL(b, site.ClientURL())
			sc := testStreams(8)
			if err := Ensure(b.Context(), sjs, sc.Telemetry(), sc.Aggregates()); err != nil {
				b.Fatal(err)
			}
			for n := uint64(1); n <= backlog; n++ {
				if _, err := sjs.PublishAsync(bc.subject(n), bc.payload(n)); err != nil {
					b.Fatal(err)
				}
			}
			<-sjs.PublishAsyncComplete()
			_, hjs := connectURL(b, hub.Server.ClientURL())
			hc := HubConfig{Sites: []string{north}, Streams: []string{bc.stream}, MaxAge: time.Hour, MaxBytes: 1 << 30}
			cfg := hc.HubStream(sc, north, bc.stream)
			deadline := time.Minute
			var bytes uint64
			b.ResetTimer()
			for b.Loop() {
				if err := Ensure(b.Context(), hjs, cfg); err != nil {
					b.Fatal(err)
				}
				var info *jetstream.StreamInfo
				for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
					s, err := hjs.Stream(b.Context(), cfg.Name)
					if err != nil {
						b.Fatal(err)
					}
					if info = s.CachedInfo(); info.State.Msgs >= backlog {
						break
					}
					if time.Since(start) > deadline {
						b.Fatalf("hub holds %d of %d after %s", info.State.Msgs, backlog, deadline)
					}
				}
				if info.State.Msgs != backlog {
					b.Fatalf("hub holds %d messages, the site %d", info.State.Msgs, backlog)
				}
				bytes = info.State.Bytes
				b.StopTimer()
				if err := hjs.DeleteStream(b.Context(), cfg.Name); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(backlog)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(bytes)/backlog, "B/msg")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// readingPayload is a reading of three metrics, as ingest publishes it.
func readingPayload(n uint64) []byte {
	return fmt.Appendf(nil, `{"site":"lab","device":"t%d","ts":%d,"seq":%d,"metrics":{"temperature":21.5,"humidity":48,"pressure":1013.2},"rx":%d,"dt":true}`,
		n%16, 1732560000000+n*1000, n, 1732560000000+n*1000)
}
