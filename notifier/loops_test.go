package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/bus"
)

// A loop whose consumer is deleted under a running notifier (by an
// operator, or lost by the server) is started again, and the replica says
// it is not ready until it runs: first a channel's delivery consumer, then
// the aggregates consumer. What was queued meanwhile is delivered, and
// windows are evaluated again.
func TestLoopsRestartWhenTheirConsumerIsDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeRules(hotRules)
	r := e.start("a")
	base := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)
	e.window("warehouse", "wh-01", "10s", base, map[string]float64{"temperature": 45})
	e.hook.waitFor(t, 1, 10*time.Second)

	// The hook channel's consumer goes; a notification queued meanwhile
	// is delivered once the loop runs again.
	watch := r.watchReadiness()
	if err := e.js.DeleteConsumer(t.Context(), bus.StreamNotifications, "deliver-hook"); err != nil {
		t.Fatal(err)
	}
	e.window("warehouse", "wh-02", "10s", base, map[string]float64{"temperature": 45})
	// A pull sent after the deletion is seen only by missing heartbeats
	// (2 × half the 5 s expiry).
	delivered := within(15*time.Second, func() bool { return len(e.hook.delivered()) >= 2 })
	down := watch.stop()
	if !delivered {
		t.Errorf("delivery consumer deleted: %d notifications delivered after 15s, want 2 (the loop was not restarted)", len(e.hook.delivered()))
	}
	checkReportedDown(t, "deliver-hook", down)

	// The aggregates consumer goes: windows are read again once the
	// replica is ready (a new consumer starts at new windows).
	watch = r.watchReadiness()
	if err := e.js.DeleteConsumer(t.Context(), bus.StreamAggregates, ConsumerAggregates); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the reader sees its consumer gone
	ready := within(10*time.Second, func() bool { return r.ready() })
	down = watch.stop()
	checkReportedDown(t, "aggregates", down)
	if !ready {
		t.Fatal("not ready again 10s after the aggregates consumer was deleted")
	}
	e.window("warehouse", "wh-01", "10s", base.Add(10*time.Second), map[string]float64{"temperature": 30}) // resolves
	if !within(10*time.Second, func() bool { return len(e.hook.delivered()) >= 3 }) {
		t.Errorf("aggregates consumer deleted: %d notifications after 10s, want 3 (windows no longer evaluated)", len(e.hook.delivered()))
	}
	exactlyOnce(t, e.hook.delivered())
	if v := r.metric(t, `edgeflow_notifier_loop_restarts_total{loop="deliver-hook"}`); v < 1 {
		t.Errorf("deliver-hook restarts = %v, want at least 1", v)
	}
	if v := r.metric(t, `edgeflow_notifier_loop_restarts_total{loop="aggregates"}`); v < 1 {
		t.Errorf("aggregates restarts = %v, want at least 1", v)
	}
}

// checkReportedDown checks that /readyz answered 503 naming the loop.
func checkReportedDown(t *testing.T, loop string, bodies []string) {
	t.Helper()
	for _, b := range bodies {
		if strings.Contains(b, loop) {
			t.Logf("while %s was down, /readyz said: %s", loop, strings.TrimSpace(b))
			return
		}
	}
	t.Errorf("/readyz never reported %s down (not-ready answers: %q)", loop, bodies)
}

// within reports whether cond became true within d.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// ready reports whether /readyz answers 200.
func (r *replica) ready() bool {
	resp, err := http.Get(r.base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// readinessWatch polls /readyz and keeps the bodies of its not-ready answers.
type readinessWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	down []string
}

func (r *replica) watchReadiness() *readinessWatch {
	w := &readinessWatch{done: make(chan struct{})}
	w.wg.Go(func() {
		for {
			select {
			case <-w.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			resp, err := http.Get(r.base + "/readyz")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				w.mu.Lock()
				w.down = append(w.down, string(body))
				w.mu.Unlock()
			}
		}
	})
	return w
}

// stop ends the watch and returns the not-ready answers.
func (w *readinessWatch) stop() []string {
	close(w.done)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down
}
