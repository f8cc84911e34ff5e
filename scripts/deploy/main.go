// Command deploy puts edgeflow on a Kubernetes cluster (K3s, or the dev cluster of
// scripts/devcluster) and runs the day-to-day operations on it. The Taskfile's deploy,
// undeploy, status, logs, scale, rollout, rollback and dashboard tasks call it;
// docs/operations.md explains each.
//
//	go run ./scripts/deploy up                 # build, deliver images, secrets, apply, wait
//	go run ./scripts/deploy status|logs SERVICE|scale NAME=N|rollout [SERVICE...]|rollback SERVICE|dashboard|down
//
// Settings come from the environment:
//
//	KUBECONFIG       the cluster (default: /etc/rancher/k3s/k3s.yaml when it exists; with
//	                 OVERLAY=devcluster the dev cluster's admin kubeconfig)
//	OVERLAY          manifests/overlays/<OVERLAY>: k3s (default), k3s-ha, devcluster,
//	                 devcluster-ha, hub (the hub of several sites), or an overlay of
//	                 your own (a site with components/uplink)
//	REGISTRY         push the images to this registry (host[:port][/path]); without it
//	                 they are side-loaded (dev cluster) or imported on each node (K3s)
//	PLATFORMS        image platforms (default: the nodes' os/arch)
//	CLUSTER          name of the secrets folder .build/secrets/<CLUSTER> (default: the
//	                 kubeconfig's current context; "devcluster" for that overlay)
//	DASHBOARD_HOST   host name of the dashboard's Ingress rule (k3s overlays)
//	DEPLOY_TIMEOUT   how long to wait for every rollout (default 5m)
//	PLACEMENT        where the pods may run: empty (default) anywhere; "edge" only on the
//	                 nodes labelled edgeflow.io/edge=true, tolerating the taint
//	                 edgeflow.io/edge=true:NoSchedule (manifests/components/edge-agents)
//	COMPONENTS       more of manifests/components/ to add to the overlay, comma-separated
//	                 (e.g. influxdb2, ingest-share-group)
//	IMAGES           "local": build every image here (the third-party ones from source),
//	                 side-load them into the dev cluster of scripts/devcluster (either
//	                 layout: LAYOUT, DEVCLUSTER_DIR) and add components/local-images, the
//	                 one place the images are swapped; the devcluster overlays imply it.
//	                 Empty (default): the base's upstream images are pulled
//
// Nothing committed is edited: the overlay is rendered through a kustomization generated
// in .build/deploy/<overlay>/ that names the images just built (and the components of the
// placement, of COMPONENTS and of IMAGES=local). The InfluxDB set-up follows the rendered
// StatefulSet's edgeflow.io/influxdb annotation: 1.8 (the base) or 2 (components/influxdb2).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Namespace is where everything of edgeflow runs (manifests/base/namespace.yaml).
const Namespace = "edgeflow"

// Services are the images built from this repository, named edgeflow/<name> in the
// manifests; Workloads are every Deployment and StatefulSet, in start-up order.
var (
	Services  = []string{"ingest", "processor", "notifier", "dashboard"}
	Workloads = []string{"nats", "mosquitto", "influxdb", "ingest", "processor", "notifier", "dashboard"}
)

// Placements are the values of PLACEMENT and the components (manifests/components/<name>)
// each adds to the overlay; "" (the default) adds none and lets the scheduler place the
// pods on any node.
var Placements = map[string][]string{
	"":     nil,
	"edge": {"edge-agents"},
}

// EdgeLabel is the node label of PLACEMENT=edge (components/edge-agents): its pods run
// only on nodes with this label set to "true".
const EdgeLabel = "edgeflow.io/edge"

// Config is the environment of one run.
type Config struct {
	Root          string // repository root
	Kubeconfig    string
	Overlay       string
	Registry      string
	Platforms     string
	Cluster       string
	DashboardHost string
	Timeout       time.Duration
	Placement     string   // a key of Placements
	Components    []string // COMPONENTS: names under manifests/components
	Images        string   // IMAGES: "" or "local"
}

// DevCluster reports whether the overlay is one of the dev cluster's (devcluster,
// devcluster-ha): side-loaded images, third-party images built from source, InfluxDB 1.8.
func (c Config) DevCluster() bool { return strings.HasPrefix(c.Overlay, "devcluster") }

// LocalImages reports whether every image is built here and side-loaded into the dev
// cluster (either layout) rather than pulled: IMAGES=local or a devcluster overlay.
func (c Config) LocalImages() bool { return c.DevCluster() || c.Images == "local" }

