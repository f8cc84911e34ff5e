package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"valid", Config{URL: "nats://127.0.0.1:4222", ConnectTimeout: time.Second}, ""},
		{"empty URL", Config{ConnectTimeout: time.Second}, "EDGEFLOW_NATS_URL"},
		{"zero timeout", Config{URL: "nats://x:4222"}, "EDGEFLOW_NATS_CONNECT_TIMEOUT"},
		{"negative timeout", Config{URL: "nats://x:4222", ConnectTimeout: -time.Second}, "EDGEFLOW_NATS_CONNECT_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:s3cret@nats:4222", "nats://***@nats:4222"},
		{"nats://token@nats:4222", "nats://***@nats:4222"},
		{"tls://user:s3cret@nats.example.com:4443", "tls://***@nats.example.com:4443"},
		{"nats://user:s3cret@nats:4222/path", "nats://***@nats:4222/path"},
		{"nats://nats:4222/a@b", "nats://***@b"}, // could be a password holding '/': hidden (secure.RedactURLs)
		{"nats://a:4222,nats://b:4222", "nats://a:4222,nats://b:4222"},
		{"nats://a:4222,nats://user:s3cret@b:4222", "nats://a:4222,nats://***@b:4222"},
		{"127.0.0.1:4222", "127.0.0.1:4222"},
		{"", ""},
		{"://", "://"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRedactHidesCredentialsOfEveryServer: EDGEFLOW_NATS_URL is documented as
// "NATS server URL(s), comma-separated", and each URL of a cluster usually
// carries the same user:password. redact stops after the first '@' it
// rewrites, so the second and later servers' credentials reach the logs.
func TestRedactHidesCredentialsOfEveryServer(t *testing.T) {
	in := "nats://user:s3cret@n1:4222,nats://user:s3cret@n2:4222,nats://user:s3cret@n3:4222"
	got := redact(in)
	if strings.Contains(got, "s3cret") {
		t.Fatalf("redact(%q) = %q: a password is still visible", in, got)
	}
	if want := "nats://***@n1:4222,nats://***@n2:4222,nats://***@n3:4222"; got != want {
		t.Fatalf("redact(%q) = %q, want %q", in, got, want)
	}
}

// TestRedactHidesPasswordContainingAt: url.Parse, which nats.go uses, takes
// the userinfo up to the last '@' of the authority, so an unescaped '@' in a
// password is accepted by Connect. redact cuts at the first '@' and leaves
// the rest of the password in the log.
func TestRedactHidesPasswordContainingAt(t *testing.T) {
	in := "nats://edge:p@ss@nats:4222"
	if got, want := redact(in), "nats://***@nats:4222"; got != want {
		t.Fatalf("redact(%q) = %q, want %q", in, got, want)
	}
}

// TestConnectFailsWithinTimeout: nothing listens, so Connect gives up after
// ConnectTimeout with an error that says what it tried, without the password.
func TestConnectFailsWithinTimeout(t *testing.T) {
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: fmt.Sprintf("nats://edge:s3cret@127.0.0.1:%d", port), ConnectTimeout: time.Second}
	start := time.Now()
	nc, js, err := Connect(t.Context(), quiet, cfg, "bus-test")
	elapsed := time.Since(start)
	if err == nil {
		nc.Close()
		t.Fatal("Connect to a closed port succeeded")
	}
	if nc != nil || js != nil {
		t.Fatal("Connect returned a connection with its error")
	}
	if elapsed < 900*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("Connect gave up after %v, want about the 1s ConnectTimeout", elapsed)
	}
	msg := err.Error()
	if !strings.Contains(msg, "connect to NATS") || !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d", port)) {
		t.Fatalf("error %q does not say what it connected to", msg)
	}
	if strings.Contains(msg, "s3cret") {
		t.Fatalf("error %q leaks the password", msg)
	}
}

func TestConnectStopsWhenContextEnds(t *testing.T) {
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = Connect(ctx, quiet, Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), ConnectTimeout: time.Minute}, "bus-test")
	if err == nil {
		t.Fatal("Connect succeeded with nothing listening")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("Connect ignored its context: returned after %v", elapsed)
	}
}

// TestConnectWaitsForLateServer: at start-up NATS may come up after the
// service; Connect retries until it does.
func TestConnectWaitsForLateServer(t *testing.T) {
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		err error
		ok  bool
	}
	done := make(chan result, 1)
	go func() {
		nc, _, err := Connect(t.Context(), quiet, Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", port), ConnectTimeout: 10 * time.Second}, "bus-test")
		if err == nil {
			defer nc.Close()
		}
		done <- result{err, err == nil && nc.IsConnected()}
	}()
	time.Sleep(700 * time.Millisecond)
	s, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: t.TempDir(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	select {
	case r := <-done:
		if r.err != nil || !r.ok {
			t.Fatalf("Connect to a server that came up late: %v", r.err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Connect did not return after the server came up")
	}
}

// TestReadyFollowsConnection: Ready reports a lost connection, and the
// connection comes back by itself when the server does.
func TestReadyFollowsConnection(t *testing.T) {
	ctx := t.Context()
	storeDir := t.TempDir()
	s, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	port := serverPort(t, s)
	nc, _, err := Connect(ctx, quiet, Config{URL: s.ClientURL(), ConnectTimeout: 5 * time.Second}, "bus-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ready := Ready(nc)
	if err := ready(ctx); err != nil {
		t.Fatalf("Ready() on a live connection = %v", err)
	}

	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, 5*time.Second, "Ready() to report the disconnection", func() bool { return ready(ctx) != nil })
	err = ready(ctx)
	if !strings.Contains(err.Error(), "nats") {
		t.Fatalf("Ready() = %q: does not say what is wrong", err)
	}

	s, err = devenv.StartNATS(devenv.NATSOptions{StoreDir: storeDir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	waitFor(t, 10*time.Second, "the connection to come back", func() bool { return ready(ctx) == nil })
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConnectErrorHidesPasswordsOfEveryServer is the user-visible effect of
// the redact bug above: with a comma-separated EDGEFLOW_NATS_URL, the start-up
// error that services log (and print through service.Fatal) shows the
// password of every server but the first.
func TestConnectErrorHidesPasswordsOfEveryServer(t *testing.T) {
	ports, err := devenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("nats://edge:s3cret@127.0.0.1:%d,nats://edge:s3cret@127.0.0.1:%d", ports[0], ports[1])
	_, _, err = Connect(t.Context(), quiet, Config{URL: url, ConnectTimeout: time.Second}, "bus-test")
	if err == nil {
		t.Fatal("Connect with nothing listening succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Connect error leaks a password: %q", err)
	}
}
