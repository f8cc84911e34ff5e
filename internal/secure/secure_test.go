package secure

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/conf"
)

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:s3cret@nats:4222", "nats://***@nats:4222"},
		{"nats://token@nats:4222", "nats://***@nats:4222"},
		{"tls://user:s3cret@nats.example.com:4443", "tls://***@nats.example.com:4443"},
		{"nats://u:p@ss@n1:4222,nats://u:s3cret@n2:4222", "nats://***@n1:4222,nats://***@n2:4222"},
		// An '@' in a path cannot be told from one in a password holding
		// '/': it is hidden too.
		{"nats://nats:4222/a@b", "nats://***@b"},
		// MQTT: paho takes the same userinfo form.
		{"tcp://device:s3cret@mosquitto:1883", "tcp://***@mosquitto:1883"},
		{"ssl://ingest:s3cret@mosquitto.edgeflow.svc:8883", "ssl://***@mosquitto.edgeflow.svc:8883"},
		{"mqtts://ingest:s3c@ret@[::1]:8883", "mqtts://***@[::1]:8883"},
		// InfluxDB with basic-auth userinfo.
		{"http://admin:s3cret@influxdb:8086?x=1", "http://***@influxdb:8086?x=1"},
		{"127.0.0.1:4222", "127.0.0.1:4222"},
		{"user:s3cret@host:1", "***@host:1"},
		{"", ""},
	}
	for _, tt := range tests {
		got := RedactURLs(tt.in)
		if got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3c") {
			t.Errorf("RedactURLs(%q) = %q still shows the password", tt.in, got)
		}
	}
}

// A password may hold '#', '?', '/' or ',' (url.Parse and the clients take
// it up to the last '@' of the entry, and a config error quotes the URL as
// given): none of it may show.
func TestRedactURLsHidesPasswordsWithDelimiters(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://edge:s3c#ret@nats:4222", "nats://***@nats:4222"},
		{"nats://edge:s3c?ret@nats:4222", "nats://***@nats:4222"},
		{"nats://edge:s3c/ret@nats:4222", "nats://***@nats:4222"},
		{"nats://edge:s3c,ret@nats:4222", "nats://***@nats:4222"},
		{"http://admin:s3c/?#,ret@influxdb:8086/api?x=1", "http://***@influxdb:8086/api?x=1"},
		{"nats://u:s3c,ret@n1:4222,nats://u:s3c#ret@n2:4222", "nats://***@n1:4222,nats://***@n2:4222"},
		{"edge:s3c/ret@nats:4222", "***@nats:4222"},
		{"ssl://ingest:s3c@r#et@mosquitto:8883", "ssl://***@mosquitto:8883"},
	}
	for _, tt := range tests {
		got := RedactURLs(tt.in)
		if strings.Contains(got, "s3c") || strings.Contains(got, "ret@") {
			t.Errorf("RedactURLs(%q) = %q shows the password", tt.in, got)
		} else if got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := Token()
		if len(tok) != 43 {
			t.Fatalf("Token() = %q: %d characters, want 43 (256 bits)", tok, len(tok))
		}
		if strings.ContainsAny(tok, "+/=$:@ \n") {
			t.Fatalf("Token() = %q: not URL- and config-safe", tok)
		}
		if _, err := base64.RawURLEncoding.DecodeString(tok); err != nil {
			t.Fatalf("Token() = %q: %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("Token() repeated %q", tok)
		}
		seen[tok] = true
	}
}

// Every token survives nats-server's reading of a $VARIABLE from the
// environment as the same string (auth.conf takes the passwords that way).
func TestTokenIsANATSConfigString(t *testing.T) {
	for range 2000 {
		tok := Token()
		t.Setenv("EDGEFLOW_TEST_TOKEN", tok)
		m, err := conf.Parse("password: $EDGEFLOW_TEST_TOKEN\n")
		if err != nil {
			t.Fatalf("token %q: nats-server cannot read it from the environment: %v", tok, err)
		}
		if got, ok := m["password"].(string); !ok || got != tok {
			t.Fatalf("token %q reads back as %#v", tok, m["password"])
		}
	}
}

