package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/edgeflow/edgeflow/scripts/internal/kube"
)

// down deletes the namespace: every workload, Secret and volume of edgeflow.
func down(ctx context.Context, k *Kube) error {
	logf("deleting namespace %s (workloads, Secrets and volumes: the data goes too)", Namespace)
	return k.Run(ctx, "delete", "namespace", Namespace, "--ignore-not-found", "--wait=true", "--timeout="+k.Timeout.String())
}

// status prints the nodes, the pods with their restarts and last termination reason,
// and each pod's memory (working set and RSS) from the kubelets' summary API.
func status(ctx context.Context, k *Kube) error {
	if err := k.Run(ctx, "get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	fmt.Println()
	if err := k.Run(ctx, "-n", Namespace, "get", "deployments,statefulsets"); err != nil {
		return err
	}
	fmt.Println()
	pods, err := k.pods(ctx)
	if err != nil {
		return err
	}
	nodes, err := k.Nodes(ctx)
	if err != nil {
		return err
	}
	mem := map[string]kube.PodStats{}
	for _, n := range nodes {
		m, err := k.PodMemory(ctx, n.Name)
		if err != nil {
			logf("memory of node %s: %v", n.Name, err)
			continue
		}
		for name, v := range m {
			mem[name] = v
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tREADY\tSTATUS\tRESTARTS\tLAST TERMINATION\tNODE\tWORKING SET\tRSS\tLIMIT")
	for _, p := range pods {
		m := mem[p.Name]
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Ready, p.Phase, p.Restarts,
			orDash(p.LastTermination), p.Node, mib(m.WorkingSet), mib(m.RSS), orDash(p.MemoryLimit))
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMi", float64(b)/(1<<20))
}

// Pod is a line of `task status`.
type Pod struct {
	Name, Node, Phase, Ready, LastTermination, MemoryLimit string
	Restarts                                               int
}

func (k *Kube) pods(ctx context.Context) ([]Pod, error) {
	items, err := k.podList(ctx)
	if err != nil {
		return nil, err
	}
	var pods []Pod
	for _, it := range items {
		p := Pod{Name: it.Metadata.Name, Node: it.Spec.NodeName, Phase: it.Status.Phase}
		ready := 0
		for _, c := range it.Status.ContainerStatuses {
			if c.Ready {
				ready++
			}
			p.Restarts += c.RestartCount
			if t := c.LastState.Terminated; t != nil {
				p.LastTermination = fmt.Sprintf("%s (%d)", t.Reason, t.ExitCode)
			}
		}
		p.Ready = fmt.Sprintf("%d/%d", ready, len(it.Spec.Containers))
		if len(it.Spec.Containers) > 0 {
			p.MemoryLimit = it.Spec.Containers[0].Resources.Limits["memory"]
		}
		pods = append(pods, p)
	}
	return pods, nil
}

// PodMemory reads the kubelet's summary API of a node (through the API server) and
// returns the usage of the edgeflow pods on it.
func (k *Kube) PodMemory(ctx context.Context, node string) (map[string]kube.PodStats, error) {
	out, err := k.Output(ctx, "get", "--raw", kube.SummaryPath(node))
	if err != nil {
		return nil, err
	}
	s, err := kube.ParseSummary([]byte(out))
	if err != nil {
		return nil, err
	}
	return s.InNamespace(Namespace), nil
}

// logs shows the logs of every pod of a workload, prefixed with the pod name; further
// arguments go to kubectl logs (e.g. -f, --since=10m, --previous).
func logs(ctx context.Context, k *Kube, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: task logs -- SERVICE [kubectl logs flags] (services: %s)", strings.Join(Workloads, ", "))
	}
	name := args[0]
	if !slices.Contains(Workloads, name) {
		return fmt.Errorf("unknown service %q (services: %s)", name, strings.Join(Workloads, ", "))
	}
	rest := args[1:]
	if !slices.ContainsFunc(rest, func(a string) bool { return strings.HasPrefix(a, "--tail") }) {
		rest = append(rest, "--tail=200")
	}
	return k.Run(ctx, append([]string{"-n", Namespace, "logs", "-l", "app.kubernetes.io/name=" + name,
		"--prefix", "--max-log-requests=10", "--all-containers"}, rest...)...)
}

// scale sets the replicas of workloads: scale processor=4 [notifier=2 ...].
func scale(ctx context.Context, k *Kube, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: task scale -- NAME=REPLICAS... (e.g. processor=4)")
	}
	for _, a := range args {
		name, n, ok := strings.Cut(a, "=")
		replicas, err := strconv.Atoi(n)
		if !ok || err != nil || replicas < 0 {
			return fmt.Errorf("%q: want NAME=REPLICAS", a)
		}
		kind, err := k.WorkloadKind(ctx, name)
		if err != nil {
			return err
		}
		if name == "nats" || name == "mosquitto" || name == "influxdb" {
			return fmt.Errorf("%s is not scaled this way (NATS: overlays/k3s-ha; the broker and InfluxDB run one replica)", name)
		}
		// Ingest's replica count is how it subscribes: a second plain subscriber publishes
		// every reading again, and a member taken out of a share group leaves the broker
		// routing its share to a session nobody reads.
		if name == "ingest" {
			return fmt.Errorf("ingest is not scaled this way: one replica subscribes plainly (the default), two share a group with components/ingest-share-group; change the overlay (docs/operations.md, \"Ingest and the broker\")")
		}
		if err := k.Run(ctx, "-n", Namespace, "scale", kind+"/"+name, "--replicas="+n); err != nil {
			return err
		}
		if err := k.WaitRollouts(ctx, []string{name}, k.Timeout); err != nil {
			return err
		}
	}
	return nil
}

// rollout rebuilds the service images (all, or those named), delivers them and rolls the
// workloads to them through the same generated kustomization as deploy; an image that did
// not change (same tag) is restarted instead, so a rollout always replaces the pods.
func rollout(ctx context.Context, k *Kube, args []string) error {
	only := args
	for _, a := range only {
		if !slices.Contains(Services, a) {
			return fmt.Errorf("unknown service %q (services: %s)", a, strings.Join(Services, ", "))
		}
	}
	if len(only) == 0 {
		only = Services
	}
	nodes, err := k.Nodes(ctx)
	if err != nil {
		return err
	}
	placed, err := placementNodes(k.Config, nodes)
	if err != nil {
		return err
	}
	if k.Platforms == "" {
		k.Platforms = Platforms(placed)
	}
	if k.Cluster == "" {
		if k.Cluster, err = k.clusterName(ctx); err != nil {
			return err
		}
	}
	before := map[string]string{}
	for _, n := range only {
		kind, err := k.WorkloadKind(ctx, n)
		if err != nil {
			return err
		}
		img, err := k.Output(ctx, "-n", Namespace, "get", kind, n, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if err != nil {
			return err
		}
		before[n] = img
	}
	old, _ := readImages(k.buildDir("images", "images.json"))
	rebuilt, err := buildImages(ctx, k.Config, only)
	if err != nil {
		return err
	}
	if err := deliverImages(ctx, k, nodes, rebuilt); err != nil {
		return err
	}
	dir, err := writeKustomization(k.Config, mergeImages(old, rebuilt))
	if err != nil {
		return err
	}
	// The images helper rewrites images.json with only the rebuilt ones; keep all.
	if err := writeImages(k.buildDir("images", "images.json"), mergeImages(old, rebuilt)); err != nil {
		return err
	}
	if err := k.Run(ctx, "apply", "-k", dir); err != nil {
		return err
	}
	for _, im := range rebuilt {
		if !slices.Contains(only, im.Name) || before[im.Name] != im.Ref {
			continue
		}
		kind, err := k.WorkloadKind(ctx, im.Name)
		if err != nil {
			return err
		}
		logf("%s: image %s unchanged; restarting", im.Name, im.Ref)
		if err := k.Run(ctx, "-n", Namespace, "rollout", "restart", kind+"/"+im.Name); err != nil {
			return err
		}
	}
	return k.WaitRollouts(ctx, only, k.Timeout)
}

func writeImages(path string, images []Image) error {
	sort.SliceStable(images, func(i, j int) bool { return images[i].Name < images[j].Name })
	b, err := json.MarshalIndent(images, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// rollback returns workloads to their previous revision (kubectl rollout undo).
func rollback(ctx context.Context, k *Kube, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: task rollback -- WORKLOAD... (e.g. processor)")
	}
	for _, name := range args {
		kind, err := k.WorkloadKind(ctx, name)
		if err != nil {
			return err
		}
		if err := k.Run(ctx, "-n", Namespace, "rollout", "undo", kind+"/"+name); err != nil {
			return err
		}
	}
	return k.WaitRollouts(ctx, args, k.Timeout)
}

// dashboard port-forwards the dashboard Service to 127.0.0.1 (default port 8080) until
// interrupted, and says where the token is.
func dashboard(ctx context.Context, k *Kube, args []string) error {
	local := 8080
	if len(args) > 0 {
		p, err := strconv.Atoi(args[0])
		if err != nil {
			return fmt.Errorf("local port %q: %w", args[0], err)
		}
		local = p
	}
	cluster := k.Cluster
	if cluster == "" {
		cluster, _ = k.clusterName(ctx)
	}
	port, stop, err := k.PortForward(ctx, "svc/dashboard", local, 8080)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("dashboard: http://127.0.0.1:%d/  (any user name; the password is the token in %s)\n", port,
		filepath.Join(k.buildDir("secrets", cluster), "edgeflow-dashboard", "token"))
	fmt.Println("Ctrl-C stops the port-forward.")
	<-ctx.Done()
	return nil
}
