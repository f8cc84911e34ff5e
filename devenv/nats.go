package devenv

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edgeflow/edgeflow/internal/secure"
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

	// AuthConfig, when set, is a nats-server configuration fragment loaded
	// the way the cluster loads it: copied beside a configuration that
	// `include`s it (both in StoreDir) and read with
	// (*server.Options).ProcessConfigFile. Use NATSAuthConfig for the
	// shipped one, whose $VARIABLES (the users' passwords) nats-server
	// resolves from the environment: set them first (t.Setenv in tests).
	AuthConfig string
	// TLS, when set, makes the client port TLS-only with these files.
	TLS *NATSTLS

	// Domain is the server's JetStream domain; a site and its hub each need
	// their own so that JetStream does not span the leaf node link.
	Domain string
	// Leaf, when set, opens a leaf node listener (a hub) and/or connects to
	// remotes (a site).
	Leaf *NATSLeaf
	// Logger, when set, receives the server's log (notices, warnings and
	// errors, such as a refused leaf node), whatever Logging says.
	Logger server.Logger

	// HTTPPort, when not 0, opens the monitoring listener (/healthz,
	// /varz) on Host. StartNATSServer takes a free one when 0: its
	// readiness is /healthz.
	HTTPPort int
	// ProfPort, when not 0, serves the server's /debug/pprof/ on Host.
	ProfPort int
	// Cluster, when set, joins the server to a cluster of servers.
	Cluster *NATSCluster
	// ReadyTimeout bounds the wait for the server; 0 means
	// NATSReadyTimeout. A server restarted on a large store first
	// recovers every stream.
	ReadyTimeout time.Duration
}

// NATSCluster is the route side of a cluster member.
type NATSCluster struct {
	// Name is the cluster's, the same on every member.
	Name string
	// Port is this member's route listener on Host.
	Port int
	// Routes are the other members' nats-route://host:port URLs.
	Routes []string
}

// NATSLeaf is the leaf node side of a server.
type NATSLeaf struct {
	// Port of the leaf node listener (a hub); 0 opens none. Use FreePort:
	// sites reconnect to the same port after a hub restart.
	Port int
	// User and Password, when set, are what the listener demands.
	User, Password string
	// Remotes are the URLs (nats-leaf://user:password@host:port) a site
	// connects to; the server retries them every ReconnectInterval.
	Remotes           []string
	ReconnectInterval time.Duration
	// Deny are subjects the remotes neither import nor export.
	Deny []string
	// TLS, when set, makes the listener TLS-only with these files
	// (VerifyClients: sites need a certificate from CA).
	TLS *NATSTLS
	// RemoteTLS, when set, makes the remotes use TLS with these files.
	RemoteTLS *secure.TLSFiles
}

// NATSAuthConfig is the users-and-permissions fragment shipped for the
// cluster, relative to the repository root (see NATSOptions.AuthConfig).
const NATSAuthConfig = "manifests/base/nats/auth.conf"

// NATSTLS are the PEM files of a TLS client port.
type NATSTLS struct {
	Cert, Key string
	// CA, with VerifyClients, is the CA client certificates must chain to.
	CA            string
	VerifyClients bool
}

// StartNATS starts an embedded nats-server with JetStream (and MQTT when
// MQTTPort is set) and waits until it accepts connections. Stop it with
// Shutdown and WaitForShutdown. The server does not install signal handlers:
// SIGTERM stays with the program that embeds it.
func StartNATS(opts NATSOptions) (*server.Server, error) {
	sopts, err := serverOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if opts.Logger != nil {
		s.SetLoggerV2(opts.Logger, false, false, false)
	} else if opts.Logging {
		s.ConfigureLogger()
	}
	s.Start()
	timeout := cmp.Or(opts.ReadyTimeout, NATSReadyTimeout)
	if !s.ReadyForConnections(timeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start nats on %s:%d (mqtt %d): not ready within %s (port taken? set Logging for the server's log)",
			sopts.Host, opts.Port, opts.MQTTPort, timeout)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start nats: JetStream is not enabled (store dir %s)", opts.StoreDir)
	}
	return s, nil
}

