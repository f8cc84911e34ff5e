package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/scripts/internal/footprint"
	"github.com/edgeflow/edgeflow/scripts/internal/kube"
)

const namespace = "edgeflow"

// layout is what differs between the two layouts of scripts/devcluster for the same
// checks: the overlays deployed, how MQTT and the dashboard are reached, where the
// datastore is. Everything else (node IP, state dir, kubeconfig) comes from env.sh.
type layout struct {
	name string // DEVCLUSTER_LAYOUT: stock or k3s
	// overlay and haOverlay are deployed in turn; deployEnv and haEnv go with every task
	// deploy, rollout and status of each (the same settings, so a rollout renders what
	// the deploy rendered).
	overlay, haOverlay string
	deployEnv, haEnv   []string
	cluster            string   // CLUSTER: the secrets folder .build/secrets/<cluster>
	dryRun             []string // overlays the API server checks with a server-side dry run
}

var (
	// The stock layout (etcd, one process per component) with the overlays made for it:
	// NodePorts, emptyDir volumes.
	onStock = layout{name: "stock", overlay: "devcluster", haOverlay: "devcluster-ha", cluster: "devcluster",
		dryRun: []string{"devcluster", "devcluster-ha"}}
	// The K3s layout with the k3s overlays as they are: only the images are swapped
	// (IMAGES=local: components/local-images), and k3s-ha's one-NATS-server-per-node rule
	// is dropped on the one node (components/one-node).
	onK3s = layout{name: "k3s", overlay: "k3s", haOverlay: "k3s-ha", cluster: "devcluster-k3s",
		deployEnv: []string{"IMAGES=local"}, haEnv: []string{"IMAGES=local", "COMPONENTS=one-node"},
		dryRun: []string{"k3s", "k3s-ha", "devcluster", "devcluster-ha"}}
)

// cluster is the deployed dev cluster a test talks to.
type cluster struct {
	t          *testing.T
	layout     layout
	root       string            // repository
	env        []string          // the environment of every command: the layout's, nothing leaked
	set        map[string]string // env.sh's settings for the layout
	kubeconfig string
	secrets    string // .build/secrets/<cluster>
	artifacts  string
	nodeIP     string
	mqtt       string // host:port of MQTT over TLS
	influxURL  string
	influxUser string
	influxPass string
	loadgen    string // binary
	acked      int64  // readings acknowledged by the broker over all runs
	deployEnv  []string
	stopInflux func() // ends the port-forward of influxURL
}

