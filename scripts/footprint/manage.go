package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ManageStep is one management action run on the dev cluster, as a user would type it.
type ManageStep struct {
	Name     string        `json:"name"`            // short: "scale", "rolling update", ...
	Command  string        `json:"command"`         // the exact command(s) a user types
	Took     time.Duration `json:"took"`            // until the cluster was back to what was asked
	Observed string        `json:"observed"`        // what happened, 1-3 sentences, with numbers
	Err      string        `json:"error,omitempty"` // set when the step failed; the tour goes on
}

// What the tour relies on in the dev cluster kit (scripts/devcluster/env.sh) and in the
// devcluster overlay (manifests/overlays/devcluster).
const (
	tourNamespace   = "edgeflow"
	tourNode        = "edgeflow-node"
	tourEtcd        = "http://127.0.0.1:2379" // inside the network namespace
	tourProcessors  = 2                       // the overlay's processor replicas
	tourStepTimeout = 3 * time.Minute
	tourSettleLimit = 3 * time.Minute
)

// Where the layout being toured answers; set by manageTour from the layout's node IP.
var (
	tourNetns     = "/run/netns/efk8s"
	tourAPIServer = "https://172.30.250.2:6443"
	tourDashboard = "http://172.30.250.2:30080/healthz" // NodePort of the dashboard
)

// The daemons of each layout of the kit, by their pid file names in run/pids.
var layoutDaemons = map[string][]string{
	"stock": {"etcd", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"},
	"k3s":   {"containerd", "k3s-server"},
}

// tourDaemons are the daemons of the layout being toured.
var tourDaemons = layoutDaemons["stock"]

// tourEnv is what every step needs.
type tourEnv struct {
	root, kubeconfig, dcDir string
	kubectl                 string
	logf                    func(format string, args ...any)
}

// manageTour runs the management actions in order on the deployed pipeline (OVERLAY=devcluster,
// all workloads Ready) and returns one step per action. root is the repo root, kubeconfig the
// dev cluster's admin kubeconfig, dcDir the dev cluster dir (/tmp/edgeflow-devcluster), layout
// stock or k3s, nodeIP its node's address. Every layout gets the task verbs (status, logs,
// scale, rollout, rollback) and self-healing; full adds remote access and, on the stock
// layout, whose daemons are separate processes, node loss, drain, etcd backup and restore,
// secret encryption in etcd and a control-plane restart.
func manageTour(ctx context.Context, root, kubeconfig, dcDir, layout, nodeIP string, full bool, logf func(format string, args ...any)) []ManageStep {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	tourDaemons = layoutDaemons[layout]
	tourNetns = map[string]string{"stock": "/run/netns/efk8s", "k3s": "/run/netns/efk3s"}[layout]
	tourAPIServer = "https://" + nodeIP + ":6443"
	tourDashboard = "http://" + nodeIP + ":30080/healthz"
	t := &tourEnv{root: root, kubeconfig: kubeconfig, dcDir: dcDir, kubectl: "kubectl", logf: logf}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.kubectl = filepath.Join(dcDir, "bin", "kubectl")
	}
	type step struct {
		name string
		run  func(context.Context, *ManageStep) error
	}
	steps := []step{
		{"status", t.tourStatus},
		{"logs", t.tourLogs},
		{"scale", t.tourScale},
		{"rolling update", t.tourRollout},
		{"rollback", t.tourRollback},
		{"self-healing after pod loss", t.tourPodLoss},
	}
	if full && layout == "stock" {
		steps = append(steps,
			step{"node loss (kubelet down)", t.tourNodeLoss},
			step{"drain", t.tourDrain},
			step{"remote access by kubeconfig", t.tourRemote},
			step{"backup and restore of cluster state", t.tourBackup},
			step{"secret encryption at rest", t.tourEncryption},
			step{"in-place control-plane restart", t.tourControlPlane})
	} else if full {
		steps = append(steps, step{"remote access by kubeconfig", t.tourRemote})
	}
	if err := t.tourSettle(ctx); err != nil {
		logf("tour: the pipeline is not all Ready before the tour: %v", err)
	}
	var out []ManageStep
	for _, st := range steps {
		s := ManageStep{Name: st.name}
		if err := ctx.Err(); err != nil {
			s.Err = "not run: " + err.Error()
			out = append(out, s)
			continue
		}
		logf("tour: %s", st.name)
		sctx, cancel := context.WithTimeout(ctx, tourStepTimeout)
		err := st.run(sctx, &s)
		cancel()
		if err != nil {
			s.Err = err.Error()
		}
		// Back to the baseline (all daemons, node schedulable, 2 processors, all Ready).
		if err := t.tourSettle(ctx); err != nil {
			s.Err = strings.TrimPrefix(s.Err+"; afterwards: "+err.Error(), "; ")
		}
		if s.Err != "" {
			logf("tour: %s: took %s; %s; error: %s", s.Name, tourSecs(s.Took), s.Observed, s.Err)
		} else {
			logf("tour: %s: took %s; %s", s.Name, tourSecs(s.Took), s.Observed)
		}
		out = append(out, s)
	}
	return out
}

// --- steps ---------------------------------------------------------------------------

func (t *tourEnv) tourStatus(ctx context.Context, s *ManageStep) error {
	s.Command = "go tool task status"
	start := time.Now()
	out, _, err := t.tourTask(ctx, "status")
	s.Took = time.Since(start)
	if err != nil {
		return err
	}
	pods, running := 0, 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.Contains(f[1], "/") && f[0] != "NAME" && f[0] != "POD" && !strings.Contains(f[0], ".apps/") {
			pods++
			if f[2] == "Running" {
				running++
			}
		}
	}
	s.Observed = fmt.Sprintf("%d lines in %s: the node, the workloads and %d pods (%d Running) with restarts, "+
		"last termination and memory from the kubelet's summary API.", strings.Count(out, "\n"), tourSecs(s.Took), pods, running)
	if !strings.Contains(out, tourNode) || pods == 0 {
		return fmt.Errorf("status shows no node %s or no pods:\n%s", tourNode, tourTail(out))
	}
	return nil
}

