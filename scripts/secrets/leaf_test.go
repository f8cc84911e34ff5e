package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgeflow/edgeflow/devenv"
)

// -leaf-site makes, for each site, the folder its operator copies as the Secret
// edgeflow-nats-uplink (user = the site's name, a password, the hub's CA) and the
// hub's users.conf with the bcrypt hash of that password, never the password; a second
// run keeps everything (the hashes too), a deleted password is renewed with its line
// alone, a deleted site's folder removes its user, and a name that cannot be a site's is
// refused.
func TestLeafSites(t *testing.T) {
	lowBcryptCost(t)
	dir := t.TempDir()
	generate(t, Options{Dir: dir})
	if _, err := os.Stat(filepath.Join(dir, SecretNATSLeaf)); err == nil {
		t.Error("without -leaf-site: an edgeflow-nats-leaf folder (task deploy would apply it to every site)")
	}
	first := generate(t, Options{Dir: dir, LeafSites: []string{"greenhouse-north", "lab_2"}})
	files := snapshot(t, dir)
	a := actions(first, dir)
	conf := string(files[SecretNATSLeaf+"/users.conf"])
	for _, site := range []string{"greenhouse-north", "lab_2"} {
		kit := uplinkDir + "/" + site + "/"
		for _, k := range []string{"user", "password", "ca.crt"} {
			if a[kit+k] != "created" {
				t.Errorf("%s%s: %q, want created", kit, k, a[kit+k])
			}
		}
		if got := string(files[kit+"user"]); got != site {
			t.Errorf("%suser = %q, want %q", kit, got, site)
		}
		if !bytes.Equal(files[kit+"ca.crt"], files["edgeflow-mqtt-tls/ca.crt"]) {
			t.Errorf("%sca.crt is not the CA that signed the hub's certificate (edgeflow-mqtt-tls)", kit)
		}
		pw := string(files[kit+"password"])
		if len(pw) != 43 || strings.Contains(conf, pw) {
			t.Errorf("%spassword: %d characters, in users.conf in clear: %v", kit, len(pw), strings.Contains(conf, pw))
		}
		if !leafUserHas(conf, site, pw) {
			t.Errorf("users.conf has no user %s with the hash of %spassword:\n%s", site, kit, conf)
		}
	}
	if files[uplinkDir+"/greenhouse-north/password"] != nil && bytes.Equal(files[uplinkDir+"/greenhouse-north/password"], files[uplinkDir+"/lab_2/password"]) {
		t.Error("two sites share a password")
	}

	// Again, without the flag (as task deploy runs it): nothing changes.
	for f, act := range actions(generate(t, Options{Dir: dir}), dir) {
		if act != "kept" {
			t.Errorf("second run: %s %s", f, act)
		}
	}
	if !bytes.Equal(snapshot(t, dir)[SecretNATSLeaf+"/users.conf"], files[SecretNATSLeaf+"/users.conf"]) {
		t.Error("second run changed users.conf")
	}

	// A rotated password: its line follows, the other site's stays as it was.
	if err := os.Remove(filepath.Join(dir, uplinkDir, "lab_2", "password")); err != nil {
		t.Fatal(err)
	}
	rot := actions(generate(t, Options{Dir: dir}), dir)
	if rot[uplinkDir+"/lab_2/password"] != "created" || rot[SecretNATSLeaf+"/users.conf"] != "updated" {
		t.Errorf("after deleting lab_2's password: %v", rot)
	}
	now := snapshot(t, dir)
	newConf := string(now[SecretNATSLeaf+"/users.conf"])
	if !leafUserHas(newConf, "lab_2", string(now[uplinkDir+"/lab_2/password"])) || leafUserHas(newConf, "lab_2", string(files[uplinkDir+"/lab_2/password"])) {
		t.Error("users.conf does not hold lab_2's new password, or still the old one")
	}
	if line := leafLine(conf, "greenhouse-north"); line == "" || !strings.Contains(newConf, line) {
		t.Error("rotating lab_2 rewrote greenhouse-north's line")
	}

	// A site removed: its user goes.
	if err := os.RemoveAll(filepath.Join(dir, uplinkDir, "lab_2")); err != nil {
		t.Fatal(err)
	}
	generate(t, Options{Dir: dir})
	if c := string(snapshot(t, dir)[SecretNATSLeaf+"/users.conf"]); leafLine(c, "lab_2") != "" || leafLine(c, "greenhouse-north") == "" {
		t.Errorf("after removing uplink/lab_2:\n%s", c)
	}

	for _, bad := range []string{"hub", "a.b", "../x", ""} {
		if _, err := Generate(Options{Dir: dir, LeafSites: []string{bad}}); err == nil {
			t.Errorf("-leaf-site %q accepted", bad)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, uplinkDir, "not a site"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(Options{Dir: dir}); err == nil {
		t.Error("a folder uplink/'not a site' accepted as a site")
	}
}

// lowBcryptCost makes users.conf's hashes cheap for one test: under -race a
// hash of the default cost takes about a second, to make and to check at every
// login.
func lowBcryptCost(t *testing.T) {
	old := leafBcryptCost
	leafBcryptCost = bcrypt.MinCost
	t.Cleanup(func() { leafBcryptCost = old })
}

// leafLine is users.conf's line of user, or "".
func leafLine(conf, user string) string {
	for _, line := range strings.Split(conf, "\n") {
		if m := leafUserLine.FindStringSubmatch(line); m != nil && m[1] == user {
			return line
		}
	}
	return ""
}

// leafUserHas reports whether users.conf's line of user hashes password.
func leafUserHas(conf, user, password string) bool {
	m := leafUserLine.FindStringSubmatch(leafLine(conf, user))
	return m != nil && bcrypt.CompareHashAndPassword([]byte(m[2]), []byte(password)) == nil
}

// A hub whose leaf node listener is manifests/overlays/hub's leafnodes.conf, with the
// users.conf and certificate made here, takes a site that logs in with its folder under
// uplink/ (user, password, and ca.crt to verify the hub), and refuses a wrong password
// and one site's password under another site's name.
func TestLeafSiteLogsInToTheHub(t *testing.T) {
	lowBcryptCost(t)
	dir := t.TempDir()
	generate(t, Options{Dir: dir, LeafSites: []string{"greenhouse-north", "lab-2"}})
	files := snapshot(t, dir)
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	// The pod's layout: the configuration in etc/nats, the Secrets' files beside it.
	root := t.TempDir()
	conf, err := os.ReadFile("../../manifests/overlays/hub/nats/leafnodes.conf")
	if err != nil {
		t.Fatal(err)
	}
	leafConf := strings.ReplaceAll(string(conf), "/etc/nats-leaf-tls/", filepath.Join(root, "etc/nats-leaf-tls")+"/")
	leafConf = strings.Replace(leafConf, "port: 7422", fmt.Sprintf("port: %d", ports[0]), 1)
	if !strings.Contains(leafConf, fmt.Sprintf("port: %d", ports[0])) {
		t.Fatal("the hub's leafnodes.conf has no port: 7422")
	}
	for path, b := range map[string][]byte{
		"etc/nats/leafnodes.conf":   []byte("host: 127.0.0.1\n" + leafConf),
		"etc/nats-leaf/users.conf":  files[SecretNATSLeaf+"/users.conf"],
		"etc/nats-leaf-tls/tls.crt": files["edgeflow-mqtt-tls/tls.crt"],
		"etc/nats-leaf-tls/tls.key": files["edgeflow-mqtt-tls/tls.key"],
		"etc/nats-uplink/ca.crt":    files[uplinkDir+"/greenhouse-north/ca.crt"],
	} {
		writeConf(t, root, path, b)
	}
	ho, err := server.ProcessConfigFile(filepath.Join(root, "etc/nats/leafnodes.conf"))
	if err != nil {
		t.Fatalf("nats-server cannot load the hub's leafnodes.conf with the generated users.conf: %v", err)
	}
	ho.Port, ho.NoLog, ho.NoSigs = -1, true, true
	hub := start(t, ho)

	// A site: components/uplink's leafnodes.conf, its URL as the StatefulSet builds it.
	siteConf, err := os.ReadFile("../../manifests/components/uplink/leafnodes.conf")
	if err != nil {
		t.Fatal(err)
	}
	writeConf(t, root, "etc/nats/site.conf", []byte("host: 127.0.0.1\nport: -1\n"+
		strings.ReplaceAll(string(siteConf), "/etc/nats-uplink/", filepath.Join(root, "etc/nats-uplink")+"/")))
	site := func(user, password string) *server.Server {
		t.Setenv("NATS_UPLINK_URL", fmt.Sprintf("tls://%s:%s@127.0.0.1:%d", user, password, ports[0]))
		o, err := server.ProcessConfigFile(filepath.Join(root, "etc/nats/site.conf"))
		if err != nil {
			t.Fatalf("nats-server cannot load components/uplink's leafnodes.conf: %v", err)
		}
		o.NoLog, o.NoSigs = true, true
		o.LeafNode.ReconnectInterval = 100 * time.Millisecond
		return start(t, o)
	}
	pw := func(s string) string { return string(files[uplinkDir+"/"+s+"/password"]) }
	good := site(string(files[uplinkDir+"/greenhouse-north/user"]), pw("greenhouse-north"))
	refused := map[string]*server.Server{
		"a wrong password":                     site("greenhouse-north", pw("greenhouse-north")+"x"),
		"lab-2's password as greenhouse-north": site("greenhouse-north", pw("lab-2")),
	}
	deadline := time.Now().Add(10 * time.Second)
	for good.NumLeafNodes() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if good.NumLeafNodes() != 1 {
		t.Fatal("the site with its uplink folder's credentials did not join the hub")
	}
	time.Sleep(time.Second) // the others have retried meanwhile
	for what, s := range refused {
		if n := s.NumLeafNodes(); n != 0 {
			t.Errorf("a site with %s joined the hub", what)
		}
	}
	if n := hub.NumLeafNodes(); n != 1 {
		t.Errorf("the hub has %d leaf nodes, want 1", n)
	}
}

func start(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s
}

func writeConf(t *testing.T, root, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, path), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
