package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// hookEnv names the webhook URL in the notifier's rules (url_env).
const hookEnv = "EDGEFLOW_CHAOS_HOOK_URL"

// delivery is one webhook request the receiver answered.
type delivery struct {
	ID     string `json:"id"`
	Rule   string `json:"rule"`
	Site   string `json:"site"`
	Device string `json:"device"`
	State  string `json:"state"`
	Seq    uint64 `json:"seq"`
	Repeat bool   `json:"repeat"`
	at     time.Time
}

// transition names the alert change a notification is about: one per
// alert (rule, site, device) and sequence number.
func (d delivery) transition() string {
	return fmt.Sprintf("%s/%s/%s#%d", d.Rule, d.Site, d.Device, d.Seq)
}

// receiver is the webhook the notifier delivers to: it answers 200 to every
// notification and records it.
type receiver struct {
	srv *http.Server
	url string

	mu  sync.Mutex
	got []delivery
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &receiver{url: "http://" + l.Addr().String() + "/hook"}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(l)
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	var d delivery
	if err == nil {
		err = json.Unmarshal(body, &d)
	}
	if err != nil || d.ID == "" {
		http.Error(w, fmt.Sprintf("not a notification: %v", err), http.StatusBadRequest)
		return
	}
	d.at = time.Now()
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *receiver) close() { _ = r.srv.Close() }

// writeRules writes the notifier's rules: one threshold rule on the last
// temperature of a 10-device subset in the shortest window. The load
// generator's values are a hash of device and seq spread over 10.0-30.0 °C,
// so a window's last reading crosses 28 and falls back under 15 every few
// windows: the rule fires and resolves throughout the run.
func writeRules(dir, window string) (string, error) {
	rules := fmt.Sprintf(`channels:
  hook: {type: webhook, url_env: %s, retry_initial: 200ms, retry_max: 2s}
rules:
  - name: chaos-hot
    device: "dev-000*"
    metric: temperature
    aggregate: last
    window: %s
    op: ">"
    threshold: 28
    clear: 15
    channels: [hook]
`, hookEnv, window)
	path := filepath.Join(dir, "rules.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(rules), 0o644)
}