func (t *tourEnv) tourLogs(ctx context.Context, s *ManageStep) error {
	s.Command = "go tool task logs -- processor"
	start := time.Now()
	out, _, err := t.tourTask(ctx, "logs", "--", "processor")
	s.Took = time.Since(start)
	if err != nil {
		return err
	}
	lines, pods := 0, map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines++
		if strings.HasPrefix(l, "[pod/") {
			if i := strings.Index(l, "]"); i > 0 {
				pods[l[1:i]]++
			}
		}
	}
	per := make([]string, 0, len(pods))
	for p, n := range pods {
		per = append(per, fmt.Sprintf("%d from %s", n, tourShortPod(p)))
	}
	sort.Strings(per)
	s.Observed = fmt.Sprintf("%d log lines (%d bytes) from %d processor pods, each line prefixed with its pod "+
		"(%s; kubectl logs --tail=200 per pod) in %s, including `go run ./scripts/deploy`.",
		lines, len(out), len(pods), strings.Join(per, ", "), tourSecs(s.Took))
	if lines == 0 {
		return errors.New("no log lines")
	}
	return nil
}

func (t *tourEnv) tourScale(ctx context.Context, s *ManageStep) error {
	s.Command = "go tool task scale -- processor=3; go tool task scale -- processor=2"
	before, err := t.tourProcessorPods(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if _, _, err := t.tourTask(ctx, "scale", "--", "processor=3"); err != nil {
		return err
	}
	taskUp := time.Since(start)
	if err := t.tourWaitProcessors(ctx, 3); err != nil {
		return fmt.Errorf("3 Ready processors: %w", err)
	}
	s.Took = time.Since(start)
	start = time.Now()
	if _, _, err := t.tourTask(ctx, "scale", "--", "processor=2"); err != nil {
		return err
	}
	if err := t.tourWaitProcessors(ctx, 2); err != nil {
		return fmt.Errorf("back to 2 processors: %w", err)
	}
	down := time.Since(start)
	after, err := t.tourProcessorPods(ctx)
	if err != nil {
		return err
	}
	kept := 0
	for _, p := range tourLive(after) {
		if slices.ContainsFunc(before, func(b tourPod) bool { return b.UID == p.UID }) {
			kept++
		}
	}
	s.Observed = fmt.Sprintf("processor 2 -> 3: the third pod was Ready %s after the command (the task itself "+
		"returned after %s, waiting for the rollout); back to 2 took %s (until only 2 pods were left); "+
		"%d of the 2 original pods were kept throughout.", tourSecs(s.Took), tourSecs(taskUp), tourSecs(down), kept)
	return nil
}

func (t *tourEnv) tourRollout(ctx context.Context, s *ManageStep) error {
	s.Command = "go tool task rollout -- processor"
	return t.tourRoll(ctx, s, "rollout", "--", "processor")
}

func (t *tourEnv) tourRollback(ctx context.Context, s *ManageStep) error {
	s.Command = "go tool task rollback -- processor"
	return t.tourRoll(ctx, s, "rollback", "--", "processor")
}

// tourRoll runs a task that replaces the processor pods and reports the old and new pods,
// the revisions and the fewest Ready processors seen meanwhile (sampled every 250 ms).
func (t *tourEnv) tourRoll(ctx context.Context, s *ManageStep, task ...string) error {
	before, revBefore, histBefore, err := t.tourRollState(ctx)
	if err != nil {
		return err
	}
	minReady, maxPods, samples := 1<<30, 0, 0
	stop := tourEvery(ctx, 250*time.Millisecond, func(c context.Context) {
		ps, err := t.tourProcessorPods(c)
		if err != nil {
			return
		}
		samples++
		minReady = min(minReady, tourReadyCount(ps))
		maxPods = max(maxPods, len(ps))
	})
	start := time.Now()
	out, errOut, err := t.tourTask(ctx, task...)
	if err == nil {
		err = t.tourWaitProcessors(ctx, tourProcessors)
	}
	s.Took = time.Since(start)
	stop()
	if err != nil {
		return err
	}
	after, revAfter, histAfter, err := t.tourRollState(ctx)
	if err != nil {
		return err
	}
	oldNames, newNames := tourNames(tourLive(before)), tourNames(tourLive(after))
	same := 0
	for _, n := range newNames {
		if slices.Contains(oldNames, n) {
			same++
		}
	}
	how, reused := "", ""
	kept := strings.Fields(strings.Trim(histAfter, "[]"))
	for _, r := range strings.Fields(strings.Trim(histBefore, "[]")) {
		if !slices.Contains(kept, r) {
			reused = r // kubectl rollout undo moves the template to a new revision
		}
	}
	if reused != "" {
		reused = ", revision " + revAfter + " being old revision " + reused + "'s template"
	}
	if task[0] == "rollout" {
		how = "image rebuilt and delivered, "
		if strings.Contains(out+errOut, "unchanged; restarting") {
			how = "image rebuilt (unchanged, so `rollout restart`), "
		}
	}
	s.Observed = fmt.Sprintf("%sdone in %s: pods %s -> %s (%d of %d names kept), revision %s -> %s "+
		"(history %s -> %s%s); Ready processors sampled %d times during it: min %d (up to %d processor pods at once, "+
		"terminating ones included).",
		how, tourSecs(s.Took), strings.Join(tourShort(oldNames), ","), strings.Join(tourShort(newNames), ","),
		same, len(newNames), revBefore, revAfter, histBefore, histAfter, reused, samples, minReady, maxPods)
	if same > 0 {
		return fmt.Errorf("%d pods were not replaced", same)
	}
	return nil
}

func (t *tourEnv) tourPodLoss(ctx context.Context, s *ManageStep) error {
	pods, err := t.tourProcessorPods(ctx)
	if err != nil {
		return err
	}
	live := tourLive(pods)
	if len(live) == 0 {
		return errors.New("no processor pod")
	}
	victim := live[0].Name
	s.Command = "kubectl -n edgeflow delete pod " + victim + " --wait=false"
	var created time.Duration
	minReady := 1 << 30
	start := time.Now()
	if _, err := t.tourKubectl(ctx, "-n", tourNamespace, "delete", "pod", victim, "--wait=false"); err != nil {
		return err
	}
	var replacement string
	err = tourWaitFor(ctx, 250*time.Millisecond, func() (bool, error) {
		ps, err := t.tourProcessorPods(ctx)
		if err != nil {
			return false, err
		}
		minReady = min(minReady, tourReadyCount(ps))
		for _, p := range tourLive(ps) {
			if !slices.ContainsFunc(live, func(o tourPod) bool { return o.UID == p.UID }) {
				if created == 0 {
					created = time.Since(start)
				}
				replacement = p.Name
			}
		}
		return replacement != "" && tourReadyCount(ps) == tourProcessors && len(tourLive(ps)) == tourProcessors, nil
	})
	s.Took = time.Since(start)
	if err != nil {
		return fmt.Errorf("replacement Ready: %w", err)
	}
	s.Observed = fmt.Sprintf("deleted %s; the ReplicaSet created %s within %s, Ready %s after the delete; "+
		"Ready processors never fell below %d (sampled every 250 ms).",
		tourShortPod(victim), tourShortPod(replacement), tourSecs(created), tourSecs(s.Took), minReady)
	return nil
}

func (t *tourEnv) tourNodeLoss(ctx context.Context, s *ManageStep) error {
	s.Command = "kill -9 $(cut -d' ' -f1 /tmp/edgeflow-devcluster/run/pids/kubelet); " +
		"(node goes NotReady) bash scripts/devcluster/up.sh"
	pid, ok := t.tourDaemonPid("kubelet")
	if !ok {
		return errors.New("kubelet is not running")
	}
	before, err := t.tourPods(ctx, "")
	if err != nil {
		return err
	}
	start := time.Now()
	dash, stopDash := tourProbeDashboard(ctx, 500*time.Millisecond)
	defer stopDash()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	var status string
	err = tourWaitFor(ctx, time.Second, func() (bool, error) {
		status = t.tourNodeStatus(ctx)
		return status != "True" && status != "", nil
	})
	notReady := time.Since(start)
	if err != nil {
		return fmt.Errorf("node Ready condition still %q after %s: %w", status, tourSecs(notReady), err)
	}
	// What the node controller does to the pods, and what the runtime still runs.
	time.Sleep(3 * time.Second)
	mid, _ := t.tourPods(ctx, "")
	running := t.tourRunningContainers(ctx)
	endpoints, _ := t.tourKubectl(ctx, "-n", tourNamespace, "get", "endpointslices",
		"-l", "kubernetes.io/service-name=dashboard", "-o", "jsonpath={..endpoints[*].conditions.ready}")
	dashMidOK, dashMidFail, firstFail := dash.get()
	if _, err := t.tourStopDaemons(ctx, 0, "kubelet"); err != nil { // reaped, so that up.sh restarts it
		return err
	}
	upStart := time.Now()
	if _, errOut, err := t.tourRun(ctx, t.root, nil, "bash", "scripts/devcluster/up.sh"); err != nil {
		return fmt.Errorf("up.sh: %w: %s", err, tourTail(errOut))
	}
	upTook := time.Since(upStart)
	if err := t.tourWaitAllReady(ctx); err != nil {
		return err
	}
	s.Took = time.Since(start)
	stopDash()
	after, err := t.tourPods(ctx, "")
	if err != nil {
		return err
	}
	restarts, replaced := tourChurn(before, after)
	dashOK, dashFail, _ := dash.get()
	s.Observed = fmt.Sprintf("after SIGKILL of kubelet the node's Ready condition became %s after %s; "+
		"3 s later %d of %d edgeflow pods were marked not Ready by the node controller (dashboard endpoint ready: %s) "+
		"while containerd still ran %d containers; the dashboard NodePort answered %d of %d probes until then "+
		"(first failure at %s). "+
		"up.sh restarted kubelet in %s and everything was Ready %s after the kill, "+
		"with %d container restarts and %d pods replaced (dashboard overall: %d ok, %d failed).",
		status, tourSecs(notReady), len(mid)-tourReadyCount(mid), len(mid), tourOr(endpoints, "none"), running,
		dashMidOK, dashMidOK+dashMidFail,
		tourSecsOrNone(firstFail), tourSecs(upTook), tourSecs(s.Took), restarts, replaced, dashOK, dashFail)
	return nil
}

var tourEvictedRe = regexp.MustCompile(`pod/([\w.-]+) evicted`)
var tourPDBRe = regexp.MustCompile(`error when evicting pods/"([\w.-]+)" -n "([\w.-]+)".*disruption budget`)

func (t *tourEnv) tourDrain(ctx context.Context, s *ManageStep) error {
	s.Command = "kubectl drain edgeflow-node --ignore-daemonsets --delete-emptydir-data --timeout=60s; " +
		"kubectl uncordon edgeflow-node"
	before, err := t.tourPods(ctx, "")
	if err != nil {
		return err
	}
	start := time.Now()
	dash, stopDash := tourProbeDashboard(ctx, 500*time.Millisecond)
	defer stopDash()
	out, errOut, drainErr := t.tourRun(ctx, "", nil, t.kubectl, "--kubeconfig", t.kubeconfig, "drain", tourNode,
		"--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s")
	drainTook := time.Since(start)
	all := out + "\n" + errOut
	evicted, blocked := map[string]bool{}, map[string]bool{}
	for _, m := range tourEvictedRe.FindAllStringSubmatch(all, -1) {
		evicted[m[1]] = true
	}
	for _, m := range tourPDBRe.FindAllStringSubmatch(all, -1) {
		blocked[m[2]+"/"+m[1]] = true
	}
	pending := []string{}
	if ps, err := t.tourPodsAll(ctx); err == nil {
		for _, p := range ps {
			if p.Phase == "Pending" && !p.Deleting {
				pending = append(pending, p.Name)
			}
		}
	}
	sort.Strings(pending)
	edgeflowLeft := 0
	if ps, err := t.tourPods(ctx, ""); err == nil {
		edgeflowLeft = tourReadyCount(ps)
	}
	dashDrainOK, dashDrainFail, _ := dash.get()
	uncStart := time.Now()
	if _, err := t.tourKubectl(ctx, "uncordon", tourNode); err != nil {
		return err
	}
	recovery := ""
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = t.tourWaitAllReady(wctx)
	wcancel()
	if err != nil {
		// The devcluster overlay's volumes are emptyDirs: evicted stateful pods come back empty.
		recovery = fmt.Sprintf(" Not all Ready 30 s after uncordon (%v; a processor logs: %s); "+
			"the tour ran `go tool task deploy` to recover", err, t.tourLastErr(ctx, "processor"))
		t.logf("tour: drain:%s", recovery)
		depStart := time.Now()
		if _, _, err := t.tourTask(ctx, "deploy"); err != nil {
			s.Observed = recovery
			return err
		}
		recovery += fmt.Sprintf(" (%s)", tourSecs(time.Since(depStart)))
		if err := t.tourWaitAllReady(ctx); err != nil {
			s.Observed = recovery
			return fmt.Errorf("after uncordon and deploy: %w", err)
		}
		recovery += "."
	}
	uncTook := time.Since(uncStart)
	s.Took = time.Since(start)
	stopDash()
	after, _ := t.tourPods(ctx, "")
	restarts, replaced := tourChurn(before, after)
	result := "completed"
	switch {
	case drainErr != nil && strings.Contains(errOut, "global timeout reached"):
		result = "gave up (--timeout=60s)"
	case drainErr != nil:
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		result = "failed (" + tourTail(lines[len(lines)-1]) + ")"
	}
	s.Observed = fmt.Sprintf("drain %s after %s: it evicted %d pods (%s), PodDisruptionBudgets blocked %d (%s); "+
		"at the end %d pods were Pending (%s), %d of %d edgeflow pods Ready, and the dashboard NodePort had "+
		"answered %d of %d probes.%s After uncordon all were Ready in %s (%d pods replaced, %d container restarts).",
		result, tourSecs(drainTook), len(evicted), strings.Join(tourShort(tourKeys(evicted)), ","),
		len(blocked), strings.Join(tourShort(tourKeys(blocked)), ","), len(pending), strings.Join(tourShort(pending), ","),
		edgeflowLeft, len(before), dashDrainOK, dashDrainOK+dashDrainFail, recovery, tourSecs(uncTook), replaced, restarts)
	return nil
}

func (t *tourEnv) tourRemote(ctx context.Context, s *ManageStep) error {
	s.Command = "KUBECONFIG=/tmp/edgeflow-devcluster/run/admin.kubeconfig kubectl get nodes -o wide"
	b, err := os.ReadFile(t.kubeconfig)
	if err != nil {
		return err
	}
	server := ""
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "server:"); ok {
			server = strings.TrimSpace(v)
		}
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	var st syscall.Stat_t
	nodeNS := "?"
	if syscall.Stat(tourNetns, &st) == nil {
		nodeNS = fmt.Sprintf("net:[%d]", st.Ino)
	}
	start := time.Now()
	out, err := t.tourKubectl(ctx, "get", "nodes", "-o", "wide")
	s.Took = time.Since(start)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	row := ""
	if len(lines) > 1 {
		row = strings.Join(strings.Fields(lines[1])[:min(6, len(strings.Fields(lines[1])))], " ")
	}
	where := "from the host network namespace " + self + " (the node is in " + nodeNS + ")"
	if self == nodeNS {
		where = "from inside the node's network namespace"
	}
	s.Observed = fmt.Sprintf("the admin kubeconfig's server is %s, reached %s over the veth pair with the "+
		"admin client certificate; `kubectl get nodes -o wide` answered in %s with %d node(s): %s.",
		server, where, tourSecs(s.Took), len(lines)-1, row)
	if server != tourAPIServer {
		return fmt.Errorf("server %s, want %s", server, tourAPIServer)
	}
	return nil
}

