package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/drivers"
	"github.com/k3s-io/kine/pkg/drivers/generic"
	"github.com/k3s-io/kine/pkg/drivers/sqlite"
	"github.com/k3s-io/kine/pkg/server"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// kineConfig is kine's own defaults (kine's pkg/app flags): a zero value is not valid for
// every field (compact batch size, poll batch size), so each one is spelled out.
func kineConfig(dbFile string) drivers.Config {
	return drivers.Config{
		// As K3s's default datastore: SQLite in WAL mode with kine's connection parameters.
		Endpoint: "sqlite://" + dbFile + "?" + sqlite.DefaultParams,
		ConnectionPoolConfig: generic.ConnectionPoolConfig{
			MaxIdle:     20,
			MaxOpen:     0,
			MaxLifetime: 0,
			MaxIdleTime: 2 * time.Minute,
		},
		CompactInterval:       0, // compaction driven by kube-apiserver's requests (every 5 min)
		CompactIntervalJitter: 0,
		CompactTimeout:        5 * time.Second,
		CompactMinRetain:      1000,
		CompactBatchSize:      1000,
		PollBatchSize:         500,
		PollInterval:          time.Second,
	}
}

const (
	kineNotifyInterval      = 5 * time.Second
	kineEmulatedETCDVersion = "3.6.11" // kine's default: watch progress notifications supported
)

// startKine opens the SQLite file and serves kine's etcd API on a unix socket, as K3s does
// for its default datastore. It returns the endpoint for kube-apiserver's --etcd-servers.
// The gRPC server stops when ctx ends.
func startKine(ctx context.Context, dataDir string) (string, error) {
	dbDir := filepath.Join(dataDir, "server", "db")
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return "", err
	}
	cfg := kineConfig(filepath.Join(dbDir, "state.db"))
	var wg sync.WaitGroup
	_, backend, err := drivers.New(ctx, &wg, &cfg)
	if err != nil {
		return "", fmt.Errorf("kine: sqlite driver: %w", err)
	}
	if err := backend.Start(ctx); err != nil {
		return "", fmt.Errorf("kine: starting the backend: %w", err)
	}
	// The gRPC settings of kine's endpoint package (etcd's defaults), without TLS: the
	// socket is only reachable by root (0600).
	gs := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: embed.DefaultGRPCKeepAliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time: embed.DefaultGRPCKeepAliveInterval, Timeout: embed.DefaultGRPCKeepAliveTimeout}),
		grpc.MaxConcurrentStreams(embed.DefaultMaxConcurrentStreams),
		grpc.MaxRecvMsgSize(int(embed.DefaultMaxRequestBytes)+512*1024),
		grpc.MaxSendMsgSize(math.MaxInt32),
	)
	server.New(backend, "unix", kineNotifyInterval, kineEmulatedETCDVersion).Register(gs)

	sock := filepath.Join(dataDir, "server", "kine.sock")
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		return "", err
	}
	go func() {
		if err := gs.Serve(l); err != nil {
			logf("kine: gRPC server: %v", err)
		}
	}()
	go func() {
		<-ctx.Done()
		t := time.AfterFunc(2*time.Second, gs.Stop)
		gs.GracefulStop()
		t.Stop()
	}()
	return "unix://" + sock, nil
}
