package clustertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// traefikCRDs are the CRDs of Traefik's kubernetescrd provider, which the layout installs
// from traefik-crd.yaml (K3s: its traefik-crd chart). The provider watches every one.
var traefikCRDs = []string{"ingressroutes", "ingressroutetcps", "ingressrouteudps", "middlewares",
	"middlewaretcps", "serverstransports", "serverstransporttcps", "tlsoptions", "tlsstores", "traefikservices"}

// checkTraefik checks the layout's packaged Ingress controller, Traefik, applied by the
// server from its manifests folder: the default IngressClass, non-root on a read-only
// root, an Ingress answering over HTTP through the Service kube-system/traefik, a TLS
// Ingress answering over HTTPS with the certificate of its Secret and redirecting HTTP
// to HTTPS through a redirectScheme Middleware (what the k3s overlay's dashboard Ingress
// does), and a default TLSStore serving its certificate to clients that send no SNI.
func (k *k3sLayout) checkTraefik() {
	k.t.Helper()
	t0 := time.Now()
	k.waitFor(60*time.Second, "k3s-server to apply traefik.yaml", func() bool {
		_, err := k.kubectlErr("-n", "kube-system", "get", "deploy/traefik")
		return err == nil
	})
	k.kubectl("-n", "kube-system", "rollout", "status", "deploy/traefik", "--timeout=120s")
	k.t.Logf("Traefik ready %s after the check began", time.Since(t0).Round(100*time.Millisecond))
	if s := k.kubectl("-n", "kube-system", "get", "deploy", "traefik", "-o", "jsonpath={.metadata.managedFields[*].manager}"); !strings.Contains(s, "k3s-server-deploy") {
		k.t.Errorf("Traefik was not applied by the server's deploy controller (managers %q)", s)
	}
	crds := make([]string, len(traefikCRDs))
	for i, c := range traefikCRDs {
		crds[i] = "crd/" + c + ".traefik.io"
	}
	k.kubectl(append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crds...)...)
	if v := k.kubectl("get", "ingressclass", "traefik", "-o", `jsonpath={.metadata.annotations.ingressclass\.kubernetes\.io/is-default-class} {.spec.controller}`); v != "true traefik.io/ingress-controller" {
		k.t.Errorf("IngressClass traefik: default and controller %q, want \"true traefik.io/ingress-controller\"", v)
	}
	if v := k.kubectl("-n", "kube-system", "get", "svc", "traefik", "-o", `jsonpath={.spec.type} {.spec.ports[*].port}`); v != "LoadBalancer 80 443" {
		k.t.Errorf("Service kube-system/traefik: %q, want \"LoadBalancer 80 443\"", v)
	}
	svcIP := k.kubectl("-n", "kube-system", "get", "svc", "traefik", "-o", "jsonpath={.spec.clusterIP}")
	k.checkTraefikProcess()

	// A backend: busybox's httpd serving a token only this run knows.
	token := "k3s-layout-" + secure.Token()[:12]
	k.apply(`apiVersion: v1
kind: Pod
metadata: {name: k3s-layout-web, namespace: default, labels: {app: k3s-layout-web}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: ` + k.set["BUSYBOX_IMAGE"] + `
    imagePullPolicy: Never
    command: [/bin/sh, -c, "mkdir -p /tmp/www && echo ` + token + ` > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: k3s-layout-web, namespace: default}
spec:
  selector: {app: k3s-layout-web}
  ports: [{name: http, port: 80, targetPort: http}]
`)
	k.kubectl("wait", "--for=condition=Ready", "pod/k3s-layout-web", "--timeout=90s")

	// The TLS Secret: a certificate of a CA made here, for the TLS Ingress's host.
	const plainHost, tlsHost = "plain.k3s-layout.test", "secure.k3s-layout.test"
	ca, err := secure.NewCA("k3s-layout test CA", time.Hour)
	if err != nil {
		k.t.Fatal(err)
	}
	crtPEM, keyPEM, err := ca.Issue([]string{tlsHost}, true, time.Hour)
	if err != nil {
		k.t.Fatal(err)
	}
	block, _ := pem.Decode(crtPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		k.t.Fatal(err)
	}
	dir := k.t.TempDir()
	crtFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(crtFile, crtPEM, 0o600); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		k.t.Fatal(err)
	}
	k.kubectl("create", "secret", "tls", "k3s-layout-tls", "--cert="+crtFile, "--key="+keyFile)

	// A plain Ingress (no class: the default IngressClass's), and a TLS one whose HTTP
	// side redirects to HTTPS, as the k3s overlay's dashboard Ingress.
	k.apply(`apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: redirect-https, namespace: default}
spec:
  redirectScheme: {scheme: https, permanent: true}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: k3s-layout-plain, namespace: default}
spec:
  rules:
  - host: ` + plainHost + `
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: k3s-layout-web, port: {name: http}}}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: k3s-layout-tls
  namespace: default
  annotations: {traefik.ingress.kubernetes.io/router.middlewares: default-redirect-https@kubernetescrd}
spec:
  ingressClassName: traefik
  tls: [{hosts: [` + tlsHost + `], secretName: k3s-layout-tls}]
  rules:
  - host: ` + tlsHost + `
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: k3s-layout-web, port: {name: http}}}}]
`)
	if c := k.kubectl("get", "ingress", "k3s-layout-plain", "-o", "jsonpath={.spec.ingressClassName}"); c != "traefik" {
		k.t.Errorf("an Ingress without a class got class %q, want traefik (the default IngressClass)", c)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := traefikClient(svcIP, &tls.Config{RootCAs: roots})
	t1 := time.Now()
	var r answer
	k.waitFor(60*time.Second, "http://"+plainHost+"/ through Traefik at "+svcIP+":80 to answer the backend's token", func() bool {
		r = get(client, "http://"+plainHost+"/")
		return r.err == nil && r.code == http.StatusOK && r.body == token
	})
	k.t.Logf("Traefik: http://%s/ answered the backend %s after the Ingress was applied", plainHost, time.Since(t1).Round(100*time.Millisecond))
	k.waitFor(30*time.Second, "https://"+tlsHost+"/ to answer with the Secret's certificate", func() bool {
		r = get(client, "https://"+tlsHost+"/")
		return r.err == nil && r.code == http.StatusOK && r.body == token && r.serial(leaf)
	})
	k.t.Logf("Traefik: https://%s/ answered with the certificate of Secret k3s-layout-tls (verified against the test's CA)", tlsHost)
	if r = get(client, "http://"+tlsHost+"/a/b?c=d"); r.err != nil || r.code != http.StatusMovedPermanently || r.location != "https://"+tlsHost+"/a/b?c=d" {
		k.t.Errorf("http://%s/a/b?c=d: %d to %q (%v), want 301 to https://%s/a/b?c=d (the Middleware)", tlsHost, r.code, r.location, r.err, tlsHost)
	}
	// Without the Middleware, plain HTTP is served: the redirect is the Middleware's.
	if r = get(client, "http://"+plainHost+"/"); r.err != nil || r.code != http.StatusOK || r.body != token {
		k.t.Errorf("http://%s/ beside the TLS Ingress: %d %q %v, want 200 and the token", plainHost, r.code, r.body, r.err)
	}

	// Without SNI (a browser given an IP address), Traefik serves its default store's
	// certificate: its own self-signed one, until a TLSStore named default names a Secret
	// (the k3s overlay's, for the dashboard).
	if c := noSNICert(svcIP); c == nil || !strings.Contains(c.Subject.CommonName, "TRAEFIK DEFAULT CERT") {
		k.t.Errorf("without SNI and without a default TLSStore Traefik served %v, want its TRAEFIK DEFAULT CERT", c)
	}
	k.apply(`apiVersion: traefik.io/v1alpha1
kind: TLSStore
metadata: {name: default, namespace: default}
spec:
  defaultCertificate: {secretName: k3s-layout-tls}
`)
	k.waitFor(30*time.Second, "Traefik to serve the default TLSStore's certificate without SNI", func() bool {
		c := noSNICert(svcIP)
		return c != nil && c.SerialNumber.Cmp(leaf.SerialNumber) == 0
	})
	k.t.Logf("Traefik: a TLSStore named default serves Secret k3s-layout-tls to clients without SNI")

	for _, obj := range []string{"tlsstore.traefik.io/default", "ingress/k3s-layout-tls", "ingress/k3s-layout-plain",
		"middleware.traefik.io/redirect-https", "secret/k3s-layout-tls", "service/k3s-layout-web", "pod/k3s-layout-web"} {
		k.kubectl("delete", obj, "--wait=false")
	}
}

