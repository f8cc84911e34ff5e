package service

import (
	"fmt"
	"math"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit when neither
// EDGEFLOW_MEMORY_LIMIT nor GOMEMLIMIT is set. With the runtime's default
// GOGC=100 the heap grows to twice what is live before a collection; the
// soft limit makes the collector run earlier as the process nears it, so
// RSS stays near the limit instead of at twice the live heap. It never
// refuses memory: a live heap above it only costs more collections. RSS is
// the limit plus what the runtime does not count (the binary's text and
// data). The value is a trade of RSS against collector CPU measured at the
// sustained rate (docs/performance.md, "Figures behind the code").
const DefaultMemoryLimit = 28 << 20

// memoryLimitEnv is the variable that sets the soft memory limit in bytes
// (suffixes KiB, MiB, GiB), or "off".
const memoryLimitEnv = "EDGEFLOW_MEMORY_LIMIT"

// SetMemoryLimit applies the soft memory limit: EDGEFLOW_MEMORY_LIMIT if set,
// else GOMEMLIMIT as the runtime read it (the K8s manifests set it from the
// pod's limit), else DefaultMemoryLimit. It returns the limit in force
// (math.MaxInt64: none).
func SetMemoryLimit() (int64, error) {
	if v := strings.TrimSpace(os.Getenv(memoryLimitEnv)); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return debug.SetMemoryLimit(-1), fmt.Errorf("%s=%q: %w", memoryLimitEnv, v, err)
		}
		debug.SetMemoryLimit(n)
		return n, nil
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), nil // the runtime applied it at start
	}
	debug.SetMemoryLimit(DefaultMemoryLimit)
	return DefaultMemoryLimit, nil
}

// DefaultProcs is how many threads run Go code at once (GOMAXPROCS) when
// GOMAXPROCS is not set. A service's work is a chain of goroutines handing
// each message on (paho's reader, router and writer, the bridge's loops; a
// processor's partition workers and their client connections) that take
// turns more than they run side by side. With more than one, each hand-off
// to a parked goroutine can wake a thread on another core, and idle threads
// spin looking for work: on a 2-core machine that cost 20-30 % of ingest's
// and the processor's CPU per reading (docs/performance.md). A service
// needing more cores than one runs more replicas (processor; ingest with a
// share group) or sets GOMAXPROCS.
const DefaultProcs = 1

// SetProcs applies DefaultProcs unless GOMAXPROCS is set (the runtime applied
// it at start), and returns the number in force.
func SetProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(DefaultProcs)
	return DefaultProcs
}

// parseBytes reads "off", a number of bytes, or one with a KiB, MiB or GiB
// suffix (GOMEMLIMIT's own units).
func parseBytes(s string) (int64, error) {
	if s == "off" {
		return math.MaxInt64, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a positive number of bytes (KiB, MiB, GiB suffixes) or off")
	}
	return n * mult, nil
}

// pprofEnabled reports whether EDGEFLOW_PPROF asks for /debug/pprof/ on the
// service's HTTP server. Off by default: profiles expose the process's
// internals and cost CPU while taken.
func pprofEnabled() bool {
	on, _ := strconv.ParseBool(strings.TrimSpace(os.Getenv("EDGEFLOW_PPROF")))
	return on
}

// handlePprof adds net/http/pprof's handlers to mux.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
