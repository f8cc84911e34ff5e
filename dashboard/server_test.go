package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/dashboard/live"
)

// Live connections arriving together never exceed the cap: each one takes
// a place or is refused with 503, in one step.
func TestLiveClientCapHoldsUnderConcurrentConnects(t *testing.T) {
	const limit, callers, rounds = 2, 32, 50
	for round := range rounds {
		d := &Dashboard{cfg: Config{MaxClients: limit}, log: slog.New(slog.DiscardHandler),
			hub: live.NewHub(live.Options{}, nil)}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var refused atomic.Int64
		start := make(chan struct{})
		for range callers {
			wg.Go(func() {
				rec := httptest.NewRecorder()
				<-start
				d.apiEvents(rec, httptest.NewRequest(http.MethodGet, "/api/events?view=alerts", nil).WithContext(ctx))
				if rec.Code == http.StatusServiceUnavailable {
					refused.Add(1)
				}
			})
		}
		close(start)
		deadline := time.Now().Add(5 * time.Second)
		for int(refused.Load())+d.hub.Clients() < callers && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		admitted := d.hub.Clients()
		cancel()
		wg.Wait()
		if admitted > limit {
			t.Fatalf("round %d: %d live clients admitted at once, cap %d (%d refused)", round, admitted, limit, refused.Load())
		}
		if admitted+int(refused.Load()) != callers {
			t.Fatalf("round %d: %d admitted + %d refused, want %d", round, admitted, refused.Load(), callers)
		}
	}
}
