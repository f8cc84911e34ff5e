package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/scripts/internal/footprint"
)

// k3sLayout is the dev cluster's K3s layout (scripts/devcluster, LAYOUT=k3s) as a test
// drives it.
type k3sLayout struct {
	t          *testing.T
	root       string
	env        []string          // the environment of every script and kubectl call
	set        map[string]string // env.sh's settings for the layout
	kubeconfig string
}

// TestK3sLayout brings up the K3s layout of the dev cluster (one k3s-server process: kine
// on SQLite, kube-apiserver, controller-manager, scheduler, kubelet and kube-proxy, beside
// containerd), checks what makes it that layout, restarts it and measures it idle, then
// wipes it. go tool task test sets EDGEFLOW_K3S_LAYOUT_TEST=1 (root).
// EDGEFLOW_K3S_IDLE (a duration, default 60s) is how long the idle server is sampled.
func TestK3sLayout(t *testing.T) {
	if os.Getenv("EDGEFLOW_K3S_LAYOUT_TEST") == "" {
		t.Skip("set EDGEFLOW_K3S_LAYOUT_TEST=1 (go tool task test does) to bring the dev cluster's K3s layout up, check it and wipe it; needs root")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the dev cluster needs root (network namespace, iptables, mounts)")
	}
	idle := time.Minute
	if v := os.Getenv("EDGEFLOW_K3S_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("EDGEFLOW_K3S_IDLE: %v", err)
		}
		idle = d
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	k := &k3sLayout{t: t, root: root}
	// The layout's own defaults: no setting of a stock cluster may leak in. A
	// DEVCLUSTER_DIR other than the stock cluster's is kept (a K3s layout's own state and
	// builds, e.g. one per checkout).
	for _, kv := range os.Environ() {
		name, v, _ := strings.Cut(kv, "=")
		switch name {
		case "DEVCLUSTER_DIR":
			if v == "" || filepath.Clean(v) == "/tmp/edgeflow-devcluster" {
				continue
			}
		case "LAYOUT", "KUBECONFIG", "DEVCLUSTER_NETNS", "DEVCLUSTER_VETH_HOST",
			"DEVCLUSTER_VETH_NODE", "DEVCLUSTER_BRIDGE", "DEVCLUSTER_LINK_CIDR", "DEVCLUSTER_SVC_CIDR",
			"DEVCLUSTER_CLUSTER_CIDR", "DEVCLUSTER_POD_CIDR":
			continue
		}
		k.env = append(k.env, kv)
	}
	k.env = append(k.env, "DEVCLUSTER_LAYOUT=k3s")
	k.set = k.settings()
	if _, err := exec.LookPath("kubectl"); err != nil {
		k.env = append(k.env, "PATH="+k.set["DEVCLUSTER_DIR"]+"/bin"+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	// One cluster at a time: both kubelets would share the host's kubepods cgroups.
	if out, _ := exec.Command("ip", "netns", "pids", "efk8s").Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("a stock dev cluster is running (network namespace efk8s, pids %s): stop it first", bytes.Fields(out))
	}

	// 1. Up from a wiped state.
	k.script("down.sh", "--wipe")
	t0 := time.Now()
	k.up()
	t.Cleanup(k.wipe)
	t.Logf("K3s layout up from a wiped state in %s (build checked)", time.Since(t0).Round(100*time.Millisecond))
	if want := k.set["KUBECONFIG_OUT"]; k.kubeconfig != want || !strings.HasSuffix(want, "/etc/rancher/k3s/k3s.yaml") {
		t.Errorf("up.sh printed KUBECONFIG=%s, want %s (K3s's k3s.yaml under the state dir)", k.kubeconfig, want)
	}
	for _, f := range []string{k.set["ADMIN_KUBECONFIG"], k.kubeconfig} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("kubeconfig %s: %v, mode %v (want 0600)", f, err, st)
		}
	}

	// 2. One server process beside containerd; nothing else recorded, no etcd.
	pids := k.pids()
	if len(pids) != 2 || pids["k3s-server"] == 0 || pids["containerd"] == 0 {
		t.Fatalf("pid files %v, want k3s-server and containerd only", pids)
	}
	if out, _ := exec.Command("pgrep", "-x", "etcd").Output(); len(out) > 0 {
		t.Logf("note: an etcd runs on the machine (pids %s), not this cluster's", bytes.Fields(out))
	}
	if ready, err := time.Parse(time.RFC3339, k.kubectl("get", "node", "edgeflow-node", "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].lastTransitionTime}`)); err == nil {
		t.Logf("node Ready %s after k3s-server started (to the second)", ready.Sub(procStart(t, pids["k3s-server"])).Round(time.Second))
	}
	threads := k.threadsOf(pids["k3s-server"])
	t.Logf("k3s-server (pid %d, %d threads) runs kine, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy", pids["k3s-server"], threads)
	logText := k.read(filepath.Join(k.set["DEVCLUSTER_DIR"], "run", "logs", "k3s-server.log"))
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"} {
		if !strings.Contains(logText, "k3s-server: starting "+c) {
			t.Errorf("k3s-server's log does not show %s starting", c)
		}
	}

	// 3. The node, CoreDNS (applied by the server from its manifests folder), cluster DNS.
	if s := k.kubectl("get", "node", "edgeflow-node", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`); s != "True" {
		t.Errorf("node Ready=%q", s)
	}
	if s := k.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "jsonpath={.items[*].status.phase}"); s != "Running" {
		t.Errorf("CoreDNS pods: %q, want one Running", s)
	}
	if s := k.kubectl("-n", "kube-system", "get", "deploy", "coredns", "-o", "jsonpath={.metadata.managedFields[*].manager}"); !strings.Contains(s, "k3s-server-deploy") {
		t.Errorf("CoreDNS was not applied by the server's deploy controller (managers %q)", s)
	}
	k.checkDNS()

	// 4. The datastore is kine on SQLite: the file where K3s keeps it, the API server's
	// keys read back through kine's etcd API, a Secret encrypted at rest in it.
	db := k.set["K3S_DB"]
	if !strings.HasSuffix(db, "/server/db/state.db") {
		t.Errorf("K3S_DB=%s, want <state>/server/db/state.db", db)
	}
	st0, err := os.Stat(db)
	if err != nil || st0.Size() == 0 {
		t.Fatalf("no SQLite database at %s: %v", db, err)
	}
	keys := k.etcdctl("get", "/registry/namespaces/", "--prefix", "--keys-only")
	for _, ns := range []string{"default", "kube-system"} {
		if !strings.Contains(keys, "/registry/namespaces/"+ns) {
			t.Errorf("kine (etcdctl at %s) has no /registry/namespaces/%s:\n%s", k.set["KINE_SOCK"], ns, keys)
		}
	}
	k.kubectl("create", "secret", "generic", "k3s-layout-probe", "--from-literal=token=plaintext-canary")
	raw := k.etcdctl("get", "/registry/secrets/default/k3s-layout-probe", "--print-value-only")
	if !strings.HasPrefix(raw, "k8s:enc:secretbox:v1:") || strings.Contains(raw, "plaintext-canary") {
		t.Errorf("the Secret is not encrypted in kine (%d bytes, starting %q)", len(raw), raw[:min(len(raw), 24)])
	}
	// Writes through the API server are revisions of kine's log, in the SQLite file (its
	// write-ahead log keeps its size: SQLite reuses it after each checkpoint).
	rev0, wal0 := k.kineRevision(), modTime(db+"-wal")
	for i := range 20 {
		k.kubectl("create", "configmap", fmt.Sprintf("k3s-layout-fill-%d", i), "--from-literal=v="+strings.Repeat("x", 8000))
	}
	rev1 := k.kineRevision()
	fill := strings.Count(k.etcdctl("get", "/registry/configmaps/default/k3s-layout-fill-", "--prefix", "--keys-only"), "k3s-layout-fill-")
	if rev1 < rev0+20 || fill != 20 || !modTime(db+"-wal").After(wal0) {
		t.Errorf("20 ConfigMaps: kine revision %d -> %d, %d keys in kine, WAL modified %v -> %v", rev0, rev1, fill, wal0, modTime(db+"-wal"))
	}
	t.Logf("kine on SQLite %s: 20 ConfigMaps took its revision from %d to %d and are read back through its etcd API", db, rev0, rev1)

	// 5. A pod runs (scheduled, sandboxed, on the pod network).
	t1 := time.Now()
	k.apply(`apiVersion: v1
kind: Pod
metadata: {name: k3s-layout-probe, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: pause, image: ` + k.set["PAUSE_IMAGE"] + `, imagePullPolicy: Never}]
`)
	k.kubectl("wait", "--for=condition=Ready", "pod/k3s-layout-probe", "--timeout=90s")
	ip := k.kubectl("get", "pod", "k3s-layout-probe", "-o", "jsonpath={.status.podIP}")
	if _, cidr, _ := net.ParseCIDR(k.set["DEVCLUSTER_POD_CIDR"]); cidr == nil || !cidr.Contains(net.ParseIP(ip)) {
		t.Errorf("pod IP %q is not in %s", ip, k.set["DEVCLUSTER_POD_CIDR"])
	}
	t.Logf("a pod was Ready %s after it was created (IP %s)", time.Since(t1).Round(100*time.Millisecond), ip)

	// 6. The packaged add-ons: a claim on the default StorageClass local-path bound and
	// mounted, its directory removed with it; kubectl top through metrics-server; Ingresses
	// over HTTP and HTTPS through Traefik.
	k.checkLocalPath()
	k.checkMetrics()
	// Traefik, the packaged Ingress controller (k3s_traefik_test.go).
	k.checkTraefik()

	// 6b. What K3s runs beside the components: ServiceLB and the network policy controller.
	k.checkServiceLB()
	k.checkNetworkPolicy()

	// 7. The manifests folder: a new file is applied, a changed one applied again.
	mf := filepath.Join(k.set["MANIFESTS"], "k3s-layout-test.yaml")
	cm := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k3s-layout-auto, namespace: default}\ndata: {v: \"" + v + "\"}\n"
	}
	for _, v := range []string{"1", "2"} {
		if err := os.WriteFile(mf, []byte(cm(v)), 0o600); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		k.waitFor(30*time.Second, "the server to apply "+mf+" with v="+v, func() bool {
			out, err := k.kubectlErr("get", "configmap", "k3s-layout-auto", "-o", "jsonpath={.data.v}")
			return err == nil && out == v
		})
		t.Logf("manifests folder: ConfigMap with v=%s applied %s after the file was written", v, time.Since(t2).Round(100*time.Millisecond))
	}

	// 8. Stop and start again: everything comes back from the SQLite file.
	t3 := time.Now()
	k.script("down.sh")
	t.Logf("down.sh (state kept) in %s", time.Since(t3).Round(100*time.Millisecond))
	if alive(pids["k3s-server"]) {
		t.Errorf("k3s-server (pid %d) still runs after down.sh", pids["k3s-server"])
	}
	t4 := time.Now()
	k.up()
	t.Logf("up.sh on the kept state in %s", time.Since(t4).Round(100*time.Millisecond))
	if v := k.kubectl("get", "configmap", "k3s-layout-auto", "-o", "jsonpath={.data.v}"); v != "2" {
		t.Errorf("after a restart the ConfigMap holds %q, want 2 (kept in SQLite)", v)
	}
	k.checkDNS()

	// 9. Idle footprint of the server process, containerd and its shims, CoreDNS.
	k.measureIdle(idle)
}

// checkLocalPath binds a claim without a storage class (so the default one, K3s's
// local-path) to a pod, then deletes both and waits for the volume's directory to go.
func (k *k3sLayout) checkLocalPath() {
	k.t.Helper()
	if v := k.kubectl("get", "storageclass", "local-path", "-o", `jsonpath={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class}`); v != "true" {
		k.t.Errorf("StorageClass local-path is not the default (%q)", v)
	}
	t0 := time.Now()
	k.apply(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: k3s-layout-claim, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: k3s-layout-volume, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: sh
    image: ` + k.set["BUSYBOX_IMAGE"] + `
    imagePullPolicy: Never
    command: [/bin/sh, -c, "echo local-path > /data/probe && sleep 3600"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: k3s-layout-claim}}]
`)
	k.kubectl("wait", "--for=condition=Ready", "pod/k3s-layout-volume", "--timeout=120s")
	pv := k.kubectl("get", "pvc", "k3s-layout-claim", "-o", "jsonpath={.spec.volumeName}")
	path := k.kubectl("get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}")
	storage := filepath.Join(k.set["K3S_DATA"], "storage") + "/"
	if !strings.HasPrefix(path, storage) {
		k.t.Errorf("volume %s at %q, want under %s", pv, path, storage)
	}
	k.waitFor(10*time.Second, "the pod's write in "+path, func() bool {
		b, err := os.ReadFile(filepath.Join(path, "probe"))
		return err == nil && string(b) == "local-path\n"
	})
	k.t.Logf("local-path: claim bound to %s at %s and written by its pod %s after they were created", pv, path, time.Since(t0).Round(100*time.Millisecond))
	k.kubectl("delete", "pod", "k3s-layout-volume", "--wait=true", "--timeout=60s")
	k.kubectl("delete", "pvc", "k3s-layout-claim", "--wait=true", "--timeout=60s")
	k.waitFor(60*time.Second, "local-path to delete "+path, func() bool {
		_, err := os.Stat(path)
		return os.IsNotExist(err)
	})
}

