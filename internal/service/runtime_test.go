package service

import (
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"33554432": 32 << 20, "32MiB": 32 << 20, "64 MiB": 64 << 20,
		"1GiB": 1 << 30, "512KiB": 512 << 10, "100B": 100, "off": math.MaxInt64} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "32MB", "lots", "9999999999GiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv(memoryLimitEnv, "")
	if got, err := SetMemoryLimit(); err != nil || got != DefaultMemoryLimit || debug.SetMemoryLimit(-1) != DefaultMemoryLimit {
		t.Errorf("default: %d, %v", got, err)
	}
	t.Setenv(memoryLimitEnv, "48MiB")
	if got, err := SetMemoryLimit(); err != nil || got != 48<<20 || debug.SetMemoryLimit(-1) != 48<<20 {
		t.Errorf("48MiB: %d, %v", got, err)
	}
	t.Setenv(memoryLimitEnv, "")
	t.Setenv("GOMEMLIMIT", "100MiB")
	debug.SetMemoryLimit(100 << 20) // what the runtime does at start with GOMEMLIMIT
	if got, err := SetMemoryLimit(); err != nil || got != 100<<20 {
		t.Errorf("GOMEMLIMIT kept: %d, %v", got, err)
	}
	t.Setenv(memoryLimitEnv, "lots")
	if _, err := SetMemoryLimit(); err == nil {
		t.Error("invalid EDGEFLOW_MEMORY_LIMIT accepted")
	}
}

func TestSetProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "")
	if got := SetProcs(); got != DefaultProcs || runtime.GOMAXPROCS(0) != DefaultProcs {
		t.Errorf("default: %d, GOMAXPROCS %d", got, runtime.GOMAXPROCS(0))
	}
	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2) // what the runtime does at start with GOMAXPROCS
	if got := SetProcs(); got != 2 || runtime.GOMAXPROCS(0) != 2 {
		t.Errorf("GOMAXPROCS kept: %d, GOMAXPROCS %d", got, runtime.GOMAXPROCS(0))
	}
}

func TestPprofOptIn(t *testing.T) {
	for env, want := range map[string]int{"": http.StatusNotFound, "false": http.StatusNotFound, "true": http.StatusOK} {
		t.Setenv("EDGEFLOW_PPROF", env)
		srv := httptest.NewServer(Handler(NewHealth(), prometheus.NewRegistry()))
		resp, err := http.Get(srv.URL + "/debug/pprof/")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("EDGEFLOW_PPROF=%q: /debug/pprof/ answered %d, want %d", env, resp.StatusCode, want)
		}
	}
}