func (t *tourEnv) tourBackup(ctx context.Context, s *ManageStep) error {
	run := filepath.Join(t.dcDir, "run")
	stamp := time.Now().UTC().Format("20060102-150405")
	snap := filepath.Join(run, "backup", "etcd-"+stamp+".db")
	s.Command = "nsenter --net=/run/netns/efk8s env ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 " +
		"snapshot save " + snap + "; (stop etcd and the control plane) etcdctl snapshot restore " + snap +
		" --name devcluster --initial-cluster devcluster=http://127.0.0.1:2380 --initial-advertise-peer-urls " +
		"http://127.0.0.1:2380 --data-dir run/etcd.restored; (swap it into run/etcd) bash scripts/devcluster/up.sh"
	if err := os.MkdirAll(filepath.Dir(snap), 0o700); err != nil {
		return err
	}
	start := time.Now()
	if _, err := t.tourEtcdctl(ctx, "snapshot", "save", snap); err != nil {
		return err
	}
	saveTook := time.Since(start)
	fi, err := os.Stat(snap)
	if err != nil {
		return err
	}
	stOut, err := t.tourEtcdctl(ctx, "snapshot", "status", snap, "-w", "json")
	if err != nil {
		return err
	}
	var status struct {
		Revision  int64 `json:"revision"`
		TotalKey  int   `json:"totalKey"`
		TotalSize int64 `json:"totalSize"`
	}
	if err := json.Unmarshal([]byte(stOut), &status); err != nil {
		return fmt.Errorf("snapshot status %q: %w", stOut, err)
	}
	saved := fmt.Sprintf("snapshot save took %s: %.1f MiB, %d keys at revision %d", tourSecs(saveTook),
		float64(fi.Size())/(1<<20), status.TotalKey, status.Revision)
	s.Observed = saved + "; restore not done."

	before, err := t.tourPods(ctx, "")
	if err != nil {
		return err
	}
	const marker = "tour-restore-marker"
	if _, err := t.tourKubectl(ctx, "-n", tourNamespace, "create", "configmap", marker,
		"--from-literal=created="+stamp); err != nil {
		return err
	}
	defer func() { // whatever happened, no marker is left behind
		_, _ = t.tourKubectl(context.WithoutCancel(ctx), "-n", tourNamespace, "delete", "configmap", marker,
			"--ignore-not-found", "--request-timeout=10s")
	}()
	restoreStart := time.Now()
	// The API server first: without etcd its graceful shutdown hangs.
	killed, err := t.tourStopDaemons(ctx, syscall.SIGTERM, "kube-controller-manager", "kube-scheduler",
		"kube-apiserver")
	if err != nil {
		return err
	}
	k2, err := t.tourStopDaemons(ctx, syscall.SIGTERM, "etcd")
	if err != nil {
		return err
	}
	killed = append(killed, k2...)
	stopTook := time.Since(restoreStart)
	restored := filepath.Join(run, "etcd.restored-"+stamp)
	if _, err := t.tourEtcdctl(ctx, "snapshot", "restore", snap, "--name", "devcluster",
		"--initial-cluster", "devcluster=http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--data-dir", restored); err != nil {
		_, _, _ = t.tourRun(ctx, t.root, nil, "bash", "scripts/devcluster/up.sh")
		return err
	}
	// The replaced data stays under run/ (wiped with the cluster) until then.
	if err := os.Rename(filepath.Join(run, "etcd"), filepath.Join(run, "etcd.before-restore-"+stamp)); err != nil {
		return err
	}
	if err := os.Rename(restored, filepath.Join(run, "etcd")); err != nil {
		return err
	}
	if _, errOut, err := t.tourRun(ctx, t.root, nil, "bash", "scripts/devcluster/up.sh"); err != nil {
		return fmt.Errorf("up.sh after restore: %w: %s", err, tourTail(errOut))
	}
	apiBack := time.Since(restoreStart)
	if err := t.tourWaitAllReady(ctx); err != nil {
		return fmt.Errorf("after restore: %w", err)
	}
	s.Took = time.Since(restoreStart)
	_, mErr := t.tourKubectl(ctx, "-n", tourNamespace, "get", "configmap", marker)
	markerGone := mErr != nil && strings.Contains(mErr.Error(), "NotFound")
	after, err := t.tourPods(ctx, "")
	if err != nil {
		return err
	}
	workloads, _ := t.tourKubectl(ctx, "-n", tourNamespace, "get", "deployments,statefulsets", "-o", "name")
	restarts, replaced := tourChurn(before, after)
	kill := ""
	if len(killed) > 0 {
		kill = " (" + strings.Join(killed, ", ") + " needed SIGKILL after 15 s)"
	}
	s.Observed = fmt.Sprintf("%s. Restore (stopping etcd and control plane took %s%s, restore, swap data dir, up.sh) had "+
		"the API back in %s and all Ready in %s: the marker ConfigMap created after the snapshot is %s, "+
		"%d workloads and %d pods are there and Ready, %d pods replaced, %d container restarts.",
		saved, tourSecs(stopTook), kill, tourSecs(apiBack), tourSecs(s.Took), map[bool]string{true: "gone", false: "STILL THERE"}[markerGone],
		len(strings.Fields(workloads)), len(tourLive(after)), replaced, restarts)
	if !markerGone {
		return fmt.Errorf("marker ConfigMap after restore: %v", mErr)
	}
	return nil
}

