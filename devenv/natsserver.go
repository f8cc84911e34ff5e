package devenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// NATSServerPackage is the nats-server command of the module the embedded
// server comes from (go.mod pins it): built (BuildNATSServer), it runs NATS
// as its own process, as the cluster runs it.
const NATSServerPackage = "github.com/nats-io/nats-server/v2"

// BuildNATSServer builds the nats-server binary into dir (from the module
// cache or the Go module proxy) and returns its path.
func BuildNATSServer(ctx context.Context, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, NATSServerPackage)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", NATSServerPackage, err, b)
	}
	return out, nil
}

// NATSServer is a nats-server process started by StartNATSServer. URL is
// its client URL, nats:// as the embedded server's ClientURL (a client
// with a CA upgrades to TLS when the server demands it).
type NATSServer struct {
	*Process
	// Healthz is the monitoring listener's /healthz: JetStream up and
	// current.
	Healthz string
}

// StartNATSServer runs bin, a nats-server (BuildNATSServer), as its own
// process with the configuration StartNATS gives the embedded server
// (NATSServerConfig), written to <StoreDir>/nats.conf, and waits until its
// /healthz answers. The log is <StoreDir>/<ServerName>.log and the process
// is named ServerName. A Port or HTTPPort of 0 takes a free one, kept
// across Restart. Leaf and Logger are the embedded server's only.
func StartNATSServer(ctx context.Context, bin string, opts NATSOptions) (*NATSServer, error) {
	opts = opts.withDefaults()
	if opts.StoreDir == "" {
		return nil, errors.New("start nats-server: no StoreDir")
	}
	if opts.Leaf != nil || opts.Logger != nil {
		return nil, errors.New("start nats-server: Leaf and Logger need the embedded server (StartNATS)")
	}
	for _, p := range []*int{&opts.Port, &opts.HTTPPort} {
		if *p == 0 {
			port, err := FreePort()
			if err != nil {
				return nil, fmt.Errorf("start nats-server: %w", err)
			}
			*p = port
		}
	}
	if err := os.MkdirAll(opts.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("start nats-server: %w", err)
	}
	if opts.AuthConfig != "" {
		// Copied beside the configuration, which includes it by name.
		b, err := os.ReadFile(opts.AuthConfig)
		if err != nil {
			return nil, fmt.Errorf("start nats-server: %w", err)
		}
		if err := os.WriteFile(filepath.Join(opts.StoreDir, filepath.Base(opts.AuthConfig)), b, 0o600); err != nil {
			return nil, fmt.Errorf("start nats-server: %w", err)
		}
	}
	conf := filepath.Join(opts.StoreDir, "nats.conf")
	if err := os.WriteFile(conf, []byte(NATSServerConfig(opts)), 0o600); err != nil {
		return nil, fmt.Errorf("start nats-server: %w", err)
	}
	addr := opts.Host + ":" + strconv.Itoa(opts.Port)
	healthz := "http://" + opts.Host + ":" + strconv.Itoa(opts.HTTPPort) + "/healthz"
	p, err := StartProcess(ctx, ProcessOptions{
		Name: opts.ServerName, Bin: bin, Args: []string{"-c", conf}, Dir: opts.StoreDir,
		Addr: addr, URL: "nats://" + addr, ReadyURL: healthz,
		ReadyTimeout: cmp.Or(opts.ReadyTimeout, NATSReadyTimeout),
	})
	if err != nil {
		return nil, err
	}
	return &NATSServer{Process: p, Healthz: healthz}, nil
}

// NATSServerConfig is the nats-server configuration file of opts, the
// settings StartNATS gives the embedded server: listeners on Host (a Port
// of 0 is left to the server's default), JetStream in StoreDir with its sync
// policy and domain, MQTT, TLS, the cluster, and AuthConfig included by its
// base name (a copy beside the file). Leaf and Logger are not in it.
func NATSServerConfig(opts NATSOptions) string {
	opts = opts.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\n", opts.ServerName)
	if opts.Port != 0 {
		fmt.Fprintf(&b, "listen: %q\n", opts.Host+":"+strconv.Itoa(opts.Port))
	} else {
		fmt.Fprintf(&b, "host: %q\n", opts.Host)
	}
	if opts.HTTPPort != 0 {
		fmt.Fprintf(&b, "http: %q\n", opts.Host+":"+strconv.Itoa(opts.HTTPPort))
	}
	if opts.ProfPort != 0 {
		fmt.Fprintf(&b, "prof_port: %d\n", opts.ProfPort)
	}
	if opts.MaxPayload != 0 {
		fmt.Fprintf(&b, "max_payload: %d\n", opts.MaxPayload)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", opts.StoreDir)
	switch {
	case opts.SyncAlways:
		b.WriteString("  sync_interval: always\n")
	case opts.SyncInterval > 0:
		fmt.Fprintf(&b, "  sync_interval: %q\n", opts.SyncInterval.String())
	}
	if opts.Domain != "" {
		fmt.Fprintf(&b, "  domain: %q\n", opts.Domain)
	}
	b.WriteString("}\n")
	if opts.MQTTPort != 0 {
		fmt.Fprintf(&b, "mqtt {\n  listen: %q\n}\n", opts.Host+":"+strconv.Itoa(opts.MQTTPort))
	}
	if t := opts.TLS; t != nil {
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n", t.Cert, t.Key)
		if t.CA != "" {
			fmt.Fprintf(&b, "  ca_file: %q\n", t.CA)
		}
		if t.VerifyClients {
			b.WriteString("  verify: true\n")
		}
		b.WriteString("}\n")
	}
	if c := opts.Cluster; c != nil {
		routes := make([]string, len(c.Routes))
		for i, r := range c.Routes {
			routes[i] = strconv.Quote(r)
		}
		fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: %q\n  routes: [%s]\n}\n",
			c.Name, opts.Host+":"+strconv.Itoa(c.Port), strings.Join(routes, ", "))
	}
	if opts.AuthConfig != "" {
		fmt.Fprintf(&b, "include %s\n", filepath.Base(opts.AuthConfig))
	}
	return b.String()
}
