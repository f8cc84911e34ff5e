package bus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
)

// A user NKey made for these tests only (nkeys.CreateUser).
const (
	testNKeySeed   = "SUAJILACAKNNQA6XAOXJREBN2T7APJWSGR6DJWYH7IOT6PB6YPXHH5HYCE"
	testNKeyPublic = "UBGJLQOMSLXAJIJC3JYGOWLPGUTKZLCWSAJKYA3FN7WY2TV34DXA32XL"
	// testPassword is distinctive, so a test can tell it never leaks.
	testPassword = "pw-9f3b2e7d-never-shown"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidateAuth(t *testing.T) {
	dir := t.TempDir()
	certs, err := devenv.WriteTestCerts(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	seed := writeFile(t, dir, "seed", testNKeySeed+"\n")
	notSeed := writeFile(t, dir, "not-a-seed", "no seed here "+testPassword+"\n")
	missing := filepath.Join(dir, "missing")
	base := Config{URL: "nats://127.0.0.1:4222", ConnectTimeout: time.Second}
	with := func(f func(*Config)) Config { c := base; f(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"user and password", with(func(c *Config) { c.User, c.Password = "ingest", testPassword }), ""},
		{"nkey", with(func(c *Config) { c.NKey = seed }), ""},
		{"creds", with(func(c *Config) { c.Creds = seed }), ""},
		{"tls CA only", with(func(c *Config) { c.TLSCA = certs.CA }), ""},
		{"tls client cert", with(func(c *Config) { c.TLSCA, c.TLSCert, c.TLSKey = certs.CA, certs.ClientCert, certs.ClientKey }), ""},
		{"user without password", with(func(c *Config) { c.User = "ingest" }), "EDGEFLOW_NATS_USER is set without EDGEFLOW_NATS_PASSWORD"},
		{"password without user", with(func(c *Config) { c.Password = testPassword }), "EDGEFLOW_NATS_PASSWORD is set without EDGEFLOW_NATS_USER"},
		{"user not a subject token", with(func(c *Config) { c.User, c.Password = "a.b", testPassword }), "EDGEFLOW_NATS_USER"},
		{"two methods", with(func(c *Config) { c.User, c.Password, c.NKey = "ingest", testPassword, seed }), "not several"},
		{"unreadable creds", with(func(c *Config) { c.Creds = missing }), "EDGEFLOW_NATS_CREDS"},
		{"unreadable nkey", with(func(c *Config) { c.NKey = missing }), "EDGEFLOW_NATS_NKEY"},
		{"nkey file without a seed", with(func(c *Config) { c.NKey = notSeed }), "EDGEFLOW_NATS_NKEY"},
		{"unreadable CA", with(func(c *Config) { c.TLSCA = missing }), "EDGEFLOW_NATS_TLS_CA"},
		{"CA not PEM", with(func(c *Config) { c.TLSCA = notSeed }), "EDGEFLOW_NATS_TLS_CA"},
		{"cert without key", with(func(c *Config) { c.TLSCert = certs.ClientCert }), "EDGEFLOW_NATS_TLS_CERT is set without EDGEFLOW_NATS_TLS_KEY"},
		{"key without cert", with(func(c *Config) { c.TLSKey = certs.ClientKey }), "EDGEFLOW_NATS_TLS_KEY is set without EDGEFLOW_NATS_TLS_CERT"},
		{"key of another cert", with(func(c *Config) { c.TLSCert, c.TLSKey = certs.ClientCert, certs.Key }), "EDGEFLOW_NATS_TLS_CERT"},
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
			for _, secret := range []string{testPassword, testNKeySeed} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("Validate() = %q shows a secret", err)
				}
			}
		})
	}
}