func (t *tourEnv) tourEncryption(ctx context.Context, s *ManageStep) error {
	const secret = "edgeflow-dashboard"
	key := "/registry/secrets/" + tourNamespace + "/" + secret
	s.Command = "kubectl -n edgeflow get secret " + secret + " -o jsonpath='{.data}'; " +
		"nsenter --net=/run/netns/efk8s env ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:2379 get " + key +
		" --print-value-only"
	start := time.Now()
	out, err := t.tourKubectl(ctx, "-n", tourNamespace, "get", "secret", secret, "-o", "json")
	if err != nil {
		return err
	}
	var sec struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &sec); err != nil {
		return err
	}
	raw, err := t.tourEtcdctl(ctx, "get", key, "--print-value-only")
	if err != nil {
		return err
	}
	s.Took = time.Since(start)
	const prefix = "k8s:enc:secretbox:v1:"
	leaked := []string{}
	for k, v := range sec.Data {
		plain, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return err
		}
		if len(plain) >= 4 && (strings.Contains(raw, string(plain)) || strings.Contains(raw, v)) {
			leaked = append(leaked, k)
		}
	}
	// Every Secret of the cluster, and a ConfigMap for contrast.
	total, enc := 0, 0
	if js, err := t.tourEtcdctl(ctx, "get", "/registry/secrets/", "--prefix", "-w", "json"); err == nil {
		var r struct {
			Kvs []struct {
				Value []byte `json:"value"`
			} `json:"kvs"`
		}
		if json.Unmarshal([]byte(js), &r) == nil {
			for _, kv := range r.Kvs {
				total++
				if bytes.HasPrefix(kv.Value, []byte(prefix)) {
					enc++
				}
			}
		}
	}
	cmPlain := "?"
	if names, err := t.tourKubectl(ctx, "-n", tourNamespace, "get", "configmaps", "-o", "name"); err == nil {
		if f := strings.Fields(names); len(f) > 0 {
			cm := strings.TrimPrefix(f[0], "configmap/")
			if v, err := t.tourEtcdctl(ctx, "get", "/registry/configmaps/"+tourNamespace+"/"+cm, "--print-value-only"); err == nil {
				cmPlain = strconv.Quote(v[:min(len(v), 4)])
			}
		}
	}
	s.Observed = fmt.Sprintf("the raw etcd value of Secret %s (%d bytes, %d data keys) starts with %q and contains "+
		"%d of its plaintext values; %d of %d Secrets in etcd are secretbox-encrypted, while a ConfigMap is stored "+
		"as plain protobuf (starts %s).", secret, len(raw), len(sec.Data), raw[:min(len(raw), len(prefix))],
		len(leaked), enc, total, cmPlain)
	if !strings.HasPrefix(raw, prefix) {
		return fmt.Errorf("value does not start with %s", prefix)
	}
	if len(leaked) > 0 {
		return fmt.Errorf("plaintext of %v found in etcd", leaked)
	}
	return nil
}