// checkMetrics waits for kubectl top (metrics-server behind the aggregation layer).
func (k *k3sLayout) checkMetrics() {
	k.t.Helper()
	t0 := time.Now()
	var out string
	k.waitFor(150*time.Second, "kubectl top node (metrics-server)", func() bool {
		var err error
		out, err = k.kubectlErr("top", "node", "--no-headers")
		return err == nil && strings.HasPrefix(out, "edgeflow-node")
	})
	k.t.Logf("kubectl top node (%s after the check began): %s", time.Since(t0).Round(time.Second), strings.Join(strings.Fields(out), " "))
	k.waitFor(60*time.Second, "kubectl top pod -n kube-system to show CoreDNS", func() bool {
		out, err := k.kubectlErr("top", "pod", "-n", "kube-system", "--no-headers")
		return err == nil && strings.Contains(out, "coredns")
	})
}

// checkServiceLB checks the server's ServiceLB: a LoadBalancer Service gets the node's
// address and answers on NODE-IP:PORT from the host; a second one on the same port stays
// pending with a warning Event until the first stops being a LoadBalancer; a Service
// with a loadBalancerClass is left to its class.
func (k *k3sLayout) checkServiceLB() {
	k.t.Helper()
	nodeIP := k.set["NODE_IP"]
	if net.ParseIP(nodeIP) == nil {
		k.t.Fatalf("env.sh prints no NODE_IP (%q)", nodeIP)
	}
	if !strings.Contains(k.read(filepath.Join(k.set["DEVCLUSTER_DIR"], "run", "logs", "k3s-server.log")), "servicelb: LoadBalancer Services get node") {
		k.t.Errorf("k3s-server's log does not show its ServiceLB starting")
	}
	lbService := func(name string, port int, class string) string {
		c := ""
		if class != "" {
			c = "\n  loadBalancerClass: " + class
		}
		return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  type: LoadBalancer%s
  selector: {app: k3s-layout-lb}
  ports: [{name: http, port: %d, targetPort: 8080}]
`, name, c, port)
	}
	ingress := func(name string) string {
		return k.kubectl("get", "svc", name, "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}")
	}
	t0 := time.Now()
	k.apply(busyboxWeb(k.set["BUSYBOX_IMAGE"], "default", "k3s-layout-lb", "app: k3s-layout-lb", "k3s-layout-lb") + "---\n" + lbService("k3s-layout-lb", 18080, ""))
	k.waitFor(30*time.Second, "LoadBalancer k3s-layout-lb to get "+nodeIP, func() bool { return ingress("k3s-layout-lb") == nodeIP })
	k.t.Logf("servicelb: k3s-layout-lb got ingress %s %s after it was created", nodeIP, time.Since(t0).Round(100*time.Millisecond))
	k.kubectl("wait", "--for=condition=Ready", "pod/k3s-layout-lb", "--timeout=90s")
	url := "http://" + net.JoinHostPort(nodeIP, "18080") + "/"
	k.waitForHTTP(url, "k3s-layout-lb\n")

	// The same port again: pending, with an Event naming the holder.
	k.apply(lbService("k3s-layout-lb2", 18080, "") + "---\n" + lbService("k3s-layout-lb-class", 18081, "example.com/other"))
	k.waitFor(30*time.Second, "an UnAvailableLoadBalancer Event for k3s-layout-lb2", func() bool {
		out, err := k.kubectlErr("get", "events", "--field-selector", "involvedObject.name=k3s-layout-lb2,reason=UnAvailableLoadBalancer", "-o", "jsonpath={.items[*].message}")
		if err == nil && strings.Contains(out, "18080/TCP (held by default/k3s-layout-lb)") {
			k.t.Logf("servicelb: k3s-layout-lb2 pending: %s", out)
			return true
		}
		return false
	})
	time.Sleep(2 * time.Second) // what a wrong controller would do, it would have done
	if ip := ingress("k3s-layout-lb2"); ip != "" {
		k.t.Errorf("k3s-layout-lb2 asks for port 18080 held by k3s-layout-lb, yet got ingress %q", ip)
	}
	if ip := ingress("k3s-layout-lb-class"); ip != "" {
		k.t.Errorf("k3s-layout-lb-class has a loadBalancerClass, yet got ingress %q", ip)
	}
	if ip := ingress("k3s-layout-lb"); ip != nodeIP {
		k.t.Errorf("k3s-layout-lb lost its ingress to the second Service: %q", ip)
	}

	// The holder stops being a LoadBalancer: its address goes, the pending one gets the port.
	k.kubectl("patch", "svc", "k3s-layout-lb", "-p", `{"spec":{"type":"ClusterIP"}}`)
	k.waitFor(30*time.Second, "k3s-layout-lb2 to get the port k3s-layout-lb let go", func() bool {
		return ingress("k3s-layout-lb2") == nodeIP
	})
	if ip := ingress("k3s-layout-lb"); ip != "" {
		k.t.Errorf("k3s-layout-lb is a ClusterIP Service now, yet keeps ingress %q", ip)
	}
	k.waitForHTTP(url, "k3s-layout-lb\n")
	k.t.Logf("servicelb: once k3s-layout-lb became ClusterIP, k3s-layout-lb2 got %s and answers on %s", nodeIP, url)
	k.kubectl("delete", "svc", "k3s-layout-lb", "k3s-layout-lb2", "k3s-layout-lb-class")
	k.kubectl("delete", "pod", "k3s-layout-lb", "--wait=false")
	// Deleted: kube-proxy drops its rules, and the port no longer answers.
	k.waitFor(30*time.Second, "port 18080 to close after its Services were deleted", func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(nodeIP, "18080"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// checkNetworkPolicy checks that NetworkPolicies are enforced (kube-router's controller
// in the server): a default-deny ingress policy cuts a client pod off from a web pod, an
// allow for the client's labels lets it (and not a pod of other labels) back in, and a
// default-deny egress policy blocks DNS until a policy allows port 53 to kube-system.
func (k *k3sLayout) checkNetworkPolicy() {
	k.t.Helper()
	if !strings.Contains(k.read(filepath.Join(k.set["DEVCLUSTER_DIR"], "run", "logs", "k3s-server.log")), "network policy: kube-router") {
		k.t.Errorf("k3s-server's log does not show the network policy controller starting")
	}
	const srv, cli = "k3s-layout-np", "k3s-layout-np-client"
	// Debian's static busybox cannot be the client: its wget and nc crash (SIGSEGV) in a
	// container without glibc's NSS modules. A small Go program serves and probes.
	img := k.netprobeImage()
	probe := func(ns, name, labels string, args ...string) string {
		return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `, namespace: ` + ns + `, labels: {` + labels + `}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: probe, image: ` + img + `, imagePullPolicy: Never, args: ["` + strings.Join(args, `", "`) + `"]}]
