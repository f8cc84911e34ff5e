package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is ready; nil means ready.
type Check func(ctx context.Context) error

// Health is the state behind /healthz and /readyz. /healthz answers 200 while
// the process serves HTTP at all (liveness: restart me only if this fails);
// /readyz answers 200 only while every check passes (readiness: send me work).
type Health struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// NewHealth returns a Health with no checks: ready until one is added.
func NewHealth() *Health { return &Health{checks: map[string]Check{}} }

// AddCheck registers a named readiness check.
func (h *Health) AddCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = c
}

// Ready runs every check and returns the failures by name.
func (h *Health) Ready(ctx context.Context) map[string]string {
	h.mu.RLock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	h.mu.RUnlock()
	sort.Strings(names)
	failed := map[string]string{}
	for _, n := range names {
		h.mu.RLock()
		c := h.checks[n]
		h.mu.RUnlock()
		if err := c(ctx); err != nil {
			failed[n] = err.Error()
		}
	}
	return failed
}

// Handler serves /healthz, /readyz and /metrics, and /debug/pprof/ when
// EDGEFLOW_PPROF is true.
func Handler(h *Health, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		failed := h.Ready(ctx)
		w.Header().Set("Content-Type", "application/json")
		status := "ready"
		if len(failed) > 0 {
			status = "not ready"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "failed": failed})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if pprofEnabled() {
		handlePprof(mux)
	}
	return mux
}

// IdleTimeout closes a keep-alive connection that has carried no request
// for this long. Scrapers and browsers reuse theirs well within it; a
// client that vanished, or many that connect and never ask again, would
// otherwise hold a socket and a goroutine each for ever. A request in
// progress (an SSE stream included) is not idle.
const IdleTimeout = 2 * time.Minute

// idleTimeout is IdleTimeout; tests shorten it (export_test.go).
var idleTimeout = IdleTimeout

// Serve runs an HTTP server for handler on addr until ctx ends, then shuts it
// down gracefully. It returns once the listener is closed.
func Serve(ctx context.Context, log *slog.Logger, addr string, handler http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idleTimeout}
	log.Info("http listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown %s: %w", addr, err)
	}
	return nil
}