func (t *tourEnv) tourControlPlane(ctx context.Context, s *ManageStep) error {
	s.Command = "kill $(cut -d' ' -f1 run/pids/kube-apiserver run/pids/kube-controller-manager " +
		"run/pids/kube-scheduler); bash scripts/devcluster/up.sh"
	client, err := t.tourAPIClient()
	if err != nil {
		return err
	}
	before, err := t.tourPods(ctx, "")
	if err != nil {
		return err
	}
	start := time.Now()
	// Served: /version answers at all; ready: /readyz says 200 (it fails from the SIGTERM on).
	var served, ready tourOutage
	stopAPI := tourEvery(ctx, 200*time.Millisecond, func(c context.Context) {
		at := time.Since(start)
		served.add(tourGet(c, client, tourAPIServer+"/version") != 0, at)
		ready.add(tourGet(c, client, tourAPIServer+"/readyz") == http.StatusOK, at)
	})
	defer stopAPI()
	dash, stopDash := tourProbeDashboard(ctx, 200*time.Millisecond)
	defer stopDash()
	killed, err := t.tourStopDaemons(ctx, syscall.SIGTERM, "kube-apiserver", "kube-controller-manager", "kube-scheduler")
	if err != nil {
		return err
	}
	stopped := time.Since(start)
	upStart := time.Now()
	upAt := time.Since(start)
	if _, errOut, err := t.tourRun(ctx, t.root, nil, "bash", "scripts/devcluster/up.sh"); err != nil {
		return fmt.Errorf("up.sh: %w: %s", err, tourTail(errOut))
	}
	upTook := time.Since(upStart)
	if err := tourWaitFor(ctx, 200*time.Millisecond, func() (bool, error) {
		return ready.back() && served.back(), nil
	}); err != nil {
		return fmt.Errorf("API back: %w", err)
	}
	if err := t.tourWaitAllReady(ctx); err != nil {
		return err
	}
	s.Took = time.Since(start)
	stopAPI()
	stopDash()
	after, _ := t.tourPods(ctx, "")
	restarts, replaced := tourChurn(before, after)
	dashOK, dashFail, _ := dash.get()
	kill := ""
	if len(killed) > 0 {
		kill = fmt.Sprintf(" (%s did not exit within 15 s of SIGTERM and got SIGKILL)", strings.Join(killed, ", "))
	}
	s.Observed = fmt.Sprintf("the three daemons were gone %s after SIGTERM%s; probing every 200 ms, the API "+
		"answered no request from %s to %s (%s; %s after up.sh began) and /readyz was not ready from %s to %s; "+
		"up.sh took %s. "+
		"Meanwhile the dashboard NodePort failed %d of %d probes; %d pods replaced, %d container restarts.",
		tourSecs(stopped), kill, tourSecs(served.downAt), tourSecs(served.upAt), tourSecs(served.upAt-served.downAt),
		tourSecs(served.upAt-upAt), tourSecs(ready.downAt), tourSecs(ready.upAt), tourSecs(upTook), dashFail, dashOK+dashFail, replaced, restarts)
	return nil
}

