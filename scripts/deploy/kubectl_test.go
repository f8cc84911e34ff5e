package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeKubectl puts a kubectl on PATH that answers the argument lists of answers (joined
// by spaces) with their text, a leading "!" making it fail with the rest on stderr, and
// any other with a failure. An answer of several parts joined by then is a sequence:
// the nth call gets the nth part, and every call after the last part gets the last. It
// returns a function listing the calls made so far, and the standard input of each call
// to `apply -f -`.
func fakeKubectl(t *testing.T, answers map[string]string) (calls func() []string, applied func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	stdin := filepath.Join(dir, "stdin")
	var s strings.Builder
	fmt.Fprintf(&s, "#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %q\n", log)
	fmt.Fprintf(&s, "if [ \"$*\" = \"apply -f -\" ]; then cat >> %q; printf '\\n---\\n' >> %q; exit 0; fi\n", stdin, stdin)
	s.WriteString("case \"$*\" in\n")
	n := 0
	for args, answer := range answers {
		n++
		counter := filepath.Join(dir, fmt.Sprintf("count%d", n))
		fmt.Fprintf(&s, "%q)\nn=$(($(cat %q 2>/dev/null || echo 0) + 1)); echo $n > %q\ncase $n in\n", args, counter, counter)
		parts := strings.Split(answer, then)
		for i, part := range parts {
			pattern := strconv.Itoa(i + 1)
			if i == len(parts)-1 {
				pattern = "*"
			}
			body, fail := strings.CutPrefix(part, "!")
			out, code := "", 0
			if fail {
				out, code = " >&2", 1
			}
			// printf '%s': no newline added, as kubectl prints a jsonpath.
			fmt.Fprintf(&s, "%s) printf '%%s' '%s'%s; exit %d;;\n", pattern, strings.ReplaceAll(body, "'", `'\''`), out, code)
		}
		s.WriteString("esac;;\n")
	}
	s.WriteString("*) echo \"fake kubectl: unexpected: $*\" >&2; exit 1;;\nesac\n")
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte(s.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	read := func(path, sep string) []string {
		b, _ := os.ReadFile(path)
		var out []string
		for _, l := range strings.Split(string(b), sep) {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	return func() []string { return read(log, "\n") }, func() []string { return read(stdin, "\n---\n") }
}

// fakeGo puts a go on PATH that records its arguments and, given images (the
// JSON of images.json), writes them to the folder of its -out flag, as scripts/images
// does. It returns a function listing the calls made so far.
func fakeGo(t *testing.T, images string) func() []string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %q\n", log)
	if images != "" {
		script += "out=\nwhile [ $# -gt 0 ]; do [ \"$1\" = -out ] && out=\"$2\"; shift; done\n" +
			"mkdir -p \"$out\" && cat > \"$out/images.json\" <<'EOF'\n" + images + "\nEOF\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		b, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// then joins the answers of a fakeKubectl sequence.
const then = "\n--then--\n"

func testKube(t *testing.T) *Kube {
	return &Kube{Config: Config{Root: t.TempDir(), Overlay: "k3s", Timeout: time.Minute}, Poll: time.Millisecond}
}

const nodesJSON = `{"items": [
 {"metadata": {"name": "server", "labels": {"kubernetes.io/os": "linux"}},
  "status": {"addresses": [{"type": "Hostname", "address": "server"}, {"type": "InternalIP", "address": "10.0.0.1"}, {"type": "InternalIP", "address": "fd00::1"}],
             "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64"}}},
 {"metadata": {"name": "pi", "labels": {"edgeflow.io/edge": "true"}},
  "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
             "nodeInfo": {"operatingSystem": "linux", "architecture": "arm"}}}
]}`

func TestNodes(t *testing.T) {
	fakeKubectl(t, map[string]string{"get nodes -o json": nodesJSON})
	nodes, err := testKube(t).Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 {
		t.Fatalf("%d nodes, want 2: %+v", len(nodes), nodes)
	}
	if n := nodes[0]; n.Name != "server" || n.InternalIP != "10.0.0.1" || n.OS != "linux" || n.Arch != "amd64" || n.Variant != "" {
		t.Errorf("server: %+v; want its first InternalIP, linux/amd64", n)
	}
	// Kubernetes reports no ARM version: 32-bit ARM is taken for v7.
	if n := nodes[1]; n.Arch != "arm" || n.Variant != "v7" || n.Labels[EdgeLabel] != "true" {
		t.Errorf("pi: %+v; want arm/v7 with its labels", n)
	}
	if got := Platforms(nodes); got != "linux/amd64,linux/arm/v7" {
		t.Errorf("Platforms = %q", got)
	}
}

func TestNodesRefusesAnEmptyCluster(t *testing.T) {
	fakeKubectl(t, map[string]string{"get nodes -o json": `{"items": []}`})
	if _, err := testKube(t).Nodes(context.Background()); err == nil {
		t.Fatal("a cluster without nodes: no error")
	}
}

// The lines of `task status`: readiness of the containers, restarts summed, the last
// termination's reason and exit code, the first container's memory limit.
func TestPods(t *testing.T) {
	fakeKubectl(t, map[string]string{"-n edgeflow get pods -o json": `{"items": [
 {"metadata": {"name": "processor-0"},
  "spec": {"nodeName": "pi", "containers": [{"resources": {"limits": {"memory": "64Mi"}}}, {}]},
  "status": {"phase": "Running", "containerStatuses": [
    {"ready": true, "restartCount": 2, "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}},
    {"ready": false, "restartCount": 1, "lastState": {}}]}},
 {"metadata": {"name": "nats-0"}, "spec": {"nodeName": "server", "containers": [{}]},
  "status": {"phase": "Pending"}}
]}`})
	pods, err := testKube(t).pods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Pod{
		{Name: "processor-0", Node: "pi", Phase: "Running", Ready: "1/2", LastTermination: "OOMKilled (137)", MemoryLimit: "64Mi", Restarts: 3},
		{Name: "nats-0", Node: "server", Phase: "Pending", Ready: "0/1"},
	}
	if !slices.Equal(pods, want) {
		t.Fatalf("pods:\n%+v\nwant\n%+v", pods, want)
	}
	if orDash("") != "-" || mib(0) != "-" || mib(3<<19) != "1.5Mi" {
		t.Errorf("status cells: %q %q %q", orDash(""), mib(0), mib(3<<19))
	}
}

func TestWorkloadKind(t *testing.T) {
	calls, _ := fakeKubectl(t, map[string]string{
		"-n edgeflow get deployment influxdb -o name":  "!not found",
		"-n edgeflow get statefulset influxdb -o name": "statefulset.apps/influxdb",
		"-n edgeflow get deployment ingest -o name":    "deployment.apps/ingest",
	})
	k := testKube(t)
	for name, want := range map[string]string{"influxdb": "statefulset", "ingest": "deployment"} {
		if kind, err := k.WorkloadKind(context.Background(), name); err != nil || kind != want {
			t.Errorf("%s: %q, %v; want %s", name, kind, err, want)
		}
	}
	if _, err := k.WorkloadKind(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("no such workload: %v", err)
	}
	if n := len(calls()); n != 5 {
		t.Errorf("%d kubectl calls, want 5: %q", n, calls())
	}
}

// The secrets folder is named after the kubeconfig's current context, with every
// character a path could trip on replaced.
func TestClusterName(t *testing.T) {
	fakeKubectl(t, map[string]string{"config current-context": "admin@k3s home/1"})
	k := testKube(t)
	if name, err := k.clusterName(context.Background()); err != nil || name != "admin_k3s_home_1" {
		t.Fatalf("clusterName = %q, %v; want admin_k3s_home_1", name, err)
	}
	k.Overlay = "devcluster-ha"
	if name, err := k.clusterName(context.Background()); err != nil || name != "devcluster" {
		t.Fatalf("devcluster overlay: %q, %v", name, err)
	}
}

func TestClusterNameWithoutContext(t *testing.T) {
	fakeKubectl(t, map[string]string{"config current-context": "!current-context is not set"})
	if _, err := testKube(t).clusterName(context.Background()); err == nil || !strings.Contains(err.Error(), "set CLUSTER") {
		t.Fatalf("no current context: %v, want to be told to set CLUSTER", err)
	}
}

// The dashboard's certificate goes in as kubernetes.io/tls, as Ingress controllers
// expect; every other Secret as Opaque.
func TestApplySecretType(t *testing.T) {
	dir := t.TempDir()
	answers := map[string]string{}
	for name, typ := range map[string]string{"edgeflow-dashboard-tls": "kubernetes.io/tls", "edgeflow-mqtt": "Opaque", "edgeflow-mqtt-tls": "Opaque"} {
		args := fmt.Sprintf("-n edgeflow create secret generic %s --type=%s --from-file=%s --dry-run=client -o yaml", name, typ, filepath.Join(dir, name))
		answers[args] = "kind: Secret # " + name + " " + typ
	}
	_, applied := fakeKubectl(t, answers)
	k := testKube(t)
	for _, name := range []string{"edgeflow-dashboard-tls", "edgeflow-mqtt", "edgeflow-mqtt-tls"} {
		if err := applySecret(context.Background(), k, dir, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	want := []string{"kind: Secret # edgeflow-dashboard-tls kubernetes.io/tls", "kind: Secret # edgeflow-mqtt Opaque", "kind: Secret # edgeflow-mqtt-tls Opaque"}
	if got := applied(); !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
}

// Only the edgeflow-* folders of the secrets folder become Secrets: the CA's private key
// (ca/) and anything else stay on the workstation.
func TestSecretsApplyOnlyEdgeflowFolders(t *testing.T) {
	k := testKube(t)
	k.Cluster = "home"
	dir := k.buildDir("secrets", "home")
	for _, d := range []string{"ca", "edgeflow-mqtt", "edgeflow-dashboard-tls", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "edgeflow-notes"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	answers := map[string]string{}
	for name, typ := range map[string]string{"edgeflow-dashboard-tls": "kubernetes.io/tls", "edgeflow-mqtt": "Opaque"} {
		answers[fmt.Sprintf("-n edgeflow create secret generic %s --type=%s --from-file=%s --dry-run=client -o yaml", name, typ, filepath.Join(dir, name))] = "secret " + name
	}
	_, applied := fakeKubectl(t, answers)
	goCalls := fakeGo(t, "")

	nodes := []Node{{Name: "server", InternalIP: "10.0.0.1"}, {Name: "pi"}}
	k.DashboardHost = "edge.example"
	if err := secrets(context.Background(), k, nodes, Influx18); err != nil {
		t.Fatal(err)
	}
	ns := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: edgeflow"
	if got, want := applied(), []string{ns, "secret edgeflow-dashboard-tls", "secret edgeflow-mqtt"}; !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
	want := "run ./scripts/secrets -out " + dir + " -san 10.0.0.1 -dashboard-san 10.0.0.1 -san server -dashboard-san server" +
		" -san pi -dashboard-san pi -dashboard-san edge.example -influx18"
	if got := goCalls(); len(got) != 1 || got[0] != want {
		t.Fatalf("go %q\nwant go %s", got, want)
	}
}

// scale refuses bad arguments and the workloads it does not scale, and then
// scales nothing.
func TestScaleArguments(t *testing.T) {
	calls, _ := fakeKubectl(t, map[string]string{
		"-n edgeflow get deployment ingest -o name": "deployment.apps/ingest",
		"-n edgeflow get deployment nats -o name":   "!not found",
		"-n edgeflow get statefulset nats -o name":  "statefulset.apps/nats",
	})
	k := testKube(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"processor"}, "want NAME=REPLICAS"},
		{[]string{"processor=x"}, "want NAME=REPLICAS"},
		{[]string{"processor=-1"}, "want NAME=REPLICAS"},
		{[]string{"nats=3"}, "not scaled this way"},
		{[]string{"ingest=2"}, "ingest-share-group"},
	} {
		if err := scale(context.Background(), k, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scale %q: %v, want %q", tc.args, err, tc.want)
		}
	}
	for _, c := range calls() {
		if strings.Contains(c, " scale ") {
			t.Errorf("scaled despite refusing: %s", c)
		}
	}
}

func TestScale(t *testing.T) {
	calls, _ := fakeKubectl(t, map[string]string{
		"-n edgeflow get deployment processor -o name":        "deployment.apps/processor",
		"-n edgeflow scale deployment/processor --replicas=4": "scaled",
		getWorkloads: listJSON(deploymentJSON("processor", 2, 2, 4, 4, 4, 4)),
		getPods:      podsReady,
	})
	if err := scale(context.Background(), testKube(t), []string{"processor=4"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(calls(), "-n edgeflow scale deployment/processor --replicas=4") {
		t.Fatalf("calls %q", calls())
	}
}

// logs reads every pod of a workload, the last 200 lines unless told otherwise.
func TestLogsArguments(t *testing.T) {
	base := "-n edgeflow logs -l app.kubernetes.io/name=processor --prefix --max-log-requests=10 --all-containers"
	calls, _ := fakeKubectl(t, map[string]string{
		base + " --tail=200":            "",
		base + " -f --tail=20":          "",
		base + " --previous --tail=200": "",
	})
	k := testKube(t)
	for _, args := range [][]string{{"processor"}, {"processor", "-f", "--tail=20"}, {"processor", "--previous"}} {
		if err := logs(context.Background(), k, args); err != nil {
			t.Errorf("logs %q: %v", args, err)
		}
	}
	if got := len(calls()); got != 3 {
		t.Errorf("%d calls, want 3: %q", got, calls())
	}
	for _, args := range [][]string{nil, {"postgres"}} {
		if err := logs(context.Background(), k, args); err == nil || !strings.Contains(err.Error(), "services: nats") {
			t.Errorf("logs %q: %v, want the list of services", args, err)
		}
	}
}

// rollout, rollback and dashboard refuse bad arguments before doing anything.
func TestOperationArguments(t *testing.T) {
	calls, _ := fakeKubectl(t, nil)
	k := testKube(t)
	ctx := context.Background()
	if err := rollout(ctx, k, []string{"ingest", "nats"}); err == nil || !strings.Contains(err.Error(), `unknown service "nats"`) {
		t.Errorf("rollout of a third-party workload: %v", err)
	}
	if err := rollback(ctx, k, nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("rollback of nothing: %v", err)
	}
	if err := dashboard(ctx, k, []string{"http"}); err == nil || !strings.Contains(err.Error(), `local port "http"`) {
		t.Errorf("dashboard on port http: %v", err)
	}
	if c := calls(); len(c) != 0 {
		t.Errorf("kubectl called: %q", c)
	}
}

func TestDown(t *testing.T) {
	calls, _ := fakeKubectl(t, map[string]string{"delete namespace edgeflow --ignore-not-found --wait=true --timeout=1m0s": "deleted"})
	if err := down(context.Background(), testKube(t)); err != nil {
		t.Fatal(err)
	}
	if len(calls()) != 1 {
		t.Fatalf("calls %q", calls())
	}
}

// PortForward reads the local port kubectl chose from its output.
func TestPortForward(t *testing.T) {
	fakeKubectl(t, map[string]string{
		"-n edgeflow port-forward --address 127.0.0.1 pod/influxdb-0 0:8086": "Forwarding from 127.0.0.1:41234 -> 8086\nForwarding from [::1]:41234 -> 8086",
	})
	port, stop, err := testKube(t).PortForward(context.Background(), "pod/influxdb-0", 0, 8086)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if port != 41234 {
		t.Fatalf("port %d, want 41234", port)
	}
}

// rollout rebuilds the services named, keeps the other images of images.json, applies the
// generated kustomization, restarts a workload whose image did not change (so its pods
// are replaced all the same) and waits for the rollouts.
func TestRollout(t *testing.T) {
	k := testKube(t)
	k.Registry, k.Cluster = "reg.example", "home"
	dir := k.buildDir("images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var old []Image
	for _, s := range Services {
		old = append(old, Image{Name: s, Ref: "reg.example/edgeflow/" + s + ":v1"})
	}
	if err := writeImages(filepath.Join(dir, "images.json"), old); err != nil {
		t.Fatal(err)
	}
	goCalls := fakeGo(t, `[{"name": "processor", "ref": "reg.example/edgeflow/processor:v2"},
 {"name": "notifier", "ref": "reg.example/edgeflow/notifier:v1"}]`)
	image := "-o jsonpath={.spec.template.spec.containers[0].image}"
	calls, _ := fakeKubectl(t, map[string]string{
		"get nodes -o json":                               nodesJSON,
		"-n edgeflow get deployment processor -o name":    "deployment.apps/processor",
		"-n edgeflow get deployment notifier -o name":     "deployment.apps/notifier",
		"-n edgeflow get deployment processor " + image:   "reg.example/edgeflow/processor:v1",
		"-n edgeflow get deployment notifier " + image:    "reg.example/edgeflow/notifier:v1",
		"apply -k " + k.buildDir("deploy", "k3s"):         "applied",
		"-n edgeflow rollout restart deployment/notifier": "restarted",
		getWorkloads: listJSON(deploymentJSON("processor", 2, 2, 1, 1, 1, 1), deploymentJSON("notifier", 3, 3, 1, 1, 1, 1)),
		getPods:      podsReady,
	})
	if err := rollout(context.Background(), k, []string{"processor", "notifier"}); err != nil {
		t.Fatal(err)
	}
	wantGo := "run ./scripts/images -out " + dir + " -platforms linux/amd64,linux/arm/v7 -registry reg.example -push -only processor,notifier"
	if got := goCalls(); len(got) != 1 || got[0] != wantGo {
		t.Errorf("go %q\nwant go %s", got, wantGo)
	}
	var restarts []string
	for _, c := range calls() {
		if strings.Contains(c, "rollout restart") {
			restarts = append(restarts, c)
		}
	}
	if len(restarts) != 1 || !strings.HasSuffix(restarts[0], "deployment/notifier") {
		t.Errorf("restarts %q, want the notifier's only (its image did not change)", restarts)
	}
	kept, err := readImages(filepath.Join(dir, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "dashboard=reg.example/edgeflow/dashboard:v1 ingest=reg.example/edgeflow/ingest:v1 " +
		"notifier=reg.example/edgeflow/notifier:v1 processor=reg.example/edgeflow/processor:v2"; names(kept) != want {
		t.Errorf("images.json after the rollout: %s\nwant %s", names(kept), want)
	}
	kust, err := os.ReadFile(filepath.Join(k.buildDir("deploy", "k3s"), "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kust), "newName: reg.example/edgeflow/processor\n    newTag: \"v2\"") ||
		!strings.Contains(string(kust), "newName: reg.example/edgeflow/ingest\n    newTag: \"v1\"") {
		t.Errorf("kustomization does not name the new processor and the kept ingest:\n%s", kust)
	}
}