// portForward runs kubectl port-forward to a port of target (in the namespace) on a free
// local port, and returns that port and a function that ends it (also at the test's end).
func (c *cluster) portForward(target string, remote int) (int, func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "kubectl", "-n", namespace, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", remote))
	cmd.Env = append(append([]string(nil), c.env...), "KUBECONFIG="+c.kubeconfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	stop := func() { cancel(); _ = cmd.Wait() }
	c.t.Cleanup(stop)
	// "Forwarding from 127.0.0.1:PORT -> REMOTE"
	line, err := bufio.NewReader(out).ReadString('\n')
	var port int
	if _, serr := fmt.Sscanf(strings.TrimSpace(line), "Forwarding from 127.0.0.1:%d", &port); err != nil || serr != nil {
		stop()
		c.t.Fatalf("kubectl port-forward %s: %q: %v %v: %s", target, line, err, serr, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return port, stop
}

// TestDeployOnDevCluster deploys overlays/devcluster and devcluster-ha on the stock
// layout (etcd, a process per component).
func TestDeployOnDevCluster(t *testing.T) {
	if os.Getenv("EDGEFLOW_CLUSTER_TEST") == "" {
		t.Skip("set EDGEFLOW_CLUSTER_TEST=1 (go tool task test does) to start the dev cluster and deploy on it; needs root")
	}
	deployAndCheck(t, onStock)
}

// TestDeployOnK3sLayout deploys overlays/k3s and k3s-ha, unmodified but for the images,
// on the K3s layout (one k3s-server process on kine/SQLite, local-path, Traefik, ServiceLB).
func TestDeployOnK3sLayout(t *testing.T) {
	if os.Getenv("EDGEFLOW_K3S_CLUSTER_TEST") == "" {
		t.Skip("set EDGEFLOW_K3S_CLUSTER_TEST=1 (go tool task test does) to start the dev cluster's K3s layout and deploy the k3s overlays on it; needs root")
	}
	deployAndCheck(t, onK3s)
}

// layoutEnv is this process's environment without any setting of scripts/devcluster,
// plus the layout. DEVCLUSTER_DIR is kept only when LAYOUT (or DEVCLUSTER_LAYOUT) names
// this layout, so that a state dir meant for one layout never reaches the other.
func layoutEnv(name string) []string {
	keepDir := os.Getenv("DEVCLUSTER_LAYOUT") == name || os.Getenv("DEVCLUSTER_LAYOUT") == "" && (os.Getenv("LAYOUT") == name || name == "stock" && os.Getenv("LAYOUT") != "k3s")
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "LAYOUT" || k == "KUBECONFIG" || k == "OVERLAY" || k == "IMAGES" || k == "COMPONENTS" || k == "CLUSTER" ||
			strings.HasPrefix(k, "DEVCLUSTER_") && !(k == "DEVCLUSTER_DIR" && keepDir) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "DEVCLUSTER_LAYOUT="+name)
}

func deployAndCheck(t *testing.T, l layout) {
	if os.Geteuid() != 0 {
		t.Fatal("the dev cluster needs root (network namespace, iptables, mounts)")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, layout: l, root: root, env: layoutEnv(l.name), secrets: filepath.Join(root, ".build", "secrets", l.cluster),
		artifacts: filepath.Join(root, "test-artifacts", t.Name())}
	c.set = c.settings()
	c.nodeIP = c.set["NODE_IP"]
	// Without an installed kubectl, the kit's own (up.sh builds it).
	if _, err := exec.LookPath("kubectl"); err != nil {
		c.env = append(c.env, "PATH="+c.set["DEVCLUSTER_DIR"]+"/bin"+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	os.RemoveAll(c.artifacts)
	if err := os.MkdirAll(c.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	// The cluster: as docs/operations.md says, then a clean namespace.
	t0 := time.Now()
	out := c.run(nil, "bash", "scripts/devcluster/up.sh")
	m := regexp.MustCompile(`export KUBECONFIG=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up.sh printed no KUBECONFIG: %s", out)
	}
	c.kubeconfig = m[1]
	t.Cleanup(c.teardown)
	t.Logf("dev cluster (%s layout, node %s) up in %s", l.name, c.nodeIP, time.Since(t0).Round(100*time.Millisecond))
	c.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s")

	// Every overlay the layout can take is accepted by a real API server (admission,
	// schemas, Pod Security). The k3s overlays need Traefik's resource definitions, which
	// only the K3s layout has.
	for _, o := range l.dryRun {
		c.serverDryRun(o)
	}

	// Deploy exactly as a K3s user would, with the layout's overlay.
	t1 := time.Now()
	c.deployEnv = append([]string{"OVERLAY=" + l.overlay, "CLUSTER=" + l.cluster}, l.deployEnv...)
	out = c.run(c.deployEnv, "go", "tool", "task", "deploy")
	c.save("deploy.log", out)
	deployTook := time.Since(t1)
	t.Logf("task deploy %s: everything ready after %s\n%s", strings.Join(c.deployEnv, " "), deployTook.Round(100*time.Millisecond), tail(out, 1200))
	c.setup()
	if l.name == "k3s" {
		c.checkVolumes()
	}

	// 1. Load through MQTT over TLS while a processor pod is deleted.
	pods := c.podsOf("processor")
	rep := c.loadWithFault("lg-a", 1, []string{"-devices", "40", "-rate", "800", "-duration", "20s"}, 7*time.Second, func() {
		t.Logf("deleting pod %s mid-load", pods[0])
		c.kubectl("-n", namespace, "delete", "pod", pods[0], "--wait=false")
	})
	c.acked += rep.Totals.Acked
	c.expectCounts("after a processor pod was deleted", 90*time.Second)

	// 2. A rolling update of the processors mid-load (task rollout: rebuild, load, roll),
	// then of ingest, the pods' memory sampled meanwhile.
	ingestBefore := c.podsOf("ingest")
	if len(ingestBefore) != 1 || ingestBefore[0] != "ingest-0" {
		t.Fatalf("ingest pods %v, want [ingest-0]: one replica subscribing plainly (manifests/base/ingest.yaml)", ingestBefore)
	}
	ingestUID := c.podUID("ingest-0")
	stopSampling, memory := c.sampleMemory(5 * time.Second)
	rep = c.loadWithFault("lg-b", 1_000_000, []string{"-devices", "40", "-rate", "500", "-duration", "75s"}, 5*time.Second, func() {
		t2 := time.Now()
		out := c.run(c.deployEnv, "go", "tool", "task", "rollout", "--", "processor")
		c.save("rollout.log", out)
		t.Logf("task rollout -- processor: done in %s, under load", time.Since(t2).Round(100*time.Millisecond))
		// Then ingest: its one pod stops and starts again. Intake pauses meanwhile, the
		// broker queues for its session (client id ingest-0, its pod name), and ingest
		// acknowledges MQTT only after JetStream did, so the counts stay exact.
		t4 := time.Now()
		c.kubectl("-n", namespace, "rollout", "restart", "statefulset/ingest")
		c.kubectl("-n", namespace, "rollout", "status", "statefulset/ingest", "--timeout=180s")
		t.Logf("ingest rolled (kubectl rollout restart) in %s, under load", time.Since(t4).Round(100*time.Millisecond))
	})
	stopSampling()
	c.acked += rep.Totals.Acked
	c.expectCounts("after rolling updates of the processors and of ingest", 90*time.Second)
	if after := c.podsOf("processor"); len(after) != 2 || contains(after, pods[1]) {
		t.Errorf("processor pods after the rollout %v, want two new ones (before: %v)", after, pods)
	}
	if after := c.podsOf("ingest"); len(after) != 1 || after[0] != "ingest-0" || c.podUID("ingest-0") == ingestUID {
		t.Errorf("ingest pods after the rollout %v, want a new ingest-0 (the same name, so the same MQTT session)", after)
	}

	// task footprint's measurement finds every component and every pod; the
	// Secrets are encrypted in the datastore.
	c.checkFootprint()
	c.checkSecretsEncrypted()

	// 3. The dashboard shows the devices: over HTTP and in Chromium.
	c.checkDashboard()

	// 4. Nothing restarted, nothing was OOM-killed; memory under load; task status shows it.
	c.checkPods()
	c.reportMemory(memory)
	status := c.run(c.deployEnv, "go", "tool", "task", "status")
	c.save("status.txt", status)
	if !regexp.MustCompile(`(?m)^processor-\S+\s+1/1\s+Running\s+0\s+.*\d+\.\dMi`).MatchString(status) {
		t.Errorf("task status shows no running processor with its memory:\n%s", status)
	}
	t.Logf("task deploy to all ready: %s", deployTook.Round(100*time.Millisecond))

	// 5. The NATS cluster of k3s-ha (three servers, R3 streams; on the one node): a fresh
	// deploy, then a NATS server deleted mid-load.
	c.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=180s")
	t3 := time.Now()
	c.deployEnv = append([]string{"OVERLAY=" + l.haOverlay, "CLUSTER=" + l.cluster}, l.haEnv...)
	out = c.run(c.deployEnv, "go", "tool", "task", "deploy")
	c.save("deploy-ha.log", out)
	t.Logf("task deploy %s: everything ready after %s", strings.Join(c.deployEnv, " "), time.Since(t3).Round(100*time.Millisecond))
	c.setup()
	if l.name == "k3s" {
		c.checkVolumes()
	}
	c.acked = 0
	rep = c.loadWithFault("lg-ha", 1, []string{"-devices", "40", "-rate", "500", "-duration", "30s"}, 8*time.Second, func() {
		t.Log("deleting pod nats-1 mid-load")
		c.kubectl("-n", namespace, "delete", "pod", "nats-1", "--wait=false")
	})
	c.acked += rep.Totals.Acked
	c.expectCounts("after a NATS server of three was deleted", 90*time.Second)
	c.checkPods()
}

// settings reads env.sh's resolved settings for the layout.
func (c *cluster) settings() map[string]string {
	c.t.Helper()
	out := c.run(nil, "bash", "scripts/devcluster/env.sh")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	if m["DEVCLUSTER_LAYOUT"] != c.layout.name || m["NODE_IP"] == "" || m["DEVCLUSTER_DIR"] == "" {
		c.t.Fatalf("env.sh for the %s layout:\n%s", c.layout.name, out)
	}
	return m
}

// run runs a command in the repository and returns its combined output; it fails the
// test with the output's tail when the command fails.
func (c *cluster) run(env []string, name string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = c.root
	cmd.Env = append(append([]string(nil), c.env...), env...)
	if c.kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+c.kubeconfig)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		c.save(filepath.Base(name)+"-failed.log", out.String())
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out.String(), 4000))
	}
	return out.String()
}

func (c *cluster) kubectl(args ...string) string {
	c.t.Helper()
	return c.run(nil, "kubectl", args...)
}

func (c *cluster) save(name, content string) {
	_ = os.WriteFile(filepath.Join(c.artifacts, name), []byte(content), 0o644)
}

// teardown saves every pod's logs and state, then wipes the cluster (builds are kept).
func (c *cluster) teardown() {
	if c.t.Failed() {
		cmd := exec.Command("kubectl", "-n", namespace, "get", "pods", "-o", "wide")
		cmd.Env = append(append([]string(nil), c.env...), "KUBECONFIG="+c.kubeconfig)
		out, _ := cmd.CombinedOutput()
		c.save("pods.txt", string(out))
		for _, w := range []string{"nats", "mosquitto", "influxdb", "ingest", "processor", "notifier", "dashboard"} {
			cmd := exec.Command("kubectl", "-n", namespace, "logs", "-l", "app.kubernetes.io/name="+w, "--prefix", "--tail=300", "--all-containers")
			cmd.Env = append(append([]string(nil), c.env...), "KUBECONFIG="+c.kubeconfig)
			out, _ := cmd.CombinedOutput()
			c.save("logs-"+w+".txt", string(out))
		}
	}
	if os.Getenv("EDGEFLOW_CLUSTER_KEEP") != "" {
		c.t.Logf("EDGEFLOW_CLUSTER_KEEP: the dev cluster keeps running (KUBECONFIG=%s)", c.kubeconfig)
		return
	}
	t0 := time.Now()
	cmd := exec.Command("bash", "scripts/devcluster/down.sh", "--wipe")
	cmd.Dir, cmd.Env = c.root, c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Errorf("down.sh --wipe: %v\n%s", err, out)
	}
	c.t.Logf("dev cluster wiped in %s", time.Since(t0).Round(100*time.Millisecond))
}

// serverDryRun renders an overlay into a namespace of its own and has the API server
// validate and admit every object without keeping any (kubectl apply --dry-run=server).
// Objects without a controller here (LoadBalancer, Ingress, local-path claims) are
// accepted all the same.
func (c *cluster) serverDryRun(overlay string) {
	c.t.Helper()
	ns := "edgeflow-dryrun-" + overlay
	dir := filepath.Join(c.root, ".build", "dryrun", overlay)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	kust := fmt.Sprintf("# Written by scripts/internal/clustertest.\nnamespace: %s\nresources:\n  - ../../../manifests/overlays/%s\n", ns, overlay)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.kubectl("create", "namespace", ns, "--save-config")
	defer c.kubectl("delete", "namespace", ns, "--wait=false")
	out := c.kubectl("apply", "--dry-run=server", "-k", dir)
	n := strings.Count(out, "(server dry run)")
	if n < 30 {
		c.t.Errorf("overlay %s: %d objects accepted, want every one:\n%s", overlay, n, out)
	}
	c.t.Logf("overlay %s: %d objects accepted by the API server (dry run)", overlay, n)
}

// setup reads the generated credentials and finds InfluxDB and the load generator.
func (c *cluster) setup() {
	c.t.Helper()
	// The admin reads what the processor wrote: its own user may only write.
	c.influxUser, c.influxPass = "admin", strings.TrimSpace(c.readSecret("edgeflow-influxdb", "admin-password"))
	// Through a port-forward, as task deploy reaches it: the NetworkPolicies let only the
	// processor and the dashboard reach InfluxDB, and the K3s layout enforces them.
	if c.stopInflux != nil {
		c.stopInflux()
	}
	var port int
	port, c.stopInflux = c.portForward("pod/influxdb-0", 8086)
	c.influxURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	c.loadgen = filepath.Join(c.t.TempDir(), "loadgen")
	c.run(nil, "go", "build", "-o", c.loadgen, "./scripts/loadgen")
	c.mqtt = c.mqttAddress()
}

// mqttAddress is where devices reach the broker: on the stock layout the NodePort of
// overlays/devcluster; on the K3s layout the LoadBalancer Service's address on port
// 8883, which a ServiceLB answers on the node's IP.
func (c *cluster) mqttAddress() string {
	c.t.Helper()
	if c.layout.name == "stock" {
		return c.nodeIP + ":30883" // fixed by overlays/devcluster
	}
	var svc struct {
		Spec struct {
			Type  string `json:"type"`
			Ports []struct {
				Port     int `json:"port"`
				NodePort int `json:"nodePort"`
			} `json:"ports"`
		} `json:"spec"`
		Status struct {
			LoadBalancer struct {
				Ingress []struct{ IP string } `json:"ingress"`
			} `json:"loadBalancer"`
		} `json:"status"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := json.Unmarshal([]byte(c.kubectl("-n", namespace, "get", "service", "mqtt", "-o", "json")), &svc); err != nil {
			c.t.Fatal(err)
		}
		if len(svc.Status.LoadBalancer.Ingress) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if svc.Spec.Type != "LoadBalancer" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8883 {
		c.t.Fatalf("Service mqtt: type %s, ports %+v; want a LoadBalancer on 8883 (overlays/k3s)", svc.Spec.Type, svc.Spec.Ports)
	}
	lb := svc.Status.LoadBalancer.Ingress
	if len(lb) == 0 {
		// Go on through the NodePort every LoadBalancer Service also has, so that the
		// other checks still run; the test has failed all the same.
		c.t.Errorf("Service mqtt (LoadBalancer) has no address after 60 s: no ServiceLB on the K3s layout; going on through its NodePort %d", svc.Spec.Ports[0].NodePort)
		return fmt.Sprintf("%s:%d", c.nodeIP, svc.Spec.Ports[0].NodePort)
	}
	if lb[0].IP != c.nodeIP {
		c.t.Errorf("Service mqtt's LoadBalancer address %s, want the node's %s (K3s's ServiceLB)", lb[0].IP, c.nodeIP)
	}
	c.t.Logf("MQTT over TLS through the LoadBalancer Service at %s:8883", lb[0].IP)
	return lb[0].IP + ":8883"
}

// checkVolumes checks that every claim of the k3s overlay is Bound by K3s's local-path
// provisioner to a directory under the layout's storage, and that the data is there.
func (c *cluster) checkVolumes() {
	c.t.Helper()
	var pvcs struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				StorageClassName string `json:"storageClassName"`
				VolumeName       string `json:"volumeName"`
			} `json:"spec"`
			Status struct{ Phase string } `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.kubectl("-n", namespace, "get", "pvc", "-o", "json")), &pvcs); err != nil {
		c.t.Fatal(err)
	}
	want := map[string]bool{"data-nats-0": true, "data-mosquitto-0": true, "data-influxdb-0": true}
	storage := filepath.Join(c.set["DEVCLUSTER_DIR"], "run", "storage") + "/"
	var names []string
	for _, p := range pvcs.Items {
		names = append(names, p.Metadata.Name)
		delete(want, p.Metadata.Name)
		if p.Status.Phase != "Bound" || p.Spec.StorageClassName != "local-path" {
			c.t.Errorf("PVC %s: %s, storage class %q; want Bound by local-path", p.Metadata.Name, p.Status.Phase, p.Spec.StorageClassName)
			continue
		}
		path := strings.TrimSpace(c.kubectl("get", "pv", p.Spec.VolumeName, "-o", "jsonpath={.spec.hostPath.path}{.spec.local.path}"))
		entries, err := os.ReadDir(path)
		// NATS (JetStream) and InfluxDB write at start; Mosquitto only when it saves.
		written := len(entries) > 0 || strings.HasPrefix(p.Metadata.Name, "data-mosquitto-")
		if !strings.HasPrefix(path, storage) || err != nil || !written {
			c.t.Errorf("PVC %s: volume %s at %q (%v, %d entries); want a written directory under %s", p.Metadata.Name, p.Spec.VolumeName, path, err, len(entries), storage)
		}
	}
	if len(want) > 0 {
		c.t.Errorf("PVCs %v; missing %v", names, want)
	}
	c.t.Logf("PVCs bound by local-path under %s: %s", storage, strings.Join(names, ", "))
}

func (c *cluster) readSecret(secret, key string) string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.secrets, secret, key))
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

type loadReport struct {
	Totals struct {
		Attempted int64 `json:"attempted"`
		Acked     int64 `json:"acked"`
		Failed    int64 `json:"failed"`
	} `json:"totals"`
	AchievedRate float64 `json:"achieved_rate"`
}

// loadWithFault runs the load generator through MQTT over TLS (c.mqtt; the broker's
// certificate checked against the generated CA) as the device user and, after the given time, the fault (which may take as long as it needs).
func (c *cluster) loadWithFault(prefix string, seqStart int, args []string, after time.Duration, fault func()) loadReport {
	c.t.Helper()
	report := filepath.Join(c.artifacts, prefix+"-report.json")
	args = append([]string{"-broker", "ssl://" + c.mqtt,
		"-cafile", filepath.Join(c.secrets, "edgeflow-mqtt-tls", "ca.crt"), "-username", "device", "-password", strings.TrimSpace(c.readSecret("edgeflow-mqtt", "device-password")),
		"-client-prefix", prefix, "-seq-start", fmt.Sprint(seqStart), "-report", report}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.loadgen, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(after)
	fault()
	err := cmd.Wait()
	c.save(prefix+".log", out.String())
	if err != nil {
		c.t.Fatalf("loadgen: %v\n%s", err, tail(out.String(), 3000))
	}
	data, err := os.ReadFile(report)
	if err != nil {
		c.t.Fatal(err)
	}
	var r loadReport
	if err := json.Unmarshal(data, &r); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("loadgen %s: attempted %d acked %d failed %d at %.0f msgs/s", prefix, r.Totals.Attempted, r.Totals.Acked, r.Totals.Failed, r.AchievedRate)
	if r.Totals.Acked == 0 || r.Totals.Failed != 0 {
		c.t.Fatalf("loadgen %s: %d acked, %d failed", prefix, r.Totals.Acked, r.Totals.Failed)
	}
	return r
}

// influxQL runs a query on the edgeflow database and returns the first value.
func (c *cluster) influxQL(q string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return devenv.InfluxDB{URL: c.influxURL, Database: "edgeflow", User: c.influxUser, Password: c.influxPass}.Scalar(ctx, q)
}

// expectCounts waits until every metric's 10 s windows count exactly the readings the
// broker acknowledged, failing at once on more (double counting), and checks they stay
// put. Raw points are only reported: two readings of one device in the same millisecond
// are one point of the telemetry measurement (same tags and time), so it may count fewer.
func (c *cluster) expectCounts(when string, within time.Duration) {
	c.t.Helper()
	metrics := []string{"temperature", "humidity", "pressure"}
	var lastErr string
	counts := func() map[string][2]int64 {
		m := map[string][2]int64{}
		for _, metric := range metrics {
			w, err := c.influxQL(fmt.Sprintf(`SELECT sum("count") FROM "raw"."telemetry_10s" WHERE "metric" = '%s'`, metric))
			if err != nil && err.Error() != lastErr {
				lastErr = err.Error()
				c.t.Logf("query: %v", err)
			}
			r, _ := c.influxQL(fmt.Sprintf(`SELECT count(%q) FROM "raw"."telemetry"`, metric))
			m[metric] = [2]int64{int64(w), int64(r)}
		}
		return m
	}
	deadline := time.Now().Add(within)
	t0 := time.Now()
	for {
		got := counts()
		exact := true
		for _, metric := range metrics {
			if got[metric][0] > c.acked || got[metric][1] > c.acked {
				c.t.Fatalf("%s: %s counted %d in windows and %d raw, want exactly %d: double counting", when, metric, got[metric][0], got[metric][1], c.acked)
			}
			exact = exact && got[metric][0] == c.acked
		}
		if exact {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: after %s the counts are %v (windows, raw points), want exactly %d in the windows", when, within, got, c.acked)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second)
	got := counts()
	for metric, v := range got {
		if v[0] != c.acked {
			c.t.Fatalf("%s: %s counts %d after settling, want %d", when, metric, v[0], c.acked)
		}
	}
	c.t.Logf("%s: every metric counts exactly %d readings in telemetry_10s (%s after the load; raw points %d)",
		when, c.acked, time.Since(t0).Round(time.Second), got["temperature"][1])
}

func (c *cluster) podsOf(name string) []string {
	c.t.Helper()
	out := c.kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name="+name,
		"--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")
	pods := strings.Fields(out)
	sort.Strings(pods)
	if len(pods) == 0 {
		c.t.Fatalf("no running %s pod", name)
	}
	return pods
}

// podUID is a pod's UID: a pod replaced under the same name (a StatefulSet's) has a new one.
func (c *cluster) podUID(name string) string {
	c.t.Helper()
	return strings.TrimSpace(c.kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.metadata.uid}"))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkDashboard reads the dashboard as its users reach it, over HTTP with a real
// request and in Chromium: on the stock layout through kubectl port-forward and the
// NodePort of overlays/devcluster, on the K3s layout through the Traefik Ingress of
// overlays/k3s over HTTPS (plain HTTP redirected to it). The page and the overview show
// the load generator's devices, and nothing is served without the token.
func (c *cluster) checkDashboard() {
	c.t.Helper()
	token := strings.TrimSpace(c.readSecret("edgeflow-dashboard", "token"))
	var base string
	client := &http.Client{Timeout: 10 * time.Second}
	switch c.layout.name {
	case "stock":
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, "kubectl", "-n", namespace, "port-forward", "svc/dashboard", "18080:8080")
		cmd.Env = append(append([]string(nil), c.env...), "KUBECONFIG="+c.kubeconfig)
		if err := cmd.Start(); err != nil {
			c.t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		c.checkDashboardAt("port-forward", client, "http://127.0.0.1:18080", token)
		base = "http://" + c.nodeIP + ":30080" // the NodePort of overlays/devcluster
	case "k3s":
		base, client = c.ingressClient()
	}
	c.checkDashboardAt(base, client, base, token)
	c.checkDashboardInBrowser(base, token)
}

// ingressClient is the dashboard's address through the Traefik Ingress and a client
// that trusts its certificate; it checks that plain HTTP is redirected there.
func (c *cluster) ingressClient() (string, *http.Client) {
	c.t.Helper()
	base := "https://" + c.nodeIP
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM([]byte(c.readSecret("edgeflow-mqtt-tls", "ca.crt")))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	for i := 0; i < 30; i++ {
		if resp, err = noRedirect.Get("http://" + c.nodeIP + "/"); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		c.t.Errorf("dashboard through the Ingress: http://%s/: %v (no Traefik on the K3s layout, or no ServiceLB for its LoadBalancer Service?)", c.nodeIP, err)
		return base, client
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://") {
		c.t.Errorf("http://%s/: %d, Location %q; want a redirect to HTTPS", c.nodeIP, resp.StatusCode, loc)
	}
	return base, client
}

// checkDashboardAt reads the dashboard at base: the page and the overview with the load
// generator's devices, and a refusal without the token.
func (c *cluster) checkDashboardAt(what string, client *http.Client, base, token string) {
	c.t.Helper()
	get := func(path, token string) (int, string) {
		var status int
		var body []byte
		var err error
		for i := 0; i < 30; i++ {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if token != "" {
				req.SetBasicAuth("ops", token)
			}
			var resp *http.Response
			if resp, err = client.Do(req); err != nil {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			break
		}
		if err != nil {
			c.t.Errorf("dashboard %s%s: %v", base, path, err)
		}
		return status, string(body)
	}
	if status, _ := get("/api/overview", ""); status != http.StatusUnauthorized {
		c.t.Errorf("dashboard (%s) without the token: %d, want 401", what, status)
	}
	status, page := get("/", token)
	if status != http.StatusOK || !strings.Contains(page, "<html") {
		c.t.Errorf("dashboard (%s) GET /: %d %s", what, status, tail(page, 300))
	}
	status, overview := get("/api/overview", token)
	if status != http.StatusOK || !strings.Contains(overview, "dev-0000") || !strings.Contains(overview, "dev-0039") {
		c.t.Errorf("dashboard (%s) /api/overview: %d, want the devices dev-0000 ... dev-0039: %s", what, status, tail(overview, 500))
		return
	}
	c.save("overview.json", overview)
	c.t.Logf("dashboard through %s: / and /api/overview (%d bytes) show the devices; 401 without the token", what, len(overview))
}

// checkPods asserts no container restarted or was OOM-killed.
func (c *cluster) checkPods() {
	c.t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Status   struct {
				ContainerStatuses []struct {
					Name         string `json:"name"`
					RestartCount int    `json:"restartCount"`
					LastState    struct {
						Terminated *struct{ Reason string } `json:"terminated"`
					} `json:"lastState"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.kubectl("-n", namespace, "get", "pods", "-o", "json")), &list); err != nil {
		c.t.Fatal(err)
	}
	for _, p := range list.Items {
		for _, s := range p.Status.ContainerStatuses {
			if s.LastState.Terminated != nil && s.LastState.Terminated.Reason == "OOMKilled" {
				c.t.Errorf("%s/%s was OOM-killed", p.Metadata.Name, s.Name)
			}
			if s.RestartCount != 0 {
				c.t.Errorf("%s/%s restarted %d times (last: %+v)", p.Metadata.Name, s.Name, s.RestartCount, s.LastState.Terminated)
			}
		}
	}
	c.t.Logf("%d pods: no restarts, no OOM kills", len(list.Items))
}

// sampleMemory reads every pod's memory every interval until stop is called, keeping
// each pod's highest RSS and working set.
func (c *cluster) sampleMemory(every time.Duration) (stop func(), peak map[string]kube.PodStats) {
	peak = map[string]kube.PodStats{}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			m, err := c.memory()
			if err != nil {
				c.t.Logf("memory: %v", err)
			}
			for name, v := range m {
				p := peak[name]
				p.RSS, p.WorkingSet = max(p.RSS, v.RSS), max(p.WorkingSet, v.WorkingSet)
				peak[name] = p
			}
			select {
			case <-done:
				return
			case <-time.After(every):
			}
		}
	}()
	return func() { close(done); <-finished }, peak
}

// memory reads every edgeflow pod's memory from the kubelet's summary API.
func (c *cluster) memory() (map[string]kube.PodStats, error) {
	kubectl := func(args ...string) ([]byte, error) {
		cmd := exec.Command("kubectl", args...)
		cmd.Env = append(append([]string(nil), c.env...), "KUBECONFIG="+c.kubeconfig)
		return cmd.Output()
	}
	out, err := kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return nil, err
	}
	node := strings.TrimSpace(string(out))
	if out, err = kubectl("get", "--raw", kube.SummaryPath(node)); err != nil {
		return nil, err
	}
	s, err := kube.ParseSummary(out)
	if err != nil {
		return nil, err
	}
	return s.InNamespace(namespace), nil
}