// --- helpers -------------------------------------------------------------------------

// tourRun runs a command in dir with extra environment; it returns stdout and stderr.
func (t *tourEnv) tourRun(ctx context.Context, dir string, env []string, name string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), err
}

func (t *tourEnv) tourKubectl(ctx context.Context, args ...string) (string, error) {
	out, errOut, err := t.tourRun(ctx, "", nil, t.kubectl, append([]string{"--kubeconfig", t.kubeconfig}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, tourTail(errOut))
	}
	return out, nil
}

// tourTask runs `go tool task ARGS...` in the repo as a user would.
func (t *tourEnv) tourTask(ctx context.Context, args ...string) (string, string, error) {
	out, errOut, err := t.tourRun(ctx, t.root, []string{"KUBECONFIG=" + t.kubeconfig, "OVERLAY=devcluster"},
		"go", append([]string{"tool", "task"}, args...)...)
	if err != nil {
		err = fmt.Errorf("%w: %s", err, tourTail(errOut))
	}
	return out, errOut, err
}

// tourEtcdctl runs etcdctl (API v3) against the cluster's etcd, inside its network namespace.
func (t *tourEnv) tourEtcdctl(ctx context.Context, args ...string) (string, error) {
	out, errOut, err := t.tourRun(ctx, "", []string{"ETCDCTL_API=3"}, "nsenter",
		append([]string{"--net=" + tourNetns, "etcdctl", "--endpoints", tourEtcd}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, tourTail(errOut))
	}
	return out, nil
}

type tourPod struct {
	Name, UID, Phase, Namespace string
	Ready, Deleting             bool
	Restarts                    int
}