`
	}
	k.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: " + srv + "}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: " + cli + "}\n---\n" +
		probe(srv, "web", "app: web", "serve", ":8080", "np-web") + "---\n" +
		probe(cli, "client", "role: client", "wait") + "---\n" + probe(cli, "other", "role: other", "wait"))
	defer k.kubectl("delete", "namespace", srv, cli, "--wait=false")
	k.kubectl("-n", srv, "wait", "--for=condition=Ready", "pod/web", "--timeout=90s")
	k.kubectl("-n", cli, "wait", "--for=condition=Ready", "pod/client", "pod/other", "--timeout=90s")
	webIP := k.kubectl("-n", srv, "get", "pod", "web", "-o", "jsonpath={.status.podIP}")
	get := func(pod string) (string, error) {
		return k.kubectlErr("-n", cli, "exec", pod, "--", "/netprobe", "get", "http://"+webIP+":8080/")
	}
	lookup := func() (string, error) {
		return k.kubectlErr("-n", cli, "exec", "client", "--", "/netprobe", "lookup", "kubernetes.default.svc.cluster.local.")
	}
	reaches := func(pod string) bool { out, err := get(pod); return err == nil && out == "np-web" }
	blocked := func(pod string) bool { _, err := get(pod); return err != nil }
	resolves := func() bool { out, err := lookup(); return err == nil && out == k.set["SVC_IP"] }
	// Without policies: everything flows, once the controller has synced the new pods
	// (a first lookup right after may go unanswered: seen once in CI).
	k.waitFor(30*time.Second, "client and other to reach web without policies", func() bool { return reaches("client") && reaches("other") })
	if out, err := get("client"); err != nil || out != "np-web" {
		k.t.Fatalf("client -> web without policies: %v: %s", err, out)
	}
	k.waitFor(30*time.Second, "the client pod to resolve names without policies", resolves)

	// Default-deny ingress in the web pod's namespace.
	t0 := time.Now()
	k.apply(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: ` + srv + `}
spec: {podSelector: {}, policyTypes: [Ingress]}
`)
	k.waitFor(30*time.Second, "default-deny ingress to cut client off from web", func() bool { return blocked("client") })
	out, _ := get("client")
	k.t.Logf("netpol: default-deny ingress enforced %s after it was applied; client -> web: %s", time.Since(t0).Round(100*time.Millisecond), out)
	if !blocked("other") {
		k.t.Errorf("netpol: under default-deny ingress, pod other still reaches web")
	}

	// Allow the client's labels (namespace and pod) on port 8080.
	t1 := time.Now()
	k.apply(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client, namespace: ` + srv + `}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ` + cli + `}}
      podSelector: {matchLabels: {role: client}}
    ports: [{protocol: TCP, port: 8080}]
