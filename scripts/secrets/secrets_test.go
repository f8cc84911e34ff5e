package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// snapshot is every file under dir by relative path.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if info.Mode().Perm() != 0o700 && rel != "." {
				t.Errorf("folder %s is %v, want 0700", rel, info.Mode().Perm())
			}
			return nil
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", rel, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func generate(t *testing.T, o Options) Result {
	t.Helper()
	res, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func actions(res Result, dir string) map[string]string {
	out := map[string]string{}
	for _, f := range res.Files {
		rel, _ := filepath.Rel(dir, f.Path)
		out[rel] = f.Action
	}
	return out
}

func leaf(t *testing.T, crt []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(crt)
	if b == nil {
		t.Fatal("tls.crt: no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerateLayoutAndIdempotence(t *testing.T) {
	dir := t.TempDir()
	first := generate(t, Options{Dir: dir})
	files := snapshot(t, dir)
	want := []string{
		"edgeflow-nats/ingest", "edgeflow-nats/processor", "edgeflow-nats/notifier", "edgeflow-nats/dashboard", "edgeflow-nats/route",
		"edgeflow-mqtt/passwd", "edgeflow-mqtt/ingest-password", "edgeflow-mqtt/device-password",
		"edgeflow-mqtt-tls/ca.crt", "edgeflow-mqtt-tls/tls.crt", "edgeflow-mqtt-tls/tls.key", "ca/ca.key",
		"edgeflow-influxdb/admin-password", "edgeflow-influxdb/token",
		"edgeflow-influxdb/processor-password", "edgeflow-influxdb/dashboard-password",
		"edgeflow-dashboard/token", "edgeflow-dashboard-tls/tls.crt", "edgeflow-dashboard-tls/tls.key",
		"edgeflow-nats-route-tls/ca.crt", "edgeflow-nats-route-tls/tls.crt", "edgeflow-nats-route-tls/tls.key",
	}
	if len(files) != len(want) {
		t.Errorf("%d files, want %d: %v", len(files), len(want), files)
	}
	seen := map[string]string{}
	for _, f := range want {
		b, ok := files[f]
		if !ok {
			t.Errorf("missing %s", f)
			continue
		}
		if actions(first, dir)[f] != "created" {
			t.Errorf("%s: %s, want created", f, actions(first, dir)[f])
		}
		if strings.Contains(f, "/") && !strings.Contains(f, "tls") && !strings.Contains(f, "ca") && !strings.HasSuffix(f, "passwd") {
			v := string(b)
			if len(v) != 43 || strings.ContainsAny(v, "\n+/=") {
				t.Errorf("%s = %d bytes, want a 43-character URL-safe token without newline", f, len(v))
			}
			if other, dup := seen[v]; dup {
				t.Errorf("%s and %s hold the same value", f, other)
			}
			seen[v] = f
		}
	}
	for _, u := range MQTTUsers {
		if !passwdHas(files["edgeflow-mqtt/passwd"], u, string(files["edgeflow-mqtt/"+u+"-password"])) {
			t.Errorf("passwd has no line of %s matching %s-password", u, u)
		}
	}
	if strings.Contains(string(files["edgeflow-mqtt/passwd"]), string(files["edgeflow-mqtt/device-password"])) {
		t.Error("passwd holds a password in clear")
	}
	crt := leaf(t, files["edgeflow-mqtt-tls/tls.crt"])
	if crt.NotAfter.Sub(crt.NotBefore) < 364*24*time.Hour || crt.NotAfter.Sub(crt.NotBefore) > 367*24*time.Hour {
		t.Errorf("server certificate valid %v, want a year", crt.NotAfter.Sub(crt.NotBefore))
	}
	if ca := leaf(t, files["edgeflow-mqtt-tls/ca.crt"]); ca.NotAfter.Sub(ca.NotBefore) < 9*365*24*time.Hour {
		t.Errorf("CA valid %v, want ten years", ca.NotAfter.Sub(ca.NotBefore))
	}
	if strings.Contains(string(files["edgeflow-mqtt-tls/tls.crt"])+string(files["edgeflow-mqtt-tls/ca.crt"]), "PRIVATE KEY") {
		t.Error("a certificate file holds a private key")
	}

	// Again: nothing changes.
	again := generate(t, Options{Dir: dir})
	for f, a := range actions(again, dir) {
		if a != "kept" {
			t.Errorf("second run: %s %s", f, a)
		}
	}
	for f, b := range snapshot(t, dir) {
		if !bytes.Equal(b, files[f]) {
			t.Errorf("second run changed %s", f)
		}
	}

	// Rotate the device password: the password file follows; the ingest line
	// and a device user added by hand stay as they are.
	extra, _ := secure.MosquittoPasswdLine("site1-gateway", "gw-pw")
	passwd := string(files["edgeflow-mqtt/passwd"]) + extra + "\n"
	if err := os.WriteFile(filepath.Join(dir, "edgeflow-mqtt/passwd"), []byte(passwd), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "edgeflow-mqtt/device-password")); err != nil {
		t.Fatal(err)
	}
	rot := generate(t, Options{Dir: dir})
	after := snapshot(t, dir)
	if a := actions(rot, dir); a["edgeflow-mqtt/device-password"] != "created" || a["edgeflow-mqtt/passwd"] != "updated" || a["edgeflow-mqtt/ingest-password"] != "kept" {
		t.Errorf("after deleting device-password: %v", a)
	}
	if bytes.Equal(after["edgeflow-mqtt/device-password"], files["edgeflow-mqtt/device-password"]) {
		t.Error("the device password was not renewed")
	}
	p := string(after["edgeflow-mqtt/passwd"])
	if !passwdHas(after["edgeflow-mqtt/passwd"], "device", string(after["edgeflow-mqtt/device-password"])) ||
		passwdHas(after["edgeflow-mqtt/passwd"], "device", string(files["edgeflow-mqtt/device-password"])) {
		t.Error("passwd does not hold the new device password, or still the old one")
	}
	if !strings.Contains(p, strings.Split(string(files["edgeflow-mqtt/passwd"]), "\n")[0]+"\n") || !strings.Contains(p, extra+"\n") {
		t.Errorf("passwd lost the ingest line or the hand-added user:\n%s", p)
	}

	// A new name: the server certificate is reissued by the same CA.
	withSAN := generate(t, Options{Dir: dir, SANs: []string{"mqtt.example.com", "192.0.2.7"}})
	a := actions(withSAN, dir)
	if a["edgeflow-mqtt-tls/tls.crt"] != "updated" || a["edgeflow-mqtt-tls/ca.crt"] != "kept" || a["ca/ca.key"] != "kept" {
		t.Errorf("after -san: %v", a)
	}
	now := snapshot(t, dir)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(now["edgeflow-mqtt-tls/ca.crt"])
	for _, n := range append(DefaultSANs, "mqtt.example.com", "192.0.2.7") {
		if _, err := leaf(t, now["edgeflow-mqtt-tls/tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, DNSName: n}); err != nil {
			t.Errorf("server certificate for %s: %v", n, err)
		}
	}

	// InfluxDB 1.8: each service's token is its own user's
	// (TestServicesGetTheirOwnInfluxCredentials).
	generate(t, Options{Dir: dir, Influx18: true})
	now = snapshot(t, dir)
	if got, want := string(now["edgeflow-influxdb/processor-token"]), "processor:"+string(now["edgeflow-influxdb/processor-password"]); got != want {
		t.Errorf("-influx18 processor-token %q, want processor:<processor-password>", got)
	}
}

// The dashboard's HTTPS certificate (Traefik serves it for the k3s overlays' Ingress):
// signed by the broker's CA, valid for the dashboard's Service names and every
// -dashboard-san (DASHBOARD_HOST, the nodes), a server certificate of its own key; a new
// name reissues it and nothing else. A TLS server with it is verified by a client that
// trusts only ca.crt.
func TestDashboardCertificate(t *testing.T) {
	dir := t.TempDir()
	generate(t, Options{Dir: dir})
	first := snapshot(t, dir)
	res := generate(t, Options{Dir: dir, DashboardSANs: []string{"edgeflow.example.com", "192.0.2.9"}})
	if a := actions(res, dir); a["edgeflow-dashboard-tls/tls.crt"] != "updated" || a["edgeflow-dashboard-tls/tls.key"] != "updated" ||
		a["edgeflow-mqtt-tls/tls.crt"] != "kept" || a["edgeflow-mqtt-tls/ca.crt"] != "kept" || a["ca/ca.key"] != "kept" {
		t.Errorf("after -dashboard-san: %v; want only the dashboard's certificate reissued", a)
	}
	files := snapshot(t, dir)
	if !bytes.Equal(files["edgeflow-mqtt-tls/tls.crt"], first["edgeflow-mqtt-tls/tls.crt"]) {
		t.Error("a dashboard name changed the broker's certificate")
	}
	crtPEM, keyPEM := files["edgeflow-dashboard-tls/tls.crt"], files["edgeflow-dashboard-tls/tls.key"]
	if strings.Contains(string(crtPEM), "PRIVATE KEY") {
		t.Error("tls.crt holds a private key")
	}
	if bytes.Equal(keyPEM, files["edgeflow-mqtt-tls/tls.key"]) {
		t.Error("the dashboard shares the broker's key")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(files["edgeflow-mqtt-tls/ca.crt"])
	c := leaf(t, crtPEM)
	for _, n := range append(slices.Clone(DefaultDashboardSANs), "edgeflow.example.com", "192.0.2.9") {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: n, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("dashboard certificate for %s: %v", n, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "mosquitto"}); err == nil {
		t.Error("the dashboard's certificate is valid for mosquitto: it must name the dashboard only")
	}
	if d := c.NotAfter.Sub(c.NotBefore); d < 364*24*time.Hour || d > 367*24*time.Hour {
		t.Errorf("dashboard certificate valid %v, want a year", d)
	}
	for f, a := range actions(generate(t, Options{Dir: dir, DashboardSANs: []string{"192.0.2.9", "edgeflow.example.com"}}), dir) {
		if a != "kept" {
			t.Errorf("same names again: %s %s", f, a)
		}
	}

	// A TLS server with the pair, a client trusting only ca.crt and asking for
	// DASHBOARD_HOST: the handshake verifies.
	pair, err := tls.X509KeyPair(crtPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	for _, name := range []string{"edgeflow.example.com", "other.example.com"} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
		if err == nil {
			conn.Close()
		}
		if (name == "edgeflow.example.com") != (err == nil) {
			t.Errorf("TLS handshake asking for %s: %v", name, err)
		}
	}
}

// The NATS cluster's route certificate (components/nats-cluster): signed by the CA,
// with ca.crt beside it, valid as server and as client (each route end dials the
// other) for every server of nats-headless in every spelling, and for nothing else;
// kept while it stays so, reissued when it was not (a certificate of an older
// layout that was a server certificate only).
func TestNATSRouteCertificate(t *testing.T) {
	dir := t.TempDir()
	generate(t, Options{Dir: dir})
	files := snapshot(t, dir)
	if !bytes.Equal(files["edgeflow-nats-route-tls/ca.crt"], files["edgeflow-mqtt-tls/ca.crt"]) {
		t.Error("edgeflow-nats-route-tls/ca.crt is not the CA's certificate")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(files["edgeflow-nats-route-tls/ca.crt"])
	c := leaf(t, files["edgeflow-nats-route-tls/tls.crt"])
	for _, n := range []string{"nats-0.nats-headless", "nats-2.nats-headless.edgeflow", "nats-1.nats-headless.edgeflow.svc", "nats-1.nats-headless.edgeflow.svc.cluster.local"} {
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: n, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("route certificate for %s, usage %v: %v", n, u, err)
			}
		}
	}
	for _, n := range []string{"nats", "mosquitto", "dashboard", "nats-0.nats-headless.other"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: n}); err == nil {
			t.Errorf("the route certificate is valid for %s: it must name the NATS servers' routes only", n)
		}
	}
	for _, other := range []string{"edgeflow-mqtt-tls/tls.key", "edgeflow-dashboard-tls/tls.key"} {
		if bytes.Equal(files["edgeflow-nats-route-tls/tls.key"], files[other]) {
			t.Errorf("the route certificate shares the key of %s", other)
		}
	}
	for f, a := range actions(generate(t, Options{Dir: dir}), dir) {
		if a != "kept" {
			t.Errorf("second run: %s %s", f, a)
		}
	}

	// A server-only certificate in its place is reissued as a peer one.
	ca, err := secure.LoadCA(files["edgeflow-mqtt-tls/ca.crt"], files["ca/ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.Issue(NATSRouteSANs, true, secure.ServerValidity)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, SecretNATSRouteTLS, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if a := actions(generate(t, Options{Dir: dir}), dir); a["edgeflow-nats-route-tls/tls.crt"] != "updated" {
		t.Errorf("a server-only route certificate was %s, want updated", a["edgeflow-nats-route-tls/tls.crt"])
	}
	c = leaf(t, snapshot(t, dir)["edgeflow-nats-route-tls/tls.crt"])
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "nats-0.nats-headless", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("reissued route certificate as client: %v", err)
	}
}

