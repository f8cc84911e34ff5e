package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// Secret and key names: the Kubernetes manifests reference exactly these.
const (
	SecretNATS      = "edgeflow-nats"
	SecretMQTT      = "edgeflow-mqtt"
	SecretMQTTTLS   = "edgeflow-mqtt-tls"
	SecretInflux    = "edgeflow-influxdb"
	SecretDashboard = "edgeflow-dashboard"
	// SecretDashboardTLS is the dashboard's HTTPS certificate and key (tls.crt,
	// tls.key), which Traefik serves for the k3s overlays' Ingress; task deploy
	// applies it as a kubernetes.io/tls Secret.
	SecretDashboardTLS = "edgeflow-dashboard-tls"
	// SecretNATSRouteTLS is the certificate (tls.crt, tls.key) the NATS servers
	// of a cluster (components/nats-cluster) present to each other on their
	// routes, both as server and as client, and the CA (ca.crt) they require
	// of the other end.
	SecretNATSRouteTLS = "edgeflow-nats-route-tls"
	// caDir holds the CA's private key, which signs server certificates
	// and must not be in the cluster.
	caDir = "ca"
)

// NATSUsers are the users of manifests/base/nats/auth.conf, one password
// file each in edgeflow-nats.
var NATSUsers = []string{"ingest", "processor", "notifier", "dashboard"}

// NATSRoute is the key, in edgeflow-nats, of the password the NATS servers
// of a cluster (components/nats-cluster) log in to each other's routes with.
const NATSRoute = "route"

// InfluxUsers are the services' InfluxDB users: <user>-token in
// edgeflow-influxdb is what each gets as EDGEFLOW_INFLUX_TOKEN, never the
// admin's. The processor may only write the buckets, the dashboard only
// read them (task deploy sets them up: influxadmin on 1.8, authorizations
// on 2.x).
var InfluxUsers = []string{"processor", "dashboard"}

// MQTTUsers are the users of the Mosquitto password file: <user>-password
// in edgeflow-mqtt holds each password.
var MQTTUsers = []string{"ingest", "device"}

// DefaultSANs are the names the broker's certificate is valid for: the
// Mosquitto and NATS Services of namespace edgeflow in every spelling a pod
// may use, and loopback for port-forwards and tests.
var DefaultSANs = []string{
	"mosquitto", "mosquitto.edgeflow", "mosquitto.edgeflow.svc", "mosquitto.edgeflow.svc.cluster.local",
	"nats", "nats.edgeflow.svc", "localhost", "127.0.0.1",
}

// DefaultDashboardSANs are the names the dashboard's HTTPS certificate is valid
// for: its Service in every spelling, and loopback for port-forwards. task deploy
// adds DASHBOARD_HOST and the nodes' names and addresses (the Ingress answers on
// every node).
var DefaultDashboardSANs = []string{
	"dashboard", "dashboard.edgeflow", "dashboard.edgeflow.svc", "dashboard.edgeflow.svc.cluster.local",
	"localhost", "127.0.0.1",
}

// NATSRouteSANs are the names of the NATS servers' routes: every pod of the
// nats-headless Service of namespace edgeflow (nats-0.nats-headless, ...), in every
// spelling. A route dials its peer by that name and checks it against the
// peer's certificate.
var NATSRouteSANs = []string{
	"*.nats-headless", "*.nats-headless.edgeflow", "*.nats-headless.edgeflow.svc", "*.nats-headless.edgeflow.svc.cluster.local",
}

// renewBefore: a server certificate that expires sooner is reissued.
const renewBefore = 30 * 24 * time.Hour

// Options of Generate.
type Options struct {
	Dir string
	// SANs are added to DefaultSANs.
	SANs []string
	// DashboardSANs are added to DefaultDashboardSANs.
	DashboardSANs []string
	// LeafSites are sites the hub (overlays/hub) gets a leaf node user for,
	// added to those it has (leafUsers).
	LeafSites []string
	// Influx18 makes <user>-token <user>:<user>-password for InfluxDB 1.8's
	// users; for 2.x, task deploy writes the tokens InfluxDB makes.
	Influx18 bool
}

// File is what Generate did with one file.
type File struct {
	Path   string
	Action string // "created", "kept" or "updated"
}

// Result lists every file, in order.
type Result struct{ Files []File }

func (r *Result) add(path, action string) { r.Files = append(r.Files, File{path, action}) }

