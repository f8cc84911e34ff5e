package devenv

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	// NATSReadyTimeout bounds the wait for the embedded server's listeners.
	NATSReadyTimeout = 10 * time.Second

	// DefaultNATSServerName names the embedded server when NATSOptions has
	// none. A fixed name keeps a restarted server (same StoreDir) the same
	// server to JetStream and to MQTT sessions.
	DefaultNATSServerName = "edgeflow-devenv"
)

// NATSOptions describe an embedded NATS server with JetStream for StartNATS.
type NATSOptions struct {
	// Host to listen on; empty means 127.0.0.1.
	Host string
	// Port for NATS clients; 0 picks a random port, read back with
	// (*server.Server).ClientURL(). Give the old port to restart a server
	// that clients reconnect to.
	Port int
	// StoreDir is JetStream's file store. Required. Start again on the same
	// StoreDir to get the same streams, consumers and key-value buckets back.
	StoreDir string
	// MQTTPort, when not 0, opens an MQTT listener on Host (JetStream backs
	// MQTT sessions and QoS 1). Use FreePort for one.
	MQTTPort int
	// ServerName; empty means DefaultNATSServerName.
	ServerName string
	// SyncInterval is how often the file store fsyncs; 0 means the server's
	// default (2 min: an OS crash, not a process crash, can lose up to that
	// much acknowledged data). SyncAlways fsyncs every write instead.
	SyncInterval time.Duration
	SyncAlways   bool
	// MaxPayload in bytes; 0 means the server's default (1 MiB).
	MaxPayload int32
	// Logging sends the server's log to stderr (off by default: tests stay
	// quiet unless a test wants to see the server).
	Logging bool
}

// StartNATS starts an embedded nats-server with JetStream (and MQTT when
// MQTTPort is set) and waits until it accepts connections. Stop it with
// Shutdown and WaitForShutdown. The server does not install signal handlers:
// SIGTERM stays with the program that embeds it.
func StartNATS(opts NATSOptions) (*server.Server, error) {
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("start nats: no StoreDir")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.ServerName == "" {
		opts.ServerName = DefaultNATSServerName
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName:   opts.ServerName,
		Host:         opts.Host,
		Port:         port,
		JetStream:    true,
		StoreDir:     opts.StoreDir,
		SyncInterval: opts.SyncInterval,
		SyncAlways:   opts.SyncAlways,
		MaxPayload:   opts.MaxPayload,
		NoSigs:       true,
		NoLog:        !opts.Logging,
	}
	if opts.MQTTPort != 0 {
		sopts.MQTT.Host = opts.Host
		sopts.MQTT.Port = opts.MQTTPort
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if opts.Logging {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(NATSReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start nats on %s:%d (mqtt %d): not ready within %s (port taken? set Logging for the server's log)",
			opts.Host, opts.Port, opts.MQTTPort, NATSReadyTimeout)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start nats: JetStream is not enabled (store dir %s)", opts.StoreDir)
	}
	return s, nil
}