`)
	k.waitFor(30*time.Second, "allow-client to let client reach web", func() bool { return reaches("client") })
	k.t.Logf("netpol: allow for role=client enforced %s after it was applied", time.Since(t1).Round(100*time.Millisecond))
	if !blocked("other") {
		k.t.Errorf("netpol: the allow for role=client also let pod other (role=other) reach web")
	}

	// Default-deny egress for the client: DNS and web blocked; then DNS allowed to kube-system.
	k.apply(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: ` + cli + `}
spec: {podSelector: {matchLabels: {role: client}}, policyTypes: [Egress]}
`)
	k.waitFor(30*time.Second, "default-deny egress to block the client's DNS", func() bool { return !resolves() })
	if !blocked("client") {
		k.t.Errorf("netpol: under default-deny egress the client still reaches web")
	}
	k.apply(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: ` + cli + `}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
`)
	k.waitFor(30*time.Second, "allow-dns to let the client resolve names", resolves)
	if !blocked("client") {
		k.t.Errorf("netpol: allowing DNS egress also let the client reach web on 8080")
	}
	// The rules are kube-router's: its chains and ip sets in the node's namespace.
	nsx := []string{"--net=/run/netns/" + k.set["DEVCLUSTER_NETNS"]}
	rules, err := exec.Command("nsenter", append(nsx, "iptables-save", "-t", "filter")...).Output()
	if err != nil {
		k.t.Fatalf("iptables-save in the node's namespace: %v", err)
	}
	sets, err := exec.Command("nsenter", append(nsx, "ipset", "list", "-n")...).Output()
	if err != nil {
		k.t.Fatalf("ipset list in the node's namespace: %v", err)
	}
	chains := strings.Count(string(rules), "\n:KUBE-NWPLCY-")
	if chains == 0 || !bytes.Contains(sets, []byte("KUBE-")) {
		k.t.Errorf("no kube-router policy chains (%d) or ip sets (%q) in the node's namespace", chains, sets)
	}
	k.t.Logf("netpol: under 4 policies the client resolves names but cannot reach web; kube-router keeps %d policy chains and %d ip sets",
		chains, len(bytes.Fields(sets)))
}

// netprobeSource is a pod's network probe: "serve ADDR BODY" answers every HTTP request
// with BODY; "get URL" prints the body (2 s timeout); "lookup NAME" prints the addresses
// of NAME from the pod's DNS (Go's resolver, /etc/resolv.conf); "wait" just waits.
const netprobeSource = `package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: netprobe serve ADDR BODY | get URL | lookup NAME | wait"))
	}
	switch os.Args[1] {
	case "serve":
		body := os.Args[3]
		fail(http.ListenAndServe(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, body)
		})))
	case "get":
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(os.Args[2])
		if err != nil {
			fail(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			fail(err)
		}
		fmt.Print(string(b))
	case "lookup":
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r := &net.Resolver{PreferGo: true}
		addrs, err := r.LookupHost(ctx, os.Args[2])
		if err != nil {
			fail(err)
		}
		fmt.Print(strings.Join(addrs, "\n"))
	case "wait":
		time.Sleep(24 * time.Hour)
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "netprobe:", err)
	os.Exit(1)
}
`

// netprobeImage builds netprobeSource into an image with mkimage.sh, loads it into the
// cluster's containerd and returns its reference.
func (k *k3sLayout) netprobeImage() string {
	k.t.Helper()
	const ref = "localhost/edgeflow-test/netprobe:dev"
	dir := k.t.TempDir()
	for name, content := range map[string]string{"go.mod": "module netprobe\n\ngo 1.24\n", "main.go": netprobeSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			k.t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "netprobe"), ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		k.t.Fatalf("go build netprobe: %v\n%s", err, out)
	}
	tar := filepath.Join(dir, "netprobe.tar")
	k.script("mkimage.sh", "-u", "65534:65534", ref, tar, "/netprobe", filepath.Join(dir, "netprobe"))
	k.script("load-image.sh", tar)
	return ref
}

// busyboxWeb is a pod serving BODY over HTTP on port 8080 (busybox httpd).
func busyboxWeb(image, ns, name, labels, body string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `, namespace: ` + ns + `, labels: {` + labels + `}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: ` + image + `
    imagePullPolicy: Never
    command: [/bin/sh, -c, "mkdir -p /tmp/www && echo ` + body + ` > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
`
}

// waitForHTTP waits for URL to answer 200 with BODY (kube-proxy may need a second).
func (k *k3sLayout) waitForHTTP(url, body string) {
	k.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	last := ""
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.Status + " " + string(b)
			if resp.StatusCode == http.StatusOK && string(b) == body {
				break
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("GET %s from the host: %s after 30s, want 200 %q", url, last, body)
		}
	}
	k.t.Logf("GET %s from the host: %s", url, strings.TrimSpace(last))
}

// settings reads env.sh's resolved settings for the layout.
func (k *k3sLayout) settings() map[string]string {
	out := k.run("bash", "scripts/devcluster/env.sh")
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if key, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[key] = v
		}
	}
	for _, key := range []string{"DEVCLUSTER_DIR", "K3S_DB", "KINE_SOCK", "MANIFESTS", "ADMIN_KUBECONFIG", "KUBECONFIG_OUT", "DNS_IP", "SVC_IP", "PAUSE_IMAGE", "BUSYBOX_IMAGE", "K3S_DATA", "DEVCLUSTER_POD_CIDR"} {
		if m[key] == "" {
			k.t.Fatalf("env.sh (DEVCLUSTER_LAYOUT=k3s) prints no %s:\n%s", key, out)
		}
	}
	if m["DEVCLUSTER_NETNS"] == "efk8s" || m["DEVCLUSTER_DIR"] == "/tmp/edgeflow-devcluster" {
		k.t.Fatalf("the K3s layout would use the stock cluster's names: %v", m)
	}
	return m
}

// up runs up.sh and reports its timings.
func (k *k3sLayout) up() {
	k.t.Helper()
	out := k.run("bash", "scripts/devcluster/up.sh")
	m := regexp.MustCompile(`export KUBECONFIG=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		k.t.Fatalf("up.sh printed no KUBECONFIG: %s", out)
	}
	k.kubeconfig = m[1]
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " after ") || strings.Contains(l, "ready: ") || strings.Contains(l, "built in") {
			k.t.Log("up.sh: " + strings.TrimPrefix(l, "[devcluster] "))
		}
	}
}

