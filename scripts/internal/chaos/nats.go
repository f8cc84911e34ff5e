package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// NATSServerPackage is the nats-server command in the module nats.go and the
// embedded server come from (go.mod pins it): built into Bin, it runs NATS as
// a process chaos can SIGKILL.
const NATSServerPackage = "github.com/nats-io/nats-server/v2"

// natsReadyTimeout bounds a NATS server's start: a cluster member restarted
// after a SIGKILL first catches up on every stream and bucket.
const natsReadyTimeout = 2 * time.Minute

// BuildNATSServer builds the nats-server binary into dir (from the module
// cache or the Go module proxy) and returns its path.
func BuildNATSServer(ctx context.Context, dir string) (string, error) {
	root, err := devenv.RepoRoot()
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

// natsNode is where one server of the NATS cluster listens.
type natsNode struct {
	name                      string
	port, httpPort, routePort int
	dir                       string
}

// natsConfig is one server's configuration: client, monitoring and (in a
// cluster) route ports on loopback, JetStream in its own store directory.
// The server name is fixed so that a server restarted on the same store is
// the same JetStream peer.
func natsConfig(n natsNode, all []natsNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n", n.name, n.port, n.httpPort)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", filepath.Join(n.dir, "jetstream"))
	if len(all) > 1 {
		var routes []string
		for _, o := range all {
			if o.name != n.name {
				routes = append(routes, strconv.Quote("nats-route://127.0.0.1:"+strconv.Itoa(o.routePort)))
			}
		}
		fmt.Fprintf(&b, "cluster {\n  name: \"edgeflow-chaos\"\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n",
			n.routePort, strings.Join(routes, ", "))
	}
	return b.String()
}

// natsProc is one running nats-server and its health endpoint.
type natsProc struct {
	proc    *devenv.Process
	healthz string
}

// startNATS starts n nats-server processes (n = 1 or 3, a cluster) and waits
// until each reports healthy (/healthz: JetStream up and current).
func startNATS(ctx context.Context, bin, dir string, n int) ([]natsProc, error) {
	ports, err := devenv.FreePorts(3 * n)
	if err != nil {
		return nil, err
	}
	nodes := make([]natsNode, n)
	for i := range nodes {
		nodes[i] = natsNode{name: "nats-" + strconv.Itoa(i+1), port: ports[3*i], httpPort: ports[3*i+1], routePort: ports[3*i+2]}
		nodes[i].dir = filepath.Join(dir, nodes[i].name)
	}
	procs := make([]*devenv.Process, n)
	errs := make(chan error, n)
	// Together: a cluster member is healthy only once a JetStream meta
	// leader is elected, which needs a majority running.
	for i, node := range nodes {
		go func() {
			if err := os.MkdirAll(node.dir, 0o755); err != nil {
				errs <- err
				return
			}
			conf := filepath.Join(node.dir, "nats.conf")
			if err := os.WriteFile(conf, []byte(natsConfig(node, nodes)), 0o644); err != nil {
				errs <- err
				return
			}
			p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
				Name: node.name, Bin: bin, Args: []string{"-c", conf}, Dir: node.dir,
				Addr: "127.0.0.1:" + strconv.Itoa(node.port), URL: "nats://127.0.0.1:" + strconv.Itoa(node.port),
				ReadyURL:     "http://127.0.0.1:" + strconv.Itoa(node.httpPort) + "/healthz",
				ReadyTimeout: natsReadyTimeout,
			})
			procs[i] = p
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		for _, p := range procs {
			if p != nil {
				_ = p.Stop(context.Background())
			}
		}
		return nil, fmt.Errorf("start nats: %w", first)
	}
	out := make([]natsProc, n)
	for i, node := range nodes {
		out[i] = natsProc{proc: procs[i], healthz: "http://127.0.0.1:" + strconv.Itoa(node.httpPort) + "/healthz"}
	}
	return out, nil
}
