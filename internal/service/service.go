// Package service is what every edgeflow service shares around its own
// logic: JSON logs, the /healthz, /readyz and /metrics server, the standard
// pipeline counters, a context that ends on SIGTERM, and the lifecycle of a
// run (lifecycle.go): the parts that outlive the work (Group), the "startup"
// readiness (Startup) and the drain after SIGTERM (Drain).
package service

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// NewLogger returns the JSON logger every service writes to stderr, tagged
// with the service name. EDGEFLOW_LOG_LEVEL sets the level (debug, info,
// warn, error; info by default).
func NewLogger(service string) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.TrimSpace(os.Getenv("EDGEFLOW_LOG_LEVEL")))); err != nil {
		level = slog.LevelInfo
	}
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("service", service)
}

// SignalContext is cancelled on SIGTERM or SIGINT, which starts a drain.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// Fatal logs a start-up error and exits with status 1: the one way a service
// refuses to start (invalid configuration, unreachable dependency at boot).
func Fatal(log *slog.Logger, msg string, err error) {
	log.Error(msg, "err", err)
	os.Exit(1)
}

// Main is every service's main: `<binary> env` prints its variables,
// `<binary> --version` its build (Version); otherwise it sets the soft
// memory limit (SetMemoryLimit) and GOMAXPROCS (SetProcs), loads the
// configuration (refusing to start on an invalid one), runs until SIGTERM or
// SIGINT, and exits 1 if run failed.
func Main[C any](name string, load func() (C, error), run func(context.Context, C) error) {
	if len(os.Args) > 1 && (os.Args[1] == "env" || os.Args[1] == "-h" || os.Args[1] == "--help") {
		var spec C
		PrintEnv(os.Stdout, name, &spec)
		return
	}
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version" || os.Args[1] == "version") {
		PrintVersion(os.Stdout, name)
		return
	}
	log := NewLogger(name)
	if _, err := SetMemoryLimit(); err != nil {
		Fatal(log, "invalid configuration", err)
	}
	SetProcs()
	cfg, err := load()
	if err != nil {
		Fatal(log, "invalid configuration", err)
	}
	ctx, stop := SignalContext()
	err = run(ctx, cfg)
	stop()
	if err != nil {
		Fatal(log, name+" failed", err)
	}
	log.Info("stopped")
}
