package devenv

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// StartAlertmanager runs the Alertmanager that scripts/install-alertmanager.sh
// builds, of the pinned version, on its own loopback port, with the
// configuration it writes (resolve_timeout, a webhook receiver); Stop ends it
// by PID.
func TestAlertmanager(t *testing.T) {
	_, err := AlertmanagerBinary()
	RequireInstalled(t, err)
	hook := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hook <- string(b)
	}))
	defer srv.Close()

	began := time.Now()
	p, err := StartAlertmanager(t.Context(), AlertmanagerOptions{Dir: t.TempDir(), ResolveTimeout: 90 * time.Second, WebhookURL: srv.URL + "/am"})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)
	t.Logf("alertmanager ready at %s in %s", p.URL, time.Since(began).Round(time.Millisecond))

	var status struct {
		VersionInfo map[string]string `json:"versionInfo"`
		Cluster     struct{ Status string }
		Config      struct{ Original string }
	}
	resp, err := http.Get(p.URL + "/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if status.VersionInfo["version"] != AlertmanagerVersion || status.Cluster.Status != "disabled" ||
		!strings.Contains(status.Config.Original, "resolve_timeout: 1m30s") {
		t.Fatalf("status: version %v, cluster %q, config:\n%s", status.VersionInfo, status.Cluster.Status, status.Config.Original)
	}

	// An alert posted is routed to the webhook.
	resp, err = http.Post(p.URL+"/api/v2/alerts", "application/json", strings.NewReader(`[{"labels": {"alertname": "devenv"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post alert: %s", resp.Status)
	}
	select {
	case body := <-hook:
		if !strings.Contains(body, `"alertname":"devenv"`) || !strings.Contains(body, `"status":"firing"`) {
			t.Fatalf("webhook got %s", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook receiver got nothing")
	}

	pid := p.Pid()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !pidGone(pid) {
		t.Fatalf("alertmanager pid %d still alive after Stop", pid)
	}
}

// A missing binary is ErrNotInstalled, which RequireInstalled turns into a
// skip on a developer's machine and a failure in CI, and says what to run.
func TestAlertmanagerMissing(t *testing.T) {
	t.Setenv("EDGEFLOW_ALERTMANAGER", t.TempDir()+"/alertmanager")
	_, err := StartAlertmanager(t.Context(), AlertmanagerOptions{Dir: t.TempDir()})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "scripts/install-alertmanager.sh") {
		t.Fatalf("missing binary: %v", err)
	}
}
