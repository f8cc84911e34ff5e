package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// natsReadyTimeout bounds a NATS server's start: a cluster member restarted
// after a SIGKILL first catches up on every stream and bucket.
const natsReadyTimeout = 2 * time.Minute

// natsOptions are server i's of n (a cluster when n > 1): client,
// monitoring and route ports on loopback from ports (3 a server), JetStream
// in its own store directory under dir. The server name is fixed so that a
// server restarted on the same store is the same JetStream peer.
func natsOptions(i, n int, ports []int, dir string) devenv.NATSOptions {
	name := "nats-" + strconv.Itoa(i+1)
	o := devenv.NATSOptions{ServerName: name, Port: ports[3*i], HTTPPort: ports[3*i+1],
		StoreDir: filepath.Join(dir, name), ReadyTimeout: natsReadyTimeout}
	if n > 1 {
		o.Cluster = &devenv.NATSCluster{Name: "edgeflow-chaos", Port: ports[3*i+2]}
		for j := range n {
			if j != i {
				o.Cluster.Routes = append(o.Cluster.Routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[3*j+2]))
			}
		}
	}
	return o
}

// startNATS starts n nats-server processes (n = 1 or 3, a cluster) and waits
// until each reports healthy (/healthz: JetStream up and current).
func startNATS(ctx context.Context, bin, dir string, n int) ([]*devenv.NATSServer, error) {
	ports, err := devenv.FreePorts(3 * n)
	if err != nil {
		return nil, err
	}
	procs := make([]*devenv.NATSServer, n)
	errs := make(chan error, n)
	// Together: a cluster member is healthy only once a JetStream meta
	// leader is elected, which needs a majority running.
	for i := range n {
		go func() {
			p, err := devenv.StartNATSServer(ctx, bin, natsOptions(i, n, ports, dir))
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
	return procs, nil
}