func (c *cluster) reportMemory(m map[string]kube.PodStats) {
	if len(m) == 0 {
		return
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %-28s RSS %6.1f MiB  working set %6.1f MiB\n", n, float64(m[n].RSS)/(1<<20), float64(m[n].WorkingSet)/(1<<20))
	}
	c.t.Logf("peak memory of each pod under load (kubelet summary API, sampled every 5s):\n%s", b.String())
	data, _ := json.MarshalIndent(m, "", "  ")
	c.save("memory.json", string(data))
}

// pidFiles are the processes up.sh recorded (run/pids): on the stock layout etcd and
// every component apart, on the K3s layout k3s-server and containerd.
func (c *cluster) pidFiles() map[string]int {
	c.t.Helper()
	dir := filepath.Join(c.set["DEVCLUSTER_DIR"], "run", "pids")
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.t.Fatal(err)
	}
	pids := map[string]int{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			c.t.Fatal(err)
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil {
			c.t.Fatalf("pid file %s: %v", e.Name(), err)
		}
		pids[e.Name()] = pid
	}
	want := map[string][]string{"stock": {"containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubelet"}, "k3s": {"containerd", "k3s-server"}}[c.layout.name]
	var got []string
	for name := range pids {
		got = append(got, name)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		c.t.Errorf("pid files %v, want %v (the %s layout's processes)", got, want, c.layout.name)
	}
	return pids
}