// wipe stops the cluster, deletes its state and checks nothing is left behind.
func (k *k3sLayout) wipe() {
	if os.Getenv("EDGEFLOW_CLUSTER_KEEP") != "" {
		k.t.Logf("EDGEFLOW_CLUSTER_KEEP: the K3s layout keeps running (KUBECONFIG=%s)", k.kubeconfig)
		return
	}
	t0 := time.Now()
	cmd := exec.Command("bash", "scripts/devcluster/down.sh", "--wipe")
	cmd.Dir, cmd.Env = k.root, k.env
	if out, err := cmd.CombinedOutput(); err != nil {
		k.t.Errorf("down.sh --wipe: %v\n%s", err, out)
	}
	k.t.Logf("K3s layout wiped in %s", time.Since(t0).Round(100*time.Millisecond))
	dir := k.set["DEVCLUSTER_DIR"]
	if _, err := os.Stat("/run/netns/" + k.set["DEVCLUSTER_NETNS"]); err == nil {
		k.t.Errorf("network namespace %s left behind", k.set["DEVCLUSTER_NETNS"])
	}
	if err := exec.Command("ip", "link", "show", k.set["DEVCLUSTER_VETH_HOST"]).Run(); err == nil {
		k.t.Errorf("veth %s left behind", k.set["DEVCLUSTER_VETH_HOST"])
	}
	if out, _ := exec.Command("findmnt", "-rn", "-o", "TARGET").Output(); bytes.Contains(out, []byte(dir+"/")) {
		k.t.Errorf("mounts left under %s", dir)
	}
	if out, _ := exec.Command("pgrep", "-af", dir+"/").Output(); len(bytes.TrimSpace(out)) > 0 {
		k.t.Errorf("processes left: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); err == nil {
		k.t.Errorf("%s/run left behind", dir)
	}
	for _, cidr := range []string{k.set["DEVCLUSTER_SVC_CIDR"], k.set["DEVCLUSTER_CLUSTER_CIDR"]} {
		if out, _ := exec.Command("ip", "route", "show", cidr).Output(); len(bytes.TrimSpace(out)) > 0 {
			k.t.Errorf("host route left: %s", out)
		}
	}
}

func (k *k3sLayout) script(name string, args ...string) string {
	k.t.Helper()
	return k.run("bash", append([]string{"scripts/devcluster/" + name}, args...)...)
}

func (k *k3sLayout) run(name string, args ...string) string {
	k.t.Helper()
	out, err := k.runErr(name, args...)
	if err != nil {
		k.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 4000))
	}
	return out
}

