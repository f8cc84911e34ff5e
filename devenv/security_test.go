package devenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// The security settings of the shipped configuration: in secure mode the
// file paths are replaced in place (after the listener they belong to), in
// anonymous mode every security line is commented out.
func TestMosquittoConfigSecurityModes(t *testing.T) {
	shipped := "allow_anonymous false\npassword_file /mosquitto/auth/passwd\nacl_file /mosquitto/config/acl\n" +
		"listener 8883\ncertfile /mosquitto/tls/tls.crt\nkeyfile /mosquitto/tls/tls.key\ncafile /mosquitto/tls/ca.crt\n" +
		"tls_version tlsv1.2\nmax_queued_messages 0\n"
	sec := &MosquittoSecurity{PasswordFile: "/t/passwd", ACLFile: "/t/acl", CertFile: "/t/tls.crt", KeyFile: "/t/tls.key", CAFile: "/t/ca.crt"}
	got, err := mosquittoConfig(shipped, 5555, "/d", false, sec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"allow_anonymous false\n", "\npassword_file /t/passwd\n", "\nacl_file /t/acl\n",
		"listener 5555 127.0.0.1\n# (replaced by devenv) certfile /mosquitto/tls/tls.crt\ncertfile /t/tls.crt\n",
		"\nkeyfile /t/tls.key\n", "\ncafile /t/ca.crt\n", "\ntls_version tlsv1.2\n", "\nmax_queued_messages 0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("secure mode: derived config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "allow_anonymous true") {
		t.Errorf("secure mode allows anonymous clients:\n%s", got)
	}

	got, err = mosquittoConfig(shipped, 5555, "/d", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(got, "\n") {
		if f := strings.Fields(line); len(f) > 0 && securityKeys[f[0]] && line != "allow_anonymous true" {
			t.Errorf("anonymous mode keeps %q", line)
		}
	}
	if !strings.HasSuffix(got, "allow_anonymous true\n") || !strings.Contains(got, "\nmax_queued_messages 0\n") {
		t.Errorf("anonymous mode:\n%s", got)
	}

	if _, err := mosquittoConfig("listener 1883\n", 1, "/d", false, sec); err == nil || !strings.Contains(err.Error(), "no ") {
		t.Errorf("secure mode on a configuration without TLS files: err %v", err)
	}
}

// The shipped security as a real broker runs it, with a password file in
// the format scripts/secrets writes (PBKDF2-SHA512, our own code): anonymous
// clients and wrong passwords are refused, plain TCP does not reach the TLS
// listener, TLS below 1.2 is refused, devices may only publish under
// sensors/#, and ingest may only read it.
func TestMosquittoSecureMode(t *testing.T) {
	_, err := MosquittoBinary()
	RequireInstalled(t, err)
	dir := t.TempDir()
	const devicePW, ingestPW = "device-pw-8c1f", "ingest-pw-77ab"
	sec, err := WriteMosquittoSecurity(dir+"/sec", map[string]string{"device": devicePW, "ingest": ingestPW})
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartMosquitto(t.Context(), MosquittoOptions{Dir: dir + "/broker", Secure: sec})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)
	if !strings.HasPrefix(p.URL, "ssl://") {
		t.Fatalf("URL %s: want ssl://", p.URL)
	}
	pem, _ := os.ReadFile(sec.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	var seq int
	connect := func(url, user, pw string, tc *tls.Config) (mqtt.Client, error) {
		seq++
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("sec-test-%d", seq)).
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetTLSConfig(tc)
		if user != "" {
			o.SetUsername(user).SetPassword(pw)
		}
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect as %q: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c, nil
	}

	for _, tt := range []struct {
		name, url, user, pw string
		tc                  *tls.Config
	}{
		{"anonymous", p.URL, "", "", tc},
		{"wrong password", p.URL, "device", "not-the-password", tc},
		{"unknown user", p.URL, "mallory", devicePW, tc},
		{"plain TCP to the TLS port", "tcp://" + p.Addr, "device", devicePW, nil},
		{"TLS 1.1", p.URL, "device", devicePW, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
		{"untrusted server", p.URL, "device", devicePW, &tls.Config{MinVersion: tls.VersionTLS12}},
	} {
		if _, err := connect(tt.url, tt.user, tt.pw, tt.tc); err == nil {
			t.Errorf("%s: connected", tt.name)
		}
	}

	t.Cleanup(func() {
		if t.Failed() {
			log, _ := p.Log()
			t.Logf("mosquitto log:\n%s", log)
		}
	})
	ingest, err := connect(p.URL, "ingest", ingestPW, tc)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	record := func(who string) mqtt.MessageHandler {
		return func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			defer mu.Unlock()
			got[who] = append(got[who], m.Topic()+"="+string(m.Payload()))
		}
	}
	subscribe := func(c mqtt.Client, who, filter string) {
		tok := c.Subscribe(filter, 1, record(who))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s subscribe %s: %v", who, filter, tok.Error())
		}
	}
	subscribe(ingest, "ingest", "#")
	// Mosquitto 2.0's ACL does not refuse a SUBSCRIBE; it withholds the
	// messages the user may not read.
	snooper, err := connect(p.URL, "device", devicePW, tc)
	if err != nil {
		t.Fatal(err)
	}
	subscribe(snooper, "device", "sensors/#")

	// A publish the ACL forbids is dropped, and Mosquitto 2.0 disconnects
	// the client; each forbidden publish gets a connection of its own.
	for _, tt := range []struct{ user, pw, topic string }{
		{"device", devicePW, "other/lab/t1"},
		{"device", devicePW, "$SYS/fake"},
		{"ingest", ingestPW, "sensors/lab/t1"},
	} {
		c, err := connect(p.URL, tt.user, tt.pw, tc)
		if err != nil {
			t.Fatal(err)
		}
		tok := c.Publish(tt.topic, 1, false, "forbidden")
		tok.WaitTimeout(2 * time.Second)
	}
	device, err := connect(p.URL, "device", devicePW, tc)
	if err != nil {
		t.Fatal(err)
	}
	if tok := device.Publish("sensors/lab/t1", 1, false, "21.5"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device publish sensors/lab/t1: %v", tok.Error())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got["ingest"])
		mu.Unlock()
		if n >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything wrongly let through arrives too
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"sensors/lab/t1=21.5"}; fmt.Sprint(got["ingest"]) != fmt.Sprint(want) || len(got["device"]) != 0 {
		t.Fatalf("received %v, want ingest to get only %v and the device nothing", got, want)
	}
	log, _ := p.Log()
	for _, pw := range []string{devicePW, ingestPW} {
		if strings.Contains(log, pw) {
			t.Errorf("the broker log shows a password")
		}
	}
}
