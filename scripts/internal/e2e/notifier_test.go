package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// hookNotification is the part of the notifier's webhook body the test reads.
type hookNotification struct {
	ID     string  `json:"id"`
	Rule   string  `json:"rule"`
	Device string  `json:"device"`
	State  string  `json:"state"`
	Value  float64 `json:"value"`
}

// Readings through the whole pipeline (Mosquitto → ingest → processor →
// notifier → webhook) fire one notification per transition: a device whose
// 2 s mean goes above 40 fires and resolves, a device that goes silent is
// declared offline and back. A live device's last closed window lags its
// readings by up to a window plus the lateness plus a flush (2 + 2 + 0.3 s
// here), so the offline rule allows 8 s.
func TestNotifierThroughThePipeline(t *testing.T) {
	p := newPipeline(t, options{})
	p.startIngest("ingest")
	p.startProcessor("p1")

	var mu sync.Mutex
	var got []hookNotification
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n hookNotification
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer hook.Close()
	delivered := func() []hookNotification {
		mu.Lock()
		defer mu.Unlock()
		return append([]hookNotification(nil), got...)
	}
	waitFor := func(what string, within time.Duration, cond func([]hookNotification) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond(delivered()) {
			if time.Now().After(deadline) {
				t.Fatalf("after %s: no %s; notifications: %+v", within, what, delivered())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	has := func(rule, state string) func([]hookNotification) bool {
		return func(ns []hookNotification) bool {
			for _, n := range ns {
				if n.Rule == rule && n.State == state {
					return true
				}
			}
			return false
		}
	}

	rules := hookRules(t, "e2e", `
  - name: quiet-offline
    type: offline
    site: e2e
    device: quiet
    after: 8s
    channels: [hook]
`)
	p.startNotifier(rules, "EDGEFLOW_E2E_HOOK_URL="+hook.URL)

	c := mqttClient(t, p.mqttURL, "e2e-notifier-devices")
	send := func(device string, v float64) {
		publish(t, c, "sensors/e2e/"+device, fmt.Sprintf(`{"ts":%d,"temperature":%g}`, time.Now().UnixMilli(), v))
	}
	began := time.Now()
	// hot runs at 45 °C; quiet talks for two seconds, then goes silent.
	for i := 0; i < 30 && !(has("hot", "firing")(delivered()) && i > 10); i++ {
		send("hot", 45)
		if i < 10 {
			send("quiet", 20)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitFor("hot firing", 20*time.Second, has("hot", "firing"))
	t.Logf("hot fired %s after its first reading", time.Since(began).Round(time.Millisecond))
	waitFor("quiet offline", 30*time.Second, has("quiet-offline", "firing"))
	t.Logf("quiet declared offline %s after its first reading (silent after 2 s, after: 8s)", time.Since(began).Round(time.Millisecond))

	// hot cools down and quiet talks again.
	for i := 0; i < 50 && !(has("hot", "resolved")(delivered()) && has("quiet-offline", "resolved")(delivered())); i++ {
		send("hot", 20)
		send("quiet", 20)
		time.Sleep(200 * time.Millisecond)
	}
	waitFor("hot resolved", 20*time.Second, has("hot", "resolved"))
	waitFor("quiet back", 20*time.Second, has("quiet-offline", "resolved"))
	time.Sleep(2 * time.Second) // nothing more comes

	ns := delivered()
	seen := map[string]bool{}
	for _, n := range ns {
		if seen[n.ID] {
			t.Errorf("notification %s delivered twice", n.ID)
		}
		seen[n.ID] = true
	}
	if len(ns) != 4 {
		t.Fatalf("%d notifications, want 4 (hot firing and resolved, quiet offline and back): %+v", len(ns), ns)
	}
}

// hookRules writes a rules file whose channel "hook" is the webhook at
// $EDGEFLOW_E2E_HOOK_URL, with the rule "hot" (temperature of site/hot
// above 40 in 2 s windows, clear below 35) and then more, YAML list items
// of rules; it returns the file's path.
func hookRules(t *testing.T, site, more string) string {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(`
channels:
  hook: {type: webhook, url_env: EDGEFLOW_E2E_HOOK_URL, retry_initial: 100ms, retry_max: 1s}
rules:
  - name: hot
    site: `+site+`
    device: hot
    metric: temperature
    window: 2s
    op: ">"
    threshold: 40
    clear: 35
    channels: [hook]
`+more), 0o644); err != nil {
		t.Fatal(err)
	}
	return rules
}
