package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/service"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHealthz(t *testing.T) {
	health := service.NewHealth()
	// Liveness does not depend on readiness.
	health.AddCheck("nats", func(context.Context) error { return errors.New("down") })
	h := service.Handler(health, service.NewRegistry())
	rec := get(t, h, http.MethodGet, "/healthz")
	if rec.Code != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200", rec.Code)
	}
	if strings.TrimSpace(rec.Body.String()) != "ok" {
		t.Fatalf("/healthz body = %q", rec.Body)
	}
	if rec := get(t, h, http.MethodPost, "/healthz"); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d, want 405", rec.Code)
	}
	if rec := get(t, h, http.MethodGet, "/nope"); rec.Code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", rec.Code)
	}
}

type readyBody struct {
	Status string            `json:"status"`
	Failed map[string]string `json:"failed"`
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	fail := func(msg string) service.Check {
		return func(context.Context) error { return errors.New(msg) }
	}
	tests := []struct {
		name       string
		checks     map[string]service.Check
		wantCode   int
		wantStatus string
		wantFailed map[string]string
	}{
		{"no checks", nil, http.StatusOK, "ready", map[string]string{}},
		{"all pass", map[string]service.Check{"nats": ok, "influxdb": ok}, http.StatusOK, "ready", map[string]string{}},
		{"one fails", map[string]service.Check{"nats": fail("nats RECONNECTING"), "influxdb": ok},
			http.StatusServiceUnavailable, "not ready", map[string]string{"nats": "nats RECONNECTING"}},
		{"all fail", map[string]service.Check{"nats": fail("nats CLOSED"), "influxdb": fail(`write "x": 503`)},
			http.StatusServiceUnavailable, "not ready", map[string]string{"nats": "nats CLOSED", "influxdb": `write "x": 503`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			health := service.NewHealth()
			for name, c := range tt.checks {
				health.AddCheck(name, c)
			}
			rec := get(t, service.Handler(health, service.NewRegistry()), http.MethodGet, "/readyz")
			if rec.Code != tt.wantCode {
				t.Fatalf("/readyz = %d, want %d (body %s)", rec.Code, tt.wantCode, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
			var body readyBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("/readyz body %q: %v", rec.Body, err)
			}
			if body.Status != tt.wantStatus {
				t.Fatalf("status = %q, want %q", body.Status, tt.wantStatus)
			}
			if len(body.Failed) != len(tt.wantFailed) {
				t.Fatalf("failed = %v, want %v", body.Failed, tt.wantFailed)
			}
			for k, v := range tt.wantFailed {
				if body.Failed[k] != v {
					t.Fatalf("failed = %v, want %v", body.Failed, tt.wantFailed)
				}
			}
		})
	}
}

// TestReadyzFollowsChecks: readiness is evaluated on every request, so a
// dependency that recovers makes the service ready again, and a re-added
// check replaces the old one.
func TestReadyzFollowsChecks(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	health := service.NewHealth()
	health.AddCheck("nats", func(context.Context) error {
		if down.Load() {
			return errors.New("nats RECONNECTING")
		}
		return nil
	})
	h := service.Handler(health, service.NewRegistry())
	if rec := get(t, h, http.MethodGet, "/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while down = %d", rec.Code)
	}
	down.Store(false)
	if rec := get(t, h, http.MethodGet, "/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("/readyz after recovery = %d", rec.Code)
	}
	health.AddCheck("nats", func(context.Context) error { return errors.New("replaced") })
	rec := get(t, h, http.MethodGet, "/readyz")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "replaced") {
		t.Fatalf("/readyz after replacing the check = %d %s", rec.Code, rec.Body)
	}
}

// TestReadyzCheckGetsDeadline: a check is given a context with a deadline,
// so one that hangs on a dead dependency cannot hang the probe.
func TestReadyzCheckGetsDeadline(t *testing.T) {
	var deadline atomic.Value
	health := service.NewHealth()
	health.AddCheck("slow", func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		deadline.Store(ok)
		if ok && time.Until(d) > 2*time.Second {
			return errors.New("deadline too far")
		}
		return nil
	})
	rec := get(t, service.Handler(health, service.NewRegistry()), http.MethodGet, "/readyz")
	if ok, _ := deadline.Load().(bool); !ok {
		t.Fatal("check ran without a deadline")
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("/readyz = %d %s", rec.Code, rec.Body)
	}
}