// Generate makes the missing secrets in o.Dir and brings the derived files up
// to date (see the package comment).
func Generate(o Options) (Result, error) {
	var res Result
	g := gen{dir: o.Dir, res: &res}
	for _, u := range append(slices.Clone(NATSUsers), NATSRoute) {
		if _, err := g.token(SecretNATS, u); err != nil {
			return res, err
		}
	}
	pw := map[string]string{}
	for _, u := range MQTTUsers {
		v, err := g.token(SecretMQTT, u+"-password")
		if err != nil {
			return res, err
		}
		pw[u] = v
	}
	if err := g.passwd(pw); err != nil {
		return res, err
	}
	ca, err := g.ca()
	if err != nil {
		return res, err
	}
	if err := g.cert(SecretMQTTTLS, ca, append(slices.Clone(DefaultSANs), o.SANs...), serverUsage); err != nil {
		return res, err
	}
	if err := g.cert(SecretDashboardTLS, ca, append(slices.Clone(DefaultDashboardSANs), o.DashboardSANs...), serverUsage); err != nil {
		return res, err
	}
	if err := g.cert(SecretNATSRouteTLS, ca, NATSRouteSANs, secure.PeerUsages); err != nil {
		return res, err
	}
	if err := g.derived(SecretNATSRouteTLS, "ca.crt", ca.CertPEM); err != nil {
		return res, err
	}
	if err := g.leafUsers(o.LeafSites, ca); err != nil {
		return res, err
	}
	if _, err := g.token(SecretInflux, "admin-password"); err != nil {
		return res, err
	}
	if _, err := g.token(SecretInflux, "token"); err != nil {
		return res, err
	}
	for _, u := range InfluxUsers {
		pw, err := g.token(SecretInflux, u+"-password")
		if err != nil {
			return res, err
		}
		if o.Influx18 {
			if err := g.derived(SecretInflux, u+"-token", []byte(u+":"+pw)); err != nil {
				return res, err
			}
		}
	}
	// service-token was the admin's credential, which every service got.
	if err := g.remove(SecretInflux, "service-token"); err != nil {
		return res, err
	}
	if _, err := g.token(SecretDashboard, "token"); err != nil {
		return res, err
	}
	return res, nil
}

type gen struct {
	dir string
	res *Result
}

func (g gen) path(secret, key string) string { return filepath.Join(g.dir, secret, key) }