func (k *k3sLayout) runErr(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = k.root
	cmd.Env = k.env
	if k.kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+k.kubeconfig)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (k *k3sLayout) kubectl(args ...string) string {
	k.t.Helper()
	return strings.TrimSpace(k.run("kubectl", args...))
}

func (k *k3sLayout) kubectlErr(args ...string) (string, error) {
	out, err := k.runErr("kubectl", args...)
	return strings.TrimSpace(out), err
}

func (k *k3sLayout) apply(manifest string) {
	k.t.Helper()
	cmd := exec.Command("kubectl", "apply", "-f", "-")
	cmd.Env = append(k.env, "KUBECONFIG="+k.kubeconfig)
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		k.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// etcdctl talks to kine's etcd API on its unix socket.
func (k *k3sLayout) etcdctl(args ...string) string {
	k.t.Helper()
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", "unix://" + k.set["KINE_SOCK"]}, args...)...)
	cmd.Env = append(k.env, "ETCDCTL_API=3")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		k.t.Fatalf("etcdctl %s: %v %s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

func (k *k3sLayout) read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		k.t.Fatal(err)
	}
	return string(b)
}

func (k *k3sLayout) pids() map[string]int {
	dir := filepath.Join(k.set["DEVCLUSTER_DIR"], "run", "pids")
	entries, err := os.ReadDir(dir)
	if err != nil {
		k.t.Fatal(err)
	}
	pids := map[string]int{}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(k.read(filepath.Join(dir, e.Name())), &pid); err != nil {
			k.t.Fatalf("pid file %s: %v", e.Name(), err)
		}
		pids[e.Name()] = pid
	}
	return pids
}