func TestMetrics(t *testing.T) {
	reg := service.NewRegistry()
	p := service.NewPipeline(reg, "ingest")
	p.In.Add(3)
	p.Out.Add(2)
	p.Dropped.WithLabelValues("duplicate").Inc()
	p.DeadLettered.WithLabelValues("invalid_json").Add(4)
	p.Retries.WithLabelValues("publish").Inc()
	p.Backlog.Set(7)

	rec := get(t, service.Handler(service.NewHealth(), reg), http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	samples := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		samples[line[:i]] = line[i+1:]
	}
	for name, want := range map[string]string{
		"edgeflow_ingest_messages_in_total":                                  "3",
		"edgeflow_ingest_messages_out_total":                                 "2",
		`edgeflow_ingest_messages_dropped_total{reason="duplicate"}`:         "1",
		`edgeflow_ingest_messages_deadlettered_total{reason="invalid_json"}`: "4",
		`edgeflow_ingest_retries_total{op="publish"}`:                        "1",
		"edgeflow_ingest_backlog":                                            "7",
	} {
		if got, ok := samples[name]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %s", name, got, ok, want)
		}
	}
	// The runtime and process collectors carry RSS and GC figures.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if _, ok := samples[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for _, help := range []string{
		"# TYPE edgeflow_ingest_messages_in_total counter",
		"# TYPE edgeflow_ingest_backlog gauge",
	} {
		if !strings.Contains(body, help) {
			t.Errorf("/metrics lacks %q", help)
		}
	}
}

func TestNewPipelinePerService(t *testing.T) {
	reg := service.NewRegistry()
	service.NewPipeline(reg, "ingest").In.Inc()
	service.NewPipeline(reg, "processor").In.Inc()
	body := get(t, service.Handler(service.NewHealth(), reg), http.MethodGet, "/metrics").Body.String()
	for _, want := range []string{"edgeflow_ingest_messages_in_total 1", "edgeflow_processor_messages_in_total 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Registering one service's counters twice is a programming error.
	defer func() {
		if recover() == nil {
			t.Fatal("registering the same pipeline twice did not panic")
		}
	}()
	service.NewPipeline(reg, "ingest")
}

// addrLogger captures the address Serve logs, so tests can serve on port 0.
type addrLogger struct{ addrs chan string }

func (a addrLogger) Write(p []byte) (int, error) {
	var rec struct{ Msg, Addr string }
	if json.Unmarshal(p, &rec) == nil && rec.Addr != "" {
		select {
		case a.addrs <- rec.Addr:
		default:
		}
	}
	return len(p), nil
}

// serve runs Serve on a random port and returns its base URL and result.
func serve(t *testing.T, ctx context.Context, h http.Handler) (string, <-chan error) {
	t.Helper()
	logs := addrLogger{addrs: make(chan string, 1)}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	errc := make(chan error, 1)
	go func() { errc <- service.Serve(ctx, log, "127.0.0.1:0", h) }()
	select {
	case addr := <-logs.addrs:
		return "http://" + addr, errc
	case err := <-errc:
		t.Fatalf("Serve returned before listening: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not log its address")
	}
	return "", nil
}

func TestServeShutsDownWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base, errc := serve(t, ctx, service.Handler(service.NewHealth(), service.NewRegistry()))

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz over HTTP = %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve after ctx ended = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener is still open after Serve returned")
	}
}

// TestServeDrainsInFlightRequests: on SIGTERM a request being served
// completes before Serve returns.
func TestServeDrainsInFlightRequests(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base, errc := serve(t, ctx, mux)

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: body %q, err %v", r.body, r.err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

// An idle keep-alive connection is closed after the idle timeout instead of
// being held for ever.
func TestServeClosesIdleConnections(t *testing.T) {
	service.SetIdleTimeout(t, 300*time.Millisecond)
	base, _ := serve(t, t.Context(), service.Handler(service.NewHealth(), service.NewRegistry()))
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The connection stays open for keep-alive, then idles.
	start := time.Now()
	c.SetReadDeadline(start.Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection after %s: read %v, want EOF (closed by the server)", time.Since(start).Round(time.Millisecond), err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("closed after %s, before the idle timeout", d)
	}
}

func TestServeBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		done <- service.Serve(t.Context(), slog.New(slog.DiscardHandler), ln.Addr().String(), http.NotFoundHandler())
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve on a busy address = nil")
		}
		if !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Fatalf("Serve error %q does not name the address", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve on a busy address did not return")
	}
}

func TestServeInvalidAddress(t *testing.T) {
	err := service.Serve(t.Context(), slog.New(slog.DiscardHandler), "127.0.0.1:notaport", http.NotFoundHandler())
	if err == nil {
		t.Fatal("Serve on an invalid address = nil")
	}
}
