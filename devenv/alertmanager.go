package devenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// AlertmanagerVersion is the Alertmanager that scripts/install-alertmanager.sh
// builds and the notifier's alertmanager channel is tested against.
const AlertmanagerVersion = "0.35.0"

// alertmanagerConfig is the configuration StartAlertmanager writes when
// given none: alerts without an end time resolve after resolve_timeout, and
// every alert, grouped per rule and device, goes to one receiver: nothing,
// or a webhook (firing and resolved), notified within about a second.
func alertmanagerConfig(resolveTimeout time.Duration, webhook string) string {
	receiver := "  - name: default\n"
	if webhook != "" {
		receiver += "    webhook_configs:\n      - url: " + strconv.Quote(webhook) + "\n        send_resolved: true\n"
	}
	return fmt.Sprintf(`global:
  resolve_timeout: %s
route:
  receiver: default
  group_by: [alertname, site, device]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
%s`, resolveTimeout, receiver)
}

// AlertmanagerOptions describe an Alertmanager for StartAlertmanager.
type AlertmanagerOptions struct {
	// Bin is the executable; empty means AlertmanagerBinary().
	Bin string
	// Dir holds the configuration file (alertmanager.yml), the data
	// directory (data/: silences, notification log) and the log. Required.
	Dir string
	// Port is the HTTP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Config is the configuration file's content. Empty means one route to
	// one receiver, with ResolveTimeout and WebhookURL.
	Config string
	// ResolveTimeout is how long an alert sent without endsAt stays active
	// (0: 5m, Alertmanager's default).
	ResolveTimeout time.Duration
	// WebhookURL, when set, receives Alertmanager's notifications (its
	// webhook_config, send_resolved: true): what a receiver of Alertmanager
	// would get.
	WebhookURL string
}

// AlertmanagerBinary returns $EDGEFLOW_ALERTMANAGER if set, else
// <repo>/.bin/alertmanager, where scripts/install-alertmanager.sh builds it.
func AlertmanagerBinary() (string, error) {
	bin := os.Getenv("EDGEFLOW_ALERTMANAGER")
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("find alertmanager: %w", err)
		}
		bin = filepath.Join(root, ".bin", "alertmanager")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("alertmanager %w at %s: run scripts/install-alertmanager.sh (go tool task alertmanager; or set EDGEFLOW_ALERTMANAGER)",
			ErrNotInstalled, bin)
	}
	return bin, nil
}

// StartAlertmanager starts Alertmanager on 127.0.0.1 with clustering off
// (no gossip port) and waits until GET /-/ready answers. The returned
// Process has Addr and URL (http://host:port, the base of /api/v2/); Stop
// ends it by PID. Restart brings it back on the same port with its silences
// (alerts themselves are kept in memory only, as in production).
func StartAlertmanager(ctx context.Context, opts AlertmanagerOptions) (*Process, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("start alertmanager: no Dir")
	}
	if opts.Bin == "" {
		bin, err := AlertmanagerBinary()
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	if opts.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("start alertmanager: %w", err)
		}
		opts.Port = port
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	config := opts.Config
	if config == "" {
		timeout := opts.ResolveTimeout
		if timeout <= 0 {
			timeout = 5 * time.Minute
		}
		config = alertmanagerConfig(timeout, opts.WebhookURL)
	}
	configPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
	baseURL := "http://" + addr
	return StartProcess(ctx, ProcessOptions{
		Name: "alertmanager",
		Bin:  opts.Bin,
		Args: []string{
			"--config.file=" + configPath,
			"--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr,
			// An empty address turns the HA gossip off: no second port, no
			// waiting for peers before notifying.
			"--cluster.listen-address=",
			"--log.level=info",
		},
		Dir:      dir,
		Addr:     addr,
		URL:      baseURL,
		ReadyURL: baseURL + "/-/ready",
	})
}