// withDefaults fills the options' defaults: Host and ServerName.
func (opts NATSOptions) withDefaults() NATSOptions {
	opts.Host = cmp.Or(opts.Host, "127.0.0.1")
	opts.ServerName = cmp.Or(opts.ServerName, DefaultNATSServerName)
	return opts
}

// serverOptions are the embedded server's options.
func serverOptions(opts NATSOptions) (*server.Options, error) {
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("no StoreDir")
	}
	opts = opts.withDefaults()
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
	sopts.JetStreamDomain = opts.Domain
	if opts.HTTPPort != 0 {
		sopts.HTTPHost, sopts.HTTPPort = opts.Host, opts.HTTPPort
	}
	sopts.ProfPort = opts.ProfPort
	if c := opts.Cluster; c != nil {
		sopts.Cluster.Name, sopts.Cluster.Host, sopts.Cluster.Port = c.Name, opts.Host, c.Port
		sopts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	}
	if opts.Leaf != nil {
		if err := leafOptions(sopts, opts.Host, *opts.Leaf); err != nil {
			return nil, err
		}
	}
	if opts.MQTTPort != 0 {
		sopts.MQTT.Host = opts.Host
		sopts.MQTT.Port = opts.MQTTPort
	}
	if opts.AuthConfig != "" {
		if err := includeConfig(sopts, opts.StoreDir, opts.AuthConfig); err != nil {
			return nil, err
		}
	}
	if opts.TLS != nil {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: opts.TLS.Cert, KeyFile: opts.TLS.Key, CaFile: opts.TLS.CA, Verify: opts.TLS.VerifyClients})
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		sopts.TLS, sopts.TLSConfig, sopts.TLSVerify = true, tc, opts.TLS.VerifyClients
	}
	return sopts, nil
}

// leafOptions sets the leaf node listener and remotes of sopts.
func leafOptions(sopts *server.Options, host string, leaf NATSLeaf) error {
	if leaf.Port != 0 {
		sopts.LeafNode.Host, sopts.LeafNode.Port = host, leaf.Port
		sopts.LeafNode.Username, sopts.LeafNode.Password = leaf.User, leaf.Password
		// Sites keep to the URLs they were given (a proxy, a load
		// balancer) instead of learning the listener's own address.
		sopts.LeafNode.NoAdvertise = true
		if leaf.TLS != nil {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
				CertFile: leaf.TLS.Cert, KeyFile: leaf.TLS.Key, CaFile: leaf.TLS.CA, Verify: leaf.TLS.VerifyClients})
			if err != nil {
				return fmt.Errorf("leaf tls: %w", err)
			}
			sopts.LeafNode.TLSConfig, sopts.LeafNode.TLSTimeout = tc, 2
		}
	}
	var remoteTLS *tls.Config
	if leaf.RemoteTLS != nil {
		tc, err := leaf.RemoteTLS.Config()
		if err != nil {
			return fmt.Errorf("leaf remote tls: %w", err)
		}
		remoteTLS = tc
	}
	sopts.LeafNode.ReconnectInterval = leaf.ReconnectInterval
	for _, r := range leaf.Remotes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("leaf remote: %w", err)
		}
		sopts.LeafNode.Remotes = append(sopts.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: []*url.URL{u},
			DenyImports: leaf.Deny, DenyExports: leaf.Deny, TLS: remoteTLS != nil, TLSConfig: remoteTLS, TLSTimeout: 2})
	}
	return nil
}

// includeConfig loads fragment into sopts as `include <name>` from a
// configuration beside it, which is how nats.conf in the cluster reads it
// (nats-server resolves includes relative to the including file).
func includeConfig(sopts *server.Options, dir, fragment string) error {
	b, err := os.ReadFile(fragment)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := filepath.Base(fragment)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		return err
	}
	wrapper := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(wrapper, []byte("include "+name+"\n"), 0o600); err != nil {
		return err
	}
	err = sopts.ProcessConfigFile(wrapper)
	// Warnings only (e.g. an unknown field) come as an error without errors.
	if e, ok := err.(interface{ Errors() []error }); ok && len(e.Errors()) == 0 {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", fragment, err)
	}
	return nil
}
