package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/service"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitHTTP polls url until it answers.
func waitHTTP(t *testing.T, url string) *http.Response {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGroupFailedPartStopsWorkAndOthers(t *testing.T) {
	g, work := service.NewGroup(context.Background())
	boom := errors.New("boom")
	otherStopped := make(chan struct{})
	g.Go(func(ctx context.Context) error {
		<-ctx.Done()
		close(otherStopped)
		return nil
	})
	g.Go(func(context.Context) error { return boom })

	select {
	case <-work.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a failed part did not end the work's context")
	}
	select {
	case <-otherStopped:
		t.Fatal("the other parts stopped before the work returned")
	default:
	}
	err := g.Wait(errors.New("work: " + work.Err().Error()))
	if !errors.Is(err, boom) {
		t.Fatalf("Wait = %v, want the failed part's error", err)
	}
	select {
	case <-otherStopped:
	default:
		t.Fatal("Wait returned before the other parts stopped")
	}
	if err := g.Wait(nil); !errors.Is(err, boom) {
		t.Fatalf("second Wait = %v, want the same error", err)
	}
}

func TestGroupReturnsWorkError(t *testing.T) {
	g, _ := service.NewGroup(context.Background())
	g.Go(func(ctx context.Context) error { <-ctx.Done(); return nil })
	want := errors.New("drain timed out")
	if err := g.Wait(want); !errors.Is(err, want) {
		t.Fatalf("Wait = %v, want the work's error", err)
	}
}

func TestGroupPartAfterWaitSeesEndedContext(t *testing.T) {
	g, _ := service.NewGroup(context.Background())
	if err := g.Wait(nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	g.Go(func(ctx context.Context) error { <-ctx.Done(); done <- ctx.Err(); return nil })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a part started after Wait kept running")
	}
}

// SIGTERM (the parent context ending) drains the work while the HTTP server
// still answers; the server stops only in Wait.
func TestGroupServesUntilWorkDrained(t *testing.T) {
	addr := freeAddr(t)
	parent, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	g, work := service.NewGroup(parent)
	var draining atomic.Bool
	health := service.NewHealth()
	health.AddCheck("draining", func(context.Context) error {
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	})
	g.Serve(quiet, addr, service.Handler(health, service.NewRegistry()))
	waitHTTP(t, "http://"+addr+"/healthz").Body.Close()

	sigterm()
	<-work.Done()
	draining.Store(true)
	// Work in hand is finishing: the server answers throughout.
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz while draining: %v", err)
	}
	var body struct {
		Failed map[string]string `json:"failed"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Failed["draining"] == "" {
		t.Fatalf("/readyz while draining = %d %v", resp.StatusCode, body.Failed)
	}

	if err := g.Wait(nil); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("the server still answers after Wait")
	}
}

func TestGroupServeListenFailureStopsWork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g, work := service.NewGroup(context.Background())
	g.Serve(quiet, ln.Addr().String(), http.NotFoundHandler())
	select {
	case <-work.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a server that cannot listen did not stop the work")
	}
	if err := g.Wait(nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Wait = %v, want the listen error", err)
	}
}

func TestStartup(t *testing.T) {
	health := service.NewHealth()
	startup := health.Starting()
	if got := health.Ready(context.Background())["startup"]; got != "starting" {
		t.Fatalf("startup before any attempt = %q, want starting", got)
	}
	attempts := 0
	var seen string
	err := startup.Await(context.Background(), quiet, func(context.Context) error {
		attempts++
		if attempts == 1 {
			return errors.New("stream TELEMETRY not found")
		}
		// The failed attempt is what /readyz reports meanwhile.
		seen = health.Ready(context.Background())["startup"]
		return nil
	})
	if err != nil || attempts != 2 {
		t.Fatalf("Await = %v after %d attempts", err, attempts)
	}
	if seen != "stream TELEMETRY not found" {
		t.Fatalf("startup while waiting = %q", seen)
	}
	if got := health.Ready(context.Background())["startup"]; got == "" {
		t.Fatal("Await marked the service started; only Done does")
	}
	startup.Done()
	if failed := health.Ready(context.Background()); len(failed) != 0 {
		t.Fatalf("after Done: %v", failed)
	}
}

func TestStartupAwaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	startup := service.NewHealth().Starting()
	done := make(chan error, 1)
	go func() {
		done <- startup.Await(ctx, quiet, func(context.Context) error { return errors.New("down") })
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Await = nil after its context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Await did not return when its context ended")
	}
}

func TestDrain(t *testing.T) {
	ctx, sigterm := context.WithCancel(context.Background())
	d := service.NewDrain(ctx, 50*time.Millisecond)
	defer d.Stop()
	sigterm()
	// Work in hand goes on after SIGTERM...
	if d.Context().Err() != nil || d.Err("lost") != nil {
		t.Fatal("the drain ended with SIGTERM")
	}
	// ...until the timeout.
	select {
	case <-d.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not end after its timeout")
	}
	err := d.Err("what was in hand is redelivered")
	if err == nil || err.Error() != "drain timed out after 50ms; what was in hand is redelivered" {
		t.Fatalf("Err = %v", err)
	}
}

func TestDrainNoTimeoutWithoutSignal(t *testing.T) {
	d := service.NewDrain(context.Background(), time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if d.Context().Err() != nil {
		t.Fatal("the drain ended without SIGTERM")
	}
	d.Stop()
	if d.Context().Err() == nil {
		t.Fatal("Stop did not end the drain's context")
	}
	if err := d.Err("lost"); err != nil {
		t.Fatalf("Err after Stop = %v, want nil: the drain did not time out", err)
	}
}