// checkTraefikProcess checks Traefik's process as it runs: as user 65532, not root, on a
// read-only root file system, and logs its memory.
func (k *k3sLayout) checkTraefikProcess() {
	k.t.Helper()
	out, _ := exec.Command("pgrep", "-x", "traefik").Output()
	pids := strings.Fields(string(out))
	if len(pids) != 1 {
		k.t.Errorf("pgrep -x traefik: %q, want one process", pids)
		return
	}
	status := k.read("/proc/" + pids[0] + "/status")
	var uid, rss string
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid = strings.Fields(v)[0]
		}
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
	}
	if uid != "65532" {
		k.t.Errorf("Traefik runs as uid %s, want 65532", uid)
	}
	// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
	ro := false
	for _, l := range strings.Split(k.read("/proc/"+pids[0]+"/mountinfo"), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == "/" {
			ro = strings.HasPrefix(f[5], "ro,") || f[5] == "ro"
		}
	}
	if !ro {
		k.t.Errorf("Traefik's root file system is writable")
	}
	size := ""
	if st, err := os.Stat(filepath.Join(k.set["DEVCLUSTER_DIR"], "bin", "traefik")); err == nil {
		size = fmt.Sprintf(", binary %.0f MiB", float64(st.Size())/(1<<20))
	}
	k.t.Logf("Traefik (pid %s) runs as uid %s on a read-only root, RSS %s%s", pids[0], uid, rss, size)
}

// traefikClient sends every request to Traefik's Service at ip (port 80 for http, 443
// for https) whatever the URL's host, which stays the Host header and the TLS server
// name; it follows no redirect.
func traefikClient(ip string, tc *tls.Config) *http.Client {
	d := &net.Dialer{Timeout: 3 * time.Second}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return d.DialContext(ctx, network, net.JoinHostPort(ip, port))
			},
			TLSClientConfig:   tc,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answer is what get saw of a response.
type answer struct {
	code     int
	body     string // trimmed
	location string // the Location header
	tls      *tls.ConnectionState
	err      error
}

// serial reports whether the server's certificate was leaf.
func (a answer) serial(leaf *x509.Certificate) bool {
	return a.tls != nil && len(a.tls.PeerCertificates) > 0 && a.tls.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) == 0
}

func get(c *http.Client, url string) answer {
	resp, err := c.Get(url)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return answer{code: resp.StatusCode, body: string(bytes.TrimSpace(b)), location: resp.Header.Get("Location"), tls: resp.TLS, err: err}
}

// noSNICert is the certificate Traefik serves at ip:443 to a client that sends no server
// name (nil on error).
func noSNICert(ip string) *x509.Certificate {
	d := &net.Dialer{Timeout: 3 * time.Second}
	// Not verified: the certificate itself is what the caller checks.
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(ip, "443"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil
	}
	defer conn.Close()
	if certs := conn.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0]
	}
	return nil
}