type tourPodList struct {
	Items []struct {
		Metadata struct {
			Name              string  `json:"name"`
			Namespace         string  `json:"namespace"`
			UID               string  `json:"uid"`
			DeletionTimestamp *string `json:"deletionTimestamp"`
		} `json:"metadata"`
		Status struct {
			Phase      string `json:"phase"`
			Conditions []struct {
				Type, Status string
			} `json:"conditions"`
			ContainerStatuses []struct {
				RestartCount int `json:"restartCount"`
			} `json:"containerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

// tourPods lists the edgeflow pods (all, or those matching a label selector).
// tourProcessorPods lists the processor pods.
func (t *tourEnv) tourProcessorPods(ctx context.Context) ([]tourPod, error) {
	return t.tourPods(ctx, "app.kubernetes.io/name=processor")
}

// tourRollState is what a rollout or rollback changes: the processor pods and
// the Deployment's revision and revision history.
func (t *tourEnv) tourRollState(ctx context.Context) (pods []tourPod, rev, history string, err error) {
	if pods, err = t.tourProcessorPods(ctx); err != nil {
		return nil, "", "", err
	}
	rev, history, err = t.tourRevisions(ctx)
	return pods, rev, history, err
}

func (t *tourEnv) tourPods(ctx context.Context, selector string) ([]tourPod, error) {
	args := []string{"-n", tourNamespace, "get", "pods", "-o", "json"}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	return t.tourPodQuery(ctx, args...)
}

// tourPodsAll lists the pods of all namespaces.
func (t *tourEnv) tourPodsAll(ctx context.Context) ([]tourPod, error) {
	return t.tourPodQuery(ctx, "get", "pods", "-A", "-o", "json")
}

func (t *tourEnv) tourPodQuery(ctx context.Context, args ...string) ([]tourPod, error) {
	out, err := t.tourKubectl(ctx, append([]string{"--request-timeout=10s"}, args...)...)
	if err != nil {
		return nil, err
	}
	var l tourPodList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, err
	}
	var pods []tourPod
	for _, it := range l.Items {
		p := tourPod{Name: it.Metadata.Name, Namespace: it.Metadata.Namespace, UID: it.Metadata.UID,
			Phase: it.Status.Phase, Deleting: it.Metadata.DeletionTimestamp != nil}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				p.Ready = true
			}
		}
		for _, c := range it.Status.ContainerStatuses {
			p.Restarts += c.RestartCount
		}
		pods = append(pods, p)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods, nil
}

// tourLive drops the pods being deleted.
func tourLive(pods []tourPod) []tourPod {
	var live []tourPod
	for _, p := range pods {
		if !p.Deleting {
			live = append(live, p)
		}
	}
	return live
}

// tourReadyCount counts the Ready pods that are not being deleted.
func tourReadyCount(pods []tourPod) int {
	n := 0
	for _, p := range tourLive(pods) {
		if p.Ready {
			n++
		}
	}
	return n
}

func tourNames(pods []tourPod) []string {
	var n []string
	for _, p := range pods {
		n = append(n, p.Name)
	}
	return n
}

// tourChurn compares two pod lists: container restarts added to the pods kept, and how
// many pods of before are gone (replaced).
func tourChurn(before, after []tourPod) (restarts, replaced int) {
	for _, b := range tourLive(before) {
		i := slices.IndexFunc(after, func(a tourPod) bool { return a.UID == b.UID })
		if i < 0 {
			replaced++
			continue
		}
		restarts += after[i].Restarts - b.Restarts
	}
	return restarts, replaced
}

// tourWaitProcessors waits until exactly n processor pods exist and are Ready.
func (t *tourEnv) tourWaitProcessors(ctx context.Context, n int) error {
	var last string
	err := tourWaitFor(ctx, 250*time.Millisecond, func() (bool, error) {
		ps, err := t.tourProcessorPods(ctx)
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("%d pods, %d Ready", len(ps), tourReadyCount(ps))
		return len(ps) == n && tourReadyCount(ps) == n, nil
	})
	if err != nil {
		return fmt.Errorf("%w (processor: %s)", err, last)
	}
	return nil
}

// tourAllReady reports whether the node is Ready and every workload of edgeflow (and
// kube-system) has all its replicas updated and Ready, with no pod left over; else why not.
func (t *tourEnv) tourAllReady(ctx context.Context) (string, error) {
	if st := t.tourNodeStatus(ctx); st != "True" {
		return "node Ready=" + st, nil
	}
	out, err := t.tourKubectl(ctx, "--request-timeout=10s", "get", "deployments,statefulsets", "-A", "-o", "json")
	if err != nil {
		return "", err
	}
	var l struct {
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name       string `json:"name"`
				Namespace  string `json:"namespace"`
				Generation int64  `json:"generation"`
			} `json:"metadata"`
			Spec   struct{ Replicas *int } `json:"spec"`
			Status struct {
				ObservedGeneration int64 `json:"observedGeneration"`
				Replicas           int   `json:"replicas"`
				ReadyReplicas      int   `json:"readyReplicas"`
				UpdatedReplicas    int   `json:"updatedReplicas"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return "", err
	}
	want := map[string]int{}
	for _, it := range l.Items {
		r := 1
		if it.Spec.Replicas != nil {
			r = *it.Spec.Replicas
		}
		st := it.Status
		if it.Metadata.Generation != st.ObservedGeneration || st.Replicas != r || st.ReadyReplicas != r || st.UpdatedReplicas != r {
			return fmt.Sprintf("%s/%s: %d/%d ready, %d updated, %d total", it.Metadata.Namespace, it.Metadata.Name,
				st.ReadyReplicas, r, st.UpdatedReplicas, st.Replicas), nil
		}
		if it.Metadata.Namespace == tourNamespace {
			want[it.Metadata.Name] = r
		}
	}
	pods, err := t.tourPods(ctx, "")
	if err != nil {
		return "", err
	}
	total := 0
	for _, r := range want {
		total += r
	}
	for _, p := range pods {
		if !p.Ready {
			return "pod " + p.Name + " not Ready", nil
		}
	}
	if len(pods) != total {
		return fmt.Sprintf("%d edgeflow pods, want %d", len(pods), total), nil
	}
	return "", nil
}

// tourWaitAllReady waits (within ctx) until tourAllReady has no complaint.
func (t *tourEnv) tourWaitAllReady(ctx context.Context) error {
	var why string
	err := tourWaitFor(ctx, 500*time.Millisecond, func() (bool, error) {
		w, err := t.tourAllReady(ctx)
		if ctx.Err() != nil {
			return false, nil // keep the reason seen before the deadline
		}
		if err != nil {
			why = err.Error()
			return false, nil // the API may be coming back
		}
		why = w
		return w == "", nil
	})
	if err != nil {
		return fmt.Errorf("not all Ready: %s (%w)", why, err)
	}
	return nil
}

// tourSettle brings the cluster back to the tour's baseline: every daemon running, the
// node schedulable, 2 processors, everything Ready.
func (t *tourEnv) tourSettle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, tourSettleLimit)
	defer cancel()
	for _, d := range tourDaemons {
		if _, ok := t.tourDaemonPid(d); !ok {
			t.logf("tour: %s is not running; up.sh", d)
			if _, errOut, err := t.tourRun(ctx, t.root, nil, "bash", "scripts/devcluster/up.sh"); err != nil {
				return fmt.Errorf("up.sh: %w: %s", err, tourTail(errOut))
			}
			break
		}
	}
	if out, err := t.tourKubectl(ctx, "get", "node", tourNode, "-o", "jsonpath={.spec.unschedulable}"); err == nil && out == "true" {
		t.logf("tour: uncordon %s", tourNode)
		_, _ = t.tourKubectl(ctx, "uncordon", tourNode)
	}
	if out, err := t.tourKubectl(ctx, "-n", tourNamespace, "get", "deployment", "processor",
		"-o", "jsonpath={.spec.replicas}"); err == nil && out != strconv.Itoa(tourProcessors) {
		t.logf("tour: processor replicas %s; scaling to %d", out, tourProcessors)
		_, _ = t.tourKubectl(ctx, "-n", tourNamespace, "scale", "deployment/processor",
			"--replicas="+strconv.Itoa(tourProcessors))
	}
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	err := t.tourWaitAllReady(wctx)
	wcancel()
	if err == nil || ctx.Err() != nil {
		return err
	}
	// E.g. InfluxDB lost its emptyDir and with it the admin user that only deploy creates.
	t.logf("tour: %v; go tool task deploy", err)
	if _, _, err := t.tourTask(ctx, "deploy"); err != nil {
		return err
	}
	return t.tourWaitAllReady(ctx)
}