// read returns a file's content, or nil when it does not exist.
func (g gen) read(secret, key string) ([]byte, error) {
	b, err := os.ReadFile(g.path(secret, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// write writes a file 0600 (folders 0700), atomically: a crash leaves the
// old file or the new one, never half of one.
func (g gen) write(secret, key string, b []byte) error {
	// A key may be a path (uplink/<site>/password).
	dir, name := filepath.Split(g.path(secret, key))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), g.path(secret, key))
}

// token keeps an existing non-empty secret or makes a random one. A
// trailing newline (from an editor) is not part of the value.
func (g gen) token(secret, key string) (string, error) {
	b, err := g.read(secret, key)
	if err != nil {
		return "", err
	}
	if v := strings.TrimRight(string(b), "\r\n"); v != "" {
		g.res.add(g.path(secret, key), "kept")
		return v, nil
	}
	v := secure.Token()
	if err := g.write(secret, key, []byte(v)); err != nil {
		return "", err
	}
	g.res.add(g.path(secret, key), "created")
	return v, nil
}

// remove deletes a file that is no longer made.
func (g gen) remove(secret, key string) error {
	err := os.Remove(g.path(secret, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		g.res.add(g.path(secret, key), "removed")
	}
	return err
}

// derived writes b unless the file already holds exactly b.
func (g gen) derived(secret, key string, b []byte) error {
	have, err := g.read(secret, key)
	if err != nil {
		return err
	}
	switch {
	case bytes.Equal(have, b):
		g.res.add(g.path(secret, key), "kept")
		return nil
	case have == nil:
		g.res.add(g.path(secret, key), "created")
	default:
		g.res.add(g.path(secret, key), "updated")
	}
	return g.write(secret, key, b)
}

// passwd keeps the Mosquitto password file's lines that still match the
// passwords (a hash has a random salt: rewriting every time would change the
// Secret on every run), replaces the others, and keeps lines of users it
// does not manage (device users added with mosquitto_passwd).
func (g gen) passwd(pw map[string]string) error {
	have, err := g.read(SecretMQTT, "passwd")
	if err != nil {
		return err
	}
	var out []string
	done := map[string]bool{}
	for _, line := range strings.Split(string(have), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		user, _, _ := strings.Cut(line, ":")
		p, managed := pw[user]
		if !managed {
			out = append(out, line)
			continue
		}
		if !done[user] && secure.CheckMosquittoPasswd(line, p) {
			out = append(out, line)
			done[user] = true
		}
	}
	for _, u := range MQTTUsers {
		if done[u] {
			continue
		}
		line, err := secure.MosquittoPasswdLine(u, pw[u])
		if err != nil {
			return err
		}
		out = append(out, line)
	}
	return g.derived(SecretMQTT, "passwd", []byte(strings.Join(out, "\n")+"\n"))
}

// ca keeps the CA (edgeflow-mqtt-tls/ca.crt with ca/ca.key) or makes one.
func (g gen) ca() (*secure.CA, error) {
	certPEM, err := g.read(SecretMQTTTLS, "ca.crt")
	if err != nil {
		return nil, err
	}
	keyPEM, err := g.read(caDir, "ca.key")
	if err != nil {
		return nil, err
	}
	if certPEM != nil && keyPEM != nil {
		ca, err := secure.LoadCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w (delete both to make a new CA)",
				g.path(SecretMQTTTLS, "ca.crt"), g.path(caDir, "ca.key"), err)
		}
		g.res.add(g.path(SecretMQTTTLS, "ca.crt"), "kept")
		g.res.add(g.path(caDir, "ca.key"), "kept")
		return ca, nil
	}
	if certPEM != nil || keyPEM != nil {
		return nil, fmt.Errorf("only one of %s and %s exists: restore the other, or delete both to make a new CA (devices that pinned the old one must get the new ca.crt)",
			g.path(SecretMQTTTLS, "ca.crt"), g.path(caDir, "ca.key"))
	}
	ca, err := secure.NewCA("edgeflow CA", secure.CAValidity)
	if err != nil {
		return nil, err
	}
	if err := g.write(caDir, "ca.key", ca.KeyPEM); err != nil {
		return nil, err
	}
	if err := g.write(SecretMQTTTLS, "ca.crt", ca.CertPEM); err != nil {
		return nil, err
	}
	g.res.add(g.path(SecretMQTTTLS, "ca.crt"), "created")
	g.res.add(g.path(caDir, "ca.key"), "created")
	return ca, nil
}

// serverUsage: a TLS server certificate.
var serverUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

// cert keeps secret's certificate (tls.crt with tls.key) while ca signed it, it
// covers every name in sans for every one of usages and has 30 days left;
// otherwise it issues a new one.
func (g gen) cert(secret string, ca *secure.CA, sans []string, usages []x509.ExtKeyUsage) error {
	crt, err := g.read(secret, "tls.crt")
	if err != nil {
		return err
	}
	key, err := g.read(secret, "tls.key")
	if err != nil {
		return err
	}
	if crt != nil && key != nil && certValid(ca, crt, key, sans, usages) {
		g.res.add(g.path(secret, "tls.crt"), "kept")
		g.res.add(g.path(secret, "tls.key"), "kept")
		return nil
	}
	action := "created"
	if crt != nil || key != nil {
		action = "updated"
	}
	crt, key, err = ca.IssueFor(sans, usages, secure.ServerValidity)
	if err != nil {
		return err
	}
	if err := g.write(secret, "tls.key", key); err != nil {
		return err
	}
	if err := g.write(secret, "tls.crt", crt); err != nil {
		return err
	}
	g.res.add(g.path(secret, "tls.crt"), action)
	g.res.add(g.path(secret, "tls.key"), action)
	return nil
}

// certValid reports whether crt (with key) chains to ca, is valid for every
// name in sans and every one of usages, and is not about to expire.
func certValid(ca *secure.CA, crt, key []byte, sans []string, usages []x509.ExtKeyUsage) bool {
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		return false
	}
	b, _ := pem.Decode(crt)
	if b == nil {
		return false
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil || time.Until(leaf.NotAfter) < renewBefore {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, n := range sans {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		// A wildcard name is checked with a name it covers.
		n = strings.Replace(n, "*", "x", 1)
		// VerifyOptions.KeyUsages accepts any one of its list: check each.
		for _, u := range usages {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: n, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				return false
			}
		}
	}
	return true
}