// components are the manifests/components added to the overlay, in order: the
// placement's, COMPONENTS, and local-images for IMAGES=local (the devcluster overlays
// have it already).
func (c Config) components() []string {
	out := append([]string(nil), Placements[c.Placement]...)
	out = append(out, c.Components...)
	if c.Images == "local" && !c.DevCluster() {
		out = append(out, "local-images")
	}
	return out
}

func (c Config) buildDir(parts ...string) string {
	return filepath.Join(append([]string{c.Root, ".build"}, parts...)...)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig()
	if err != nil {
		fail(err)
	}
	useDevClusterKubectl()
	k := &Kube{Config: cfg}
	args := os.Args[2:]
	switch os.Args[1] {
	case "up":
		err = up(ctx, k)
	case "down":
		err = down(ctx, k)
	case "status":
		err = status(ctx, k)
	case "logs":
		err = logs(ctx, k, args)
	case "scale":
		err = scale(ctx, k, args)
	case "rollout":
		err = rollout(ctx, k, args)
	case "rollback":
		err = rollback(ctx, k, args)
	case "dashboard":
		err = dashboard(ctx, k, args)
	default:
		usage()
	}
	if err != nil {
		fail(err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: deploy up|down|status|logs SERVICE [kubectl logs flags]|scale NAME=N...|rollout [SERVICE...]|rollback WORKLOAD...|dashboard [LOCAL_PORT]")
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "deploy:", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[deploy] "+format+"\n", args...)
}

func loadConfig() (Config, error) {
	root, err := repoRoot()
	if err != nil {
		return Config{}, err
	}
	c := Config{
		Root:          root,
		Kubeconfig:    os.Getenv("KUBECONFIG"),
		Overlay:       envOr("OVERLAY", "k3s"),
		Registry:      strings.TrimSuffix(os.Getenv("REGISTRY"), "/"),
		Platforms:     os.Getenv("PLATFORMS"),
		Cluster:       os.Getenv("CLUSTER"),
		DashboardHost: os.Getenv("DASHBOARD_HOST"),
		Timeout:       5 * time.Minute,
		Placement:     os.Getenv("PLACEMENT"),
		Images:        os.Getenv("IMAGES"),
	}
	for _, name := range strings.Split(os.Getenv("COMPONENTS"), ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "manifests", "components", name, "kustomization.yaml")); err != nil {
			return c, fmt.Errorf("COMPONENTS: no manifests/components/%s/kustomization.yaml", name)
		}
		c.Components = append(c.Components, name)
	}
	if c.Images != "" && c.Images != "local" {
		return c, fmt.Errorf("IMAGES=%s: unknown; allowed: local (build here, side-load into the dev cluster), or empty to pull the upstream images", c.Images)
	}
	if c.Kubeconfig == "" {
		// The dev cluster's admin kubeconfig (scripts/devcluster/env.sh), else K3s's.
		candidates := []string{"/etc/rancher/k3s/k3s.yaml"}
		if strings.HasPrefix(c.Overlay, "devcluster") {
			candidates = []string{filepath.Join(envOr("DEVCLUSTER_DIR", "/tmp/edgeflow-devcluster"), "run", "admin.kubeconfig")}
		}
		for _, f := range candidates {
			if _, err := os.Stat(f); err == nil {
				c.Kubeconfig = f
				break
			}
		}
	}
	if v := os.Getenv("DEPLOY_TIMEOUT"); v != "" {
		if c.Timeout, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("DEPLOY_TIMEOUT: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "manifests", "overlays", c.Overlay, "kustomization.yaml")); err != nil {
		return c, fmt.Errorf("OVERLAY=%s: no manifests/overlays/%s/kustomization.yaml", c.Overlay, c.Overlay)
	}
	if _, ok := Placements[c.Placement]; !ok {
		return c, fmt.Errorf("PLACEMENT=%s: unknown; allowed: edge (only on nodes labelled %s=true), or empty for any node", c.Placement, EdgeLabel)
	}
	return c, nil
}

// useDevClusterKubectl puts the dev cluster kit's kubectl (bin/kubectl, built into
// kubeall) on PATH when the machine has none.
func useDevClusterKubectl() {
	if _, err := exec.LookPath("kubectl"); err == nil {
		return
	}
	bin := filepath.Join(envOr("DEVCLUSTER_DIR", "/tmp/edgeflow-devcluster"), "bin")
	if _, err := os.Stat(filepath.Join(bin, "kubectl")); err == nil {
		os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// repoRoot is the folder holding go.mod, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "manifests", "overlays")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run inside the edgeflow repository (no manifests/overlays above %s)", dir)
		}
	}
}