func (k *k3sLayout) threadsOf(pid int) int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(entries)
}

func (k *k3sLayout) waitFor(within time.Duration, what string, ok func() bool) {
	k.t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			k.t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkDNS asks the kube-dns Service from the host for the kubernetes Service's name.
func (k *k3sLayout) checkDNS() {
	k.t.Helper()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(k.set["DNS_IP"], "53"))
	}}
	var addrs []string
	var err error
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, err = r.LookupHost(ctx, "kubernetes.default.svc.cluster.local")
		cancel()
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || len(addrs) != 1 || addrs[0] != k.set["SVC_IP"] {
		k.t.Fatalf("cluster DNS at %s: kubernetes.default.svc.cluster.local = %v, %v; want %s", k.set["DNS_IP"], addrs, err, k.set["SVC_IP"])
	}
	k.t.Logf("cluster DNS at %s answers kubernetes.default.svc.cluster.local = %s", k.set["DNS_IP"], addrs[0])
}

// measureIdle samples the server, containerd, the shims and the pods from /proc every 5 s
// (as task footprint does) and logs mean and peak PSS, peak RSS and CPU.
func (k *k3sLayout) measureIdle(d time.Duration) {
	k.t.Helper()
	if d <= 0 {
		return
	}
	pids := k.pids()
	s := &footprint.Sampler{PIDs: pids, Pods: footprint.PodsFromAPI(k.kubeconfig)}
	var snaps []footprint.Snapshot
	for end := time.Now().Add(d); ; {
		snap, err := s.Snapshot()
		if err != nil {
			k.t.Fatalf("footprint: %v", err)
		}
		snaps = append(snaps, snap)
		if time.Now().After(end) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %6s %9s %9s %9s %6s\n", "idle, "+fmt.Sprint(len(snaps))+" samples", "procs", "mean PSS", "peak PSS", "peak RSS", "CPU %")
	for _, st := range footprint.Summarise(snaps) {
		fmt.Fprintf(&b, "%-28s %6d %9.1f %9.1f %9.1f %6.1f\n", st.Name, st.Procs,
			float64(st.MeanPSS)/(1<<20), float64(st.PeakPSS)/(1<<20), float64(st.PeakRSS)/(1<<20), st.CPUCores*100)
	}
	k.t.Logf("footprint of the K3s layout idle over %s (MiB):\n%s", d, b.String())
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// kineRevision is the revision of kine's log (the header of an etcd get).
func (k *k3sLayout) kineRevision() int64 {
	k.t.Helper()
	var r struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	out := k.etcdctl("get", "/registry/namespaces/default", "-w", "json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Header.Revision == 0 {
		k.t.Fatalf("etcdctl get -w json: %v: %s", err, out)
	}
	return r.Header.Revision
}

// procStart is when a process started (its start time in /proc, 10 ms resolution).
func procStart(t *testing.T, pid int) time.Time {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])) // f[0] is field 3
	ticks, _ := strconv.ParseInt(f[19], 10, 64)                          // field 22: starttime
	sys, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	var boot int64
	for _, l := range strings.Split(string(sys), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			boot, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return time.Unix(boot, 0).Add(time.Duration(ticks) * 10 * time.Millisecond)
}

// alive says whether a process runs: a zombie (ended, not yet reaped by PID 1) does not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}