// checkFootprint takes three snapshots as task footprint does and checks
// that every process of the layout, the shims, CoreDNS and every edgeflow pod
// are found in /proc with their memory and CPU time.
func (c *cluster) checkFootprint() {
	c.t.Helper()
	pids := c.pidFiles()
	s := &footprint.Sampler{PIDs: pids, Pods: footprint.PodsFromAPI(c.kubeconfig)}
	var snaps []footprint.Snapshot
	for range 3 {
		snap, err := s.Snapshot()
		if err != nil {
			c.t.Fatalf("footprint: %v", err)
		}
		snaps = append(snaps, snap)
		time.Sleep(time.Second)
	}
	stats := footprint.Summarise(snaps)
	var md strings.Builder
	footprint.WriteMarkdown(&md, []footprint.Phase{{Name: "after the rollouts", Duration: 2 * time.Second, Samples: 3, Stats: stats}})
	c.save("footprint.md", md.String())
	found := map[string]footprint.Stat{}
	for _, st := range stats {
		found[st.Name] = st
		if st.PeakPSS <= 0 || st.PeakPSS > st.PeakRSS || st.Procs == 0 {
			c.t.Errorf("footprint of %s: %+v", st.Name, st)
		}
	}
	want := []string{footprint.Shims}
	for name := range pids {
		want = append(want, name)
	}
	// Every running pod that is not on its way out (a rollout's old pods may
	// still be shutting down).
	var pods struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct{ Phase string } `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.kubectl("-n", namespace, "get", "pods", "-o", "json")), &pods); err != nil {
		c.t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == "Running" && p.Metadata.DeletionTimestamp == nil {
			want = append(want, p.Metadata.Name)
		}
	}
	// The overlay's 8 pods: nats, mosquitto, influxdb, ingest-0, two processors,
	// notifier, dashboard.
	if len(want) < 1+len(pids)+8 {
		c.t.Errorf("footprint: only %d components and pods to look for: %v", len(want), want)
	}
	for _, w := range want {
		if _, ok := found[w]; !ok {
			c.t.Errorf("footprint found no %s", w)
		}
	}
	coredns := false
	for _, st := range stats {
		coredns = coredns || (st.Namespace == "kube-system" && footprint.Workload(st.Name) == "coredns")
	}
	if !coredns {
		c.t.Error("footprint found no CoreDNS pod")
	}
	if c.t.Failed() {
		c.t.Logf("footprint:\n%s", md.String())
	}
}

// checkSecretsEncrypted reads a Secret of the pipeline straight from the datastore (the
// stock layout's etcd, the K3s layout's kine through its etcd API): the dev cluster
// encrypts Secrets at rest (secretbox, as K3s's --secrets-encryption does with AES-CBC),
// so neither the value nor its plaintext may be in the stored bytes.
func (c *cluster) checkSecretsEncrypted() {
	c.t.Helper()
	key := "/registry/secrets/" + namespace + "/edgeflow-dashboard"
	cmd := exec.Command("nsenter", "--net=/run/netns/"+c.set["DEVCLUSTER_NETNS"], "etcdctl", "--endpoints", "http://127.0.0.1:2379",
		"get", key, "--print-value-only")
	if c.layout.name == "k3s" {
		cmd = exec.Command("etcdctl", "--endpoints", "unix://"+c.set["KINE_SOCK"],
			"get", key, "--print-value-only")
	}
	cmd.Env = append(append([]string(nil), c.env...), "ETCDCTL_API=3")
	raw, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("etcdctl get: %v", err)
	}
	token := strings.TrimSpace(c.readSecret("edgeflow-dashboard", "token"))
	if !bytes.HasPrefix(raw, []byte("k8s:enc:secretbox:v1:")) || bytes.Contains(raw, []byte(token)) {
		c.t.Errorf("the dashboard Secret is not encrypted in the datastore (%d bytes, starting %q)", len(raw), raw[:min(len(raw), 24)])
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
