package bus

import (
	"context"
	"log/slog"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
)

var quiet = slog.New(slog.DiscardHandler)

// testStreams is a valid, small sizing for tests.
func testStreams(partitions int) StreamConfig {
	return StreamConfig{
		Replicas:           1,
		Partitions:         partitions,
		TelemetryMaxAge:    time.Hour,
		TelemetryMaxBytes:  64 << 20,
		DedupWindow:        2 * time.Minute,
		AggregatesMaxAge:   time.Hour,
		DeadLetterMaxAge:   time.Hour,
		DeadLetterMaxBytes: 64 << 20,
	}
}

// startNATS starts an embedded JetStream server that stops when the test ends.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func serverPort(t *testing.T, s *server.Server) int {
	t.Helper()
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// connect connects through Connect, the way the services do.
func connect(t *testing.T, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := Connect(t.Context(), quiet, Config{URL: s.ClientURL(), ConnectTimeout: 5 * time.Second}, "bus-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// storedIn reads every message stored under filter in TELEMETRY, in stream
// order, through an ordered consumer as a processor would.
func storedIn(t *testing.T, ctx context.Context, js jetstream.JetStream, filter string) []jetstream.Msg {
	t.Helper()
	return readStream(t, ctx, js, StreamTelemetry, filter)
}
