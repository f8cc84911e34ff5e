package devenv

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// The many-sites topology of the tests (docs/operations.md#hub): a hub's
// NATS with a leaf node listener, sites whose NATS are its leaf nodes, and
// between them a proxy a test can cut. The bus, processor and dashboard
// tests all start it here.

// TestLeafUser and TestLeafPassword are the leaf node login of a test hub.
const (
	TestLeafUser     = "site"
	TestLeafPassword = "s3cret-leaf"
)

// NATSHub is a hub's NATS server on fixed ports, so that after Stop and
// Start on the same store it is the same hub to its sites and clients.
type NATSHub struct {
	Dir                  string
	ClientPort, LeafPort int
	// Domain is the hub's JetStream domain; TLS, when set, makes the leaf
	// node listener TLS-only.
	Domain string
	TLS    *NATSTLS
	// Server is the running server, nil while stopped.
	Server *server.Server
}

// StartNATSHub starts a hub with its store in dir, on two free ports, its
// leaf node listener demanding TestLeafUser and TestLeafPassword.
func StartNATSHub(dir, domain string, tls *NATSTLS) (*NATSHub, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	h := &NATSHub{Dir: dir, ClientPort: ports[0], LeafPort: ports[1], Domain: domain, TLS: tls}
	return h, h.Start()
}

// Start starts the hub (again).
func (h *NATSHub) Start() error {
	s, err := StartNATS(NATSOptions{Port: h.ClientPort, StoreDir: h.Dir, ServerName: "hub", Domain: h.Domain,
		Leaf: &NATSLeaf{Port: h.LeafPort, User: TestLeafUser, Password: TestLeafPassword, TLS: h.TLS}})
	if err != nil {
		return err
	}
	h.Server = s
	return nil
}

// Stop shuts the hub down; its store stays.
func (h *NATSHub) Stop() {
	if h.Server != nil {
		h.Server.Shutdown()
		h.Server.WaitForShutdown()
		h.Server = nil
	}
}

// LeafURL is what a site's remote connects to with user and password.
func (h *NATSHub) LeafURL(user, password string) string {
	return fmt.Sprintf("nats-leaf://%s:%s@127.0.0.1:%d", user, password, h.LeafPort)
}

// ClientURL is the hub's client URL, the same across restarts.
func (h *NATSHub) ClientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", h.ClientPort) }

// StartNATSSite starts a site's NATS with its store in dir: JetStream
// domain = name, one leaf node remote (with tls when set) that neither
// imports nor exports deny (bus.SiteLocalSubjects), retried every 200 ms;
// logger, when set, hears the server's log.
func StartNATSSite(dir, name, remote string, deny []string, tls *secure.TLSFiles, logger server.Logger) (*server.Server, error) {
	return StartNATS(NATSOptions{StoreDir: dir, ServerName: name, Domain: name, Logger: logger,
		Leaf: &NATSLeaf{Remotes: []string{remote}, ReconnectInterval: 200 * time.Millisecond, Deny: deny, RemoteTLS: tls}})
}

// LinkProxy is a TCP proxy between a site and its hub's leaf node port: the
// cable a test can cut.
type LinkProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

// StartLinkProxy proxies a port on 127.0.0.1 to target until Close.
func StartLinkProxy(target string) (*LinkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &LinkProxy{ln: ln, target: target}
	go p.serve()
	return p, nil
}

func (p *LinkProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, u); u.Close(); c.Close() }()
	}
}

// Cut closes every connection through the proxy and refuses new ones.
func (p *LinkProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore lets connections through again.
func (p *LinkProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// LeafURL is what a site's remote connects to, through the proxy.
func (p *LinkProxy) LeafURL(user, password string) string {
	return fmt.Sprintf("nats-leaf://%s:%s@%s", user, password, p.ln.Addr())
}

// Close stops the proxy and closes its connections.
func (p *LinkProxy) Close() {
	p.ln.Close()
	p.Cut()
}