func passwdHas(passwd []byte, user, password string) bool {
	for _, line := range strings.Split(string(passwd), "\n") {
		if strings.HasPrefix(line, user+":") && secure.CheckMosquittoPasswd(line, password) {
			return true
		}
	}
	return false
}

func TestGenerateRefusesHalfACA(t *testing.T) {
	dir := t.TempDir()
	generate(t, Options{Dir: dir})
	if err := os.Remove(filepath.Join(dir, "ca/ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "ca.key") {
		t.Fatalf("Generate with ca.crt but no ca.key: %v", err)
	}
}

func TestRunPrintsNoSecret(t *testing.T) {
	dir := t.TempDir()
	var out, errs bytes.Buffer
	if code := run([]string{"-out", dir, "-san", "a.example,b.example"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for f, b := range snapshot(t, dir) {
		if strings.HasSuffix(f, "ca.crt") || strings.HasSuffix(f, "tls.crt") {
			continue
		}
		if bytes.Contains(out.Bytes(), bytes.TrimSpace(b)) {
			t.Errorf("the output shows the content of %s", f)
		}
	}
	if code := run(nil, &out, &errs); code != 2 {
		t.Errorf("no -out: exit %d, want 2", code)
	}
}

// What the generator writes is what the shipped broker runs with: Mosquitto
// reads the password file and the certificate, and the users log in with
// their password files over TLS, checking the name "mosquitto".
func TestMosquittoAcceptsGeneratedFiles(t *testing.T) {
	_, err := devenv.MosquittoBinary()
	devenv.RequireInstalled(t, err)
	dir := t.TempDir()
	out := filepath.Join(dir, "secrets")
	generate(t, Options{Dir: out})
	tlsDir := filepath.Join(out, SecretMQTTTLS)
	broker, err := devenv.StartMosquitto(t.Context(), devenv.MosquittoOptions{Dir: filepath.Join(dir, "broker"),
		Secure: &devenv.MosquittoSecurity{PasswordFile: filepath.Join(out, SecretMQTT, "passwd"),
			CertFile: filepath.Join(tlsDir, "tls.crt"), KeyFile: filepath.Join(tlsDir, "tls.key"), CAFile: filepath.Join(tlsDir, "ca.crt")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Stop(t.Context()) })
	pem, _ := os.ReadFile(filepath.Join(tlsDir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: roots, ServerName: "mosquitto", MinVersion: tls.VersionTLS12}
	login := func(user, password string) error {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("gen-" + user).
			SetUsername(user).SetPassword(password).SetTLSConfig(tc).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return fmt.Errorf("timeout")
		}
		if tok.Error() == nil {
			c.Disconnect(100)
		}
		return tok.Error()
	}
	for _, u := range MQTTUsers {
		pw, err := os.ReadFile(filepath.Join(out, SecretMQTT, u+"-password"))
		if err != nil {
			t.Fatal(err)
		}
		if err := login(u, string(pw)); err != nil {
			t.Errorf("%s with its generated password: %v", u, err)
		}
		if err := login(u, string(pw)+"x"); err == nil {
			t.Errorf("%s with a wrong password: connected", u)
		}
	}
}