// tourNodeStatus is the status of the node's Ready condition ("" if unknown to us).
func (t *tourEnv) tourNodeStatus(ctx context.Context) string {
	out, err := t.tourKubectl(ctx, "--request-timeout=5s", "get", "node", tourNode,
		"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// tourRevisions is the processor Deployment's current revision and the revisions its
// history lists.
func (t *tourEnv) tourRevisions(ctx context.Context) (string, string, error) {
	cur, err := t.tourKubectl(ctx, "-n", tourNamespace, "get", "deployment", "processor",
		"-o", `jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}`)
	if err != nil {
		return "", "", err
	}
	hist, err := t.tourKubectl(ctx, "-n", tourNamespace, "rollout", "history", "deployment/processor")
	if err != nil {
		return "", "", err
	}
	var revs []string
	for _, l := range strings.Split(hist, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			if _, err := strconv.Atoi(f[0]); err == nil {
				revs = append(revs, f[0])
			}
		}
	}
	return cur, "[" + strings.Join(revs, " ") + "]", nil
}

// tourDaemonPid is the PID of a kit daemon if the process its pid file names ("PID
// STARTTIME") is still that process. A zombie counts as running here, so that the tour,
// stopping a daemon, waits until PID 1 has reaped it (within a second or so).
func (t *tourEnv) tourDaemonPid(name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(t.dcDir, "run", "pids", name))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(st)
	i := strings.LastIndex(s, ") ")
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 20 || fields[19] != f[1] {
		return 0, false
	}
	return pid, true
}

// tourStopDaemons signals the named daemons (0: none) and waits until they are gone and
// reaped (SIGKILL after 15 s).
func (t *tourEnv) tourStopDaemons(ctx context.Context, sig syscall.Signal, names ...string) (killed []string, err error) {
	for _, n := range names {
		if pid, ok := t.tourDaemonPid(n); ok {
			_ = syscall.Kill(pid, sig)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := []string{}
		for _, n := range names {
			if _, ok := t.tourDaemonPid(n); ok {
				left = append(left, n)
			}
		}
		if len(left) == 0 {
			return killed, nil
		}
		if time.Now().After(deadline) {
			for _, n := range left {
				if pid, ok := t.tourDaemonPid(n); ok {
					t.logf("tour: %s did not stop; SIGKILL", n)
					_ = syscall.Kill(pid, syscall.SIGKILL)
					killed = append(killed, n)
				}
			}
			deadline = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return killed, fmt.Errorf("stopping %v: %w", left, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tourRunningContainers counts the containers containerd runs for Kubernetes.
func (t *tourEnv) tourRunningContainers(ctx context.Context) int {
	out, _, err := t.tourRun(ctx, "", nil, "ctr", "--address",
		filepath.Join(t.dcDir, "run", "containerd", "containerd.sock"), "-n", "k8s.io", "tasks", "ls")
	if err != nil {
		return -1
	}
	return strings.Count(out, "RUNNING")
}

// tourAPIClient trusts the cluster CA from the kubeconfig (/readyz needs no credentials).
func (t *tourEnv) tourAPIClient() (*http.Client, error) {
	b, err := os.ReadFile(t.kubeconfig)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "certificate-authority-data:"); ok {
			pem, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
			if err != nil {
				return nil, err
			}
			pool.AppendCertsFromPEM(pem)
		}
	}
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}, nil
}

var tourHTTP = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// tourGet is the status code of a GET (0 when there was no answer).
func tourGet(ctx context.Context, c *http.Client, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// tourDashboardAlive: the dashboard answered on its NodePort (a 401 is an answer too).
func tourDashboardAlive(ctx context.Context) bool {
	code := tourGet(ctx, tourHTTP, tourDashboard)
	return code == http.StatusOK || code == http.StatusUnauthorized
}

// tourEvery calls f every interval in the background until the returned stop is called
// (stop waits for the last call, so f's results can be read after it; it may be called twice).
func tourEvery(ctx context.Context, every time.Duration, f func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			f(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// tourWaitFor polls cond until it is true or ctx ends.
func tourWaitFor(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// tourOutage records the first failed probe and the first good one after it.
type tourOutage struct {
	mu           sync.Mutex
	downAt, upAt time.Duration
	down, up     bool
}

func (o *tourOutage) add(ok bool, at time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case !ok && !o.down:
		o.down, o.downAt = true, at
	case ok && o.down && !o.up:
		o.up, o.upAt = true, at
	}
}

// back: it failed and has answered since.
func (o *tourOutage) back() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.up
}

// tourLastErr is the "err" of the newest JSON log line of a service that has one (or its
// last line), shortened: what a pod that is not Ready is waiting for.
func (t *tourEnv) tourLastErr(ctx context.Context, name string) string {
	out, err := t.tourKubectl(ctx, "-n", tourNamespace, "logs", "-l", "app.kubernetes.io/name="+name, "--tail=20")
	if err != nil {
		return "?"
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	for i := len(lines) - 1; i >= 0; i-- {
		var l struct {
			Err any `json:"err"`
		}
		if json.Unmarshal([]byte(lines[i]), &l) == nil && l.Err != nil {
			last = fmt.Sprint(l.Err)
			break
		}
	}
	if len(last) > 160 {
		last = last[:160] + "..."
	}
	return "`" + strings.ReplaceAll(last, "`", "'") + "`"
}

// tourTally counts probe results from a background sampler.
type tourTally struct {
	mu        sync.Mutex
	ok, fail  int
	firstFail time.Duration
}

func (c *tourTally) add(ok bool, at time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.ok++
		return
	}
	c.fail++
	if c.firstFail == 0 {
		c.firstFail = at
	}
}

// tourProbeDashboard asks the dashboard's NodePort every interval until stop, counting
// answers and failures from now on.
func tourProbeDashboard(ctx context.Context, every time.Duration) (dash *tourTally, stop func()) {
	dash = &tourTally{}
	start := time.Now()
	stop = tourEvery(ctx, every, func(c context.Context) {
		dash.add(tourDashboardAlive(c), time.Since(start))
	})
	return dash, stop
}

func (c *tourTally) get() (ok, fail int, firstFail time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.fail, c.firstFail
}

func tourOr(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return strings.TrimSpace(s)
}

func tourKeys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// tourShortPod drops "pod/", the namespace and a container suffix: pod/x/c -> x.
func tourShortPod(s string) string {
	s = strings.TrimPrefix(s, "pod/")
	s = strings.TrimPrefix(s, tourNamespace+"/")
	if i := strings.Index(s, "/"); i >= 0 {
		s = s[:i]
	}
	return s
}

func tourShort(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = tourShortPod(n)
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

func tourSecs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func tourSecsOrNone(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return tourSecs(d)
}

// tourTail is the last line or so of a command's stderr, for an error message.
func tourTail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = "..." + s[len(s)-300:]
	}
	return s
}