// startAuthNATS runs a server whose users come from a configuration
// fragment, loaded the way devenv loads the shipped auth.conf.
func startAuthNATS(t *testing.T, fragment string, tls *devenv.NATSTLS) string {
	t.Helper()
	dir := t.TempDir()
	s, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: filepath.Join(dir, "store"),
		AuthConfig: writeFile(t, dir, "auth.conf", fragment), TLS: tls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// A user who may subscribe only to its own inbox prefix can use JetStream:
// Connect sets the prefix from EDGEFLOW_NATS_USER. A wrong password fails
// at start-up with an error that does not show it.
func TestConnectWithPasswordAndOwnInbox(t *testing.T) {
	url := startAuthNATS(t, `authorization { users = [
		{ user: svc, password: "`+testPassword+`", permissions: {
			publish: { allow: ["orders.>", "$JS.API.>"] }
			subscribe: { allow: ["_INBOX_svc.>"] } } }
		{ user: other, password: "other-pw" }
	] }`, nil)

	cfg := Config{URL: url, ConnectTimeout: 5 * time.Second, User: "svc", Password: testPassword}
	nc, js, err := Connect(t.Context(), quiet, cfg, "bus-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := js.CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatalf("create a stream with replies on _INBOX_svc: %v", err)
	}
	if _, err := js.Publish(t.Context(), "orders.1", []byte("x")); err != nil {
		t.Fatalf("publish with an ack on _INBOX_svc: %v", err)
	}
	// The default inbox is not allowed: the prefix is what made the above work.
	plain, err := nats.Connect(url, nats.UserInfo("svc", testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Request("$JS.API.INFO", nil, time.Second); err == nil {
		t.Fatal("a request with replies on _INBOX.> worked: the permissions do not bind the inbox")
	}

	bad := cfg
	bad.Password, bad.ConnectTimeout = "wrong-"+testPassword, time.Second
	_, _, err = Connect(t.Context(), quiet, bad, "bus-test")
	if err == nil {
		t.Fatal("Connect with a wrong password succeeded")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(err.Error(), "Authorization") {
		t.Errorf("error %q does not say authorization failed", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Fatalf("error %q shows the password", err)
	}
}

func TestConnectWithNKey(t *testing.T) {
	url := startAuthNATS(t, `authorization { users = [ { nkey: `+testNKeyPublic+` } ] }`, nil)
	seed := writeFile(t, t.TempDir(), "seed", testNKeySeed+"\n")
	nc, _, err := Connect(t.Context(), quiet, Config{URL: url, ConnectTimeout: 5 * time.Second, NKey: seed}, "bus-test")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, _, err := Connect(t.Context(), quiet, Config{URL: url, ConnectTimeout: time.Second}, "bus-test"); err == nil {
		t.Fatal("Connect without the NKey succeeded")
	}
}

// TLS: the client verifies the server with EDGEFLOW_NATS_TLS_CA (and fails
// without it), and presents its certificate to a server that demands one.
func TestConnectTLS(t *testing.T) {
	certs, err := devenv.WriteTestCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url := startAuthNATS(t, `authorization { users = [ { user: svc, password: "`+testPassword+`" } ] }`,
		&devenv.NATSTLS{Cert: certs.Cert, Key: certs.Key, CA: certs.CA, VerifyClients: true})
	cfg := Config{URL: url, ConnectTimeout: time.Second, User: "svc", Password: testPassword,
		TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey}
	nc, _, err := Connect(t.Context(), quiet, cfg, "bus-test")
	if err != nil {
		t.Fatal(err)
	}
	if !nc.TLSRequired() {
		t.Error("connected without TLS")
	}
	state, err := nc.TLSConnectionState()
	if err != nil || state.Version < 0x0303 {
		t.Errorf("TLS version %#x (%v), want 1.2 or later", state.Version, err)
	}
	nc.Close()

	noCA := cfg
	noCA.TLSCA = ""
	if _, _, err := Connect(t.Context(), quiet, noCA, "bus-test"); err == nil {
		t.Error("Connect trusted a server its CA file did not vouch for")
	}
	noCert := cfg
	noCert.TLSCert, noCert.TLSKey = "", ""
	if _, _, err := Connect(t.Context(), quiet, noCert, "bus-test"); err == nil {
		t.Error("Connect without a client certificate succeeded against a server that verifies clients")
	}
}