func TestMosquittoPasswdLine(t *testing.T) {
	line, err := MosquittoPasswdLine("device", "s3cret-pw")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Split(line, "$")
	if !strings.HasPrefix(line, "device:$7$101$") || len(fields) != 5 {
		t.Fatalf("line %q: want device:$7$101$<salt>$<hash>", line)
	}
	if salt, _ := base64.StdEncoding.DecodeString(fields[3]); len(salt) != 12 {
		t.Fatalf("salt %q: want 12 bytes", fields[3])
	}
	if hash, _ := base64.StdEncoding.DecodeString(fields[4]); len(hash) != 64 {
		t.Fatalf("hash %q: want 64 bytes (SHA-512)", fields[4])
	}
	if strings.Contains(line, "s3cret-pw") {
		t.Fatal("the line contains the password")
	}
	if !CheckMosquittoPasswd(line, "s3cret-pw") {
		t.Fatal("CheckMosquittoPasswd rejects the right password")
	}
	if CheckMosquittoPasswd(line, "s3cret-pX") {
		t.Fatal("CheckMosquittoPasswd accepts a wrong password")
	}
	again, _ := MosquittoPasswdLine("device", "s3cret-pw")
	if again == line {
		t.Fatal("two lines for the same password share a salt")
	}
	for _, bad := range []string{"", "a:b", "a\nb"} {
		if _, err := MosquittoPasswdLine(bad, "x"); err == nil {
			t.Errorf("MosquittoPasswdLine(%q) accepted the user name", bad)
		}
	}
}

// The hash is the one mosquitto_passwd writes: a line it made checks out
// with our implementation. (The broker accepting our lines is tested in
// devenv with a real broker.)
func TestMosquittoPasswdMatchesMosquittoPasswd(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed (scripts/install-deps.sh)")
	}
	file := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(bin, "-c", "-b", file, "ingest", "pa55-word").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(b))
	if !strings.HasPrefix(line, "ingest:$7$") {
		t.Fatalf("mosquitto_passwd wrote %q, not a $7$ line", line)
	}
	if !CheckMosquittoPasswd(line, "pa55-word") {
		t.Fatalf("our PBKDF2-SHA512 does not reproduce mosquitto_passwd's line %q", line)
	}
	if CheckMosquittoPasswd(line, "pa55-worD") {
		t.Fatal("a wrong password checks out")
	}
}

func TestCAIssuesVerifiableServerCert(t *testing.T) {
	ca, err := NewCA("edgeflow test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"mosquitto", "localhost", "127.0.0.1"}, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, name := range []string{"mosquitto", "localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "evil.example"}); err == nil {
		t.Error("the certificate verifies for a name it was not issued for")
	}
	if !net.ParseIP("127.0.0.1").Equal(leaf.IPAddresses[0]) {
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	}
	back, err := LoadCA(ca.CertPEM, ca.KeyPEM)
	if err != nil || !back.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}
	other, _ := NewCA("other", time.Hour)
	if _, err := LoadCA(ca.CertPEM, other.KeyPEM); err == nil {
		t.Fatal("LoadCA accepted a key of another CA")
	}
}

func TestTLSFilesConfig(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("test", time.Hour)
	cert, key, _ := ca.Issue([]string{"client"}, false, time.Hour)
	_, otherKey, _ := ca.Issue([]string{"other"}, false, time.Hour)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPath, certPath, keyPath := write("ca.crt", ca.CertPEM), write("tls.crt", cert), write("tls.key", key)
	otherKeyPath := write("other.key", otherKey)
	garbage := write("garbage", []byte("SECRET-CONTENT not pem"))
	names := TLSFiles{CAName: "X_CA", CertName: "X_CERT", KeyName: "X_KEY"}

	with := func(f TLSFiles) TLSFiles {
		f.CAName, f.CertName, f.KeyName = names.CAName, names.CertName, names.KeyName
		return f
	}
	cfg, err := with(TLSFiles{CA: caPath, Cert: certPath, Key: keyPath, ServerName: "mosquitto"}).Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.ServerName != "mosquitto" {
		t.Fatalf("config %+v", cfg)
	}
	for _, tt := range []struct {
		name  string
		files TLSFiles
		want  string
	}{
		{"missing CA", TLSFiles{CA: filepath.Join(dir, "nope")}, "X_CA"},
		{"CA not PEM", TLSFiles{CA: garbage}, "X_CA"},
		{"cert without key", TLSFiles{Cert: certPath}, "X_CERT is set without X_KEY"},
		{"key without cert", TLSFiles{Key: keyPath}, "X_KEY is set without X_CERT"},
		{"unreadable key", TLSFiles{Cert: certPath, Key: filepath.Join(dir, "nope")}, "X_KEY"},
		{"key of another cert", TLSFiles{Cert: certPath, Key: otherKeyPath}, "X_CERT"},
		{"key not PEM", TLSFiles{Cert: certPath, Key: garbage}, "X_KEY"},
	} {
		_, err := with(tt.files).Config()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one naming %q", tt.name, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "SECRET-CONTENT") || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: the error quotes a file's content: %v", tt.name, err)
		}
	}
}
