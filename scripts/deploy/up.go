package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgeflow/edgeflow/scripts/internal/progress"
)

// up builds and delivers the images, creates the Secrets, applies the overlay and waits
// until every workload is ready, then prints where the dashboard and MQTT are.
func up(ctx context.Context, k *Kube) error {
	t0 := time.Now()
	nodes, err := k.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("cluster (KUBECONFIG=%s): %w", k.Kubeconfig, err)
	}
	placed, err := placementNodes(k.Config, nodes)
	if err != nil {
		return err
	}
	if k.Platforms == "" {
		k.Platforms = Platforms(placed)
	}
	if k.Cluster == "" {
		k.Cluster, err = k.clusterName(ctx)
		if err != nil {
			return err
		}
	}
	logf("overlay %s, cluster %s, %d node(s), platforms %s", k.Overlay, k.Cluster, len(nodes), k.Platforms)
	if k.Placement != "" {
		logf("placement %s: %d node(s) labelled %s=true", k.Placement, len(placed), EdgeLabel)
	}

	images, err := buildImages(ctx, k.Config, nil)
	if err != nil {
		return err
	}
	tImages := time.Now()
	if err := deliverImages(ctx, k, nodes, images); err != nil {
		return err
	}
	dir, err := writeKustomization(k.Config, images)
	if err != nil {
		return err
	}
	rendered, err := k.Output(ctx, "kustomize", dir)
	if err != nil {
		return err
	}
	influx, err := InfluxAPI([]byte(rendered))
	if err != nil {
		return err
	}
	workloads, err := RenderedWorkloads([]byte(rendered))
	if err != nil {
		return err
	}
	logf("influxdb: API %s (StatefulSet influxdb, annotation %s)", influx, InfluxAnnotation)
	if err := secrets(ctx, k, nodes, influx); err != nil {
		return err
	}
	tApply := time.Now()
	if err := k.Run(ctx, "apply", "-k", dir); err != nil {
		return err
	}
	// The processor and the dashboard start once InfluxDB has their credentials (on 2.x,
	// their Secret keys are written only now).
	if err := k.WaitRollouts(ctx, []string{"influxdb"}, k.Timeout); err != nil {
		return err
	}
	if err := setupInflux(ctx, k, influx); err != nil {
		return err
	}
	if err := k.WaitRollouts(ctx, workloads, k.Timeout-time.Since(tApply)); err != nil {
		return err
	}
	logf("all ready %s after apply (images %s), total %s",
		progress.Duration(time.Since(tApply)), progress.Duration(tImages.Sub(t0)), progress.Duration(time.Since(t0)))
	return endpoints(ctx, k, nodes, workloads)
}

// placementNodes are the nodes the pods may run on: all of them, or with PLACEMENT=edge
// those labelled edgeflow.io/edge=true; none is an error rather than pods pending until
// DEPLOY_TIMEOUT.
func placementNodes(c Config, nodes []Node) ([]Node, error) {
	if c.Placement != "edge" {
		return nodes, nil
	}
	var edge []Node
	for _, n := range nodes {
		if n.Labels[EdgeLabel] == "true" {
			edge = append(edge, n)
		}
	}
	if len(edge) == 0 {
		return nil, fmt.Errorf("PLACEMENT=edge: no node is labelled %s=true (kubectl label node <agent> %s=true; docs/operations.md, \"Keeping the pipeline on edge agents\")", EdgeLabel, EdgeLabel)
	}
	return edge, nil
}

// clusterName names the secrets folder: the kubeconfig's current context.
func (k *Kube) clusterName(ctx context.Context) (string, error) {
	if k.DevCluster() {
		return "devcluster", nil
	}
	out, err := k.Output(ctx, "config", "current-context")
	if err != nil {
		return "", fmt.Errorf("set CLUSTER (no current context: %w)", err)
	}
	name := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, strings.TrimSpace(out))
	if name == "" {
		return "", fmt.Errorf("set CLUSTER: the kubeconfig has no current context")
	}
	return name, nil
}

// Image is one entry of .build/images/images.json (written by scripts/images).
type Image struct {
	Name      string `json:"name"`
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	Tarball   string `json:"tarball"`
	Platforms []struct {
		Platform       string `json:"platform"`
		CompressedSize int64  `json:"compressed_size"`
	} `json:"platforms"`
}

// Repository and Tag split Ref (host/path/name:tag).
func (i Image) Repository() string {
	r, _ := i.split()
	return r
}

// Tag is the part of Ref after the last colon of its last path element.
func (i Image) Tag() string {
	_, t := i.split()
	return t
}

func (i Image) split() (string, string) {
	slash := strings.LastIndex(i.Ref, "/")
	if c := strings.LastIndex(i.Ref, ":"); c > slash {
		return i.Ref[:c], i.Ref[c+1:]
	}
	return i.Ref, "latest"
}

// buildImages runs scripts/images for the overlay (only the named services when given)
// and returns images.json.
func buildImages(ctx context.Context, c Config, only []string) ([]Image, error) {
	out := c.buildDir("images")
	args := []string{"run", "./scripts/images", "-out", out, "-platforms", c.Platforms}
	switch {
	case c.Registry != "":
		args = append(args, "-registry", c.Registry, "-push")
	case c.LocalImages():
		// -load imports into the dev cluster's containerd (env.sh's LAYOUT and
		// DEVCLUSTER_DIR say which); the third-party images are built for this
		// machine, which is the dev cluster's node.
		args = append(args, "-load")
		if len(only) == 0 {
			args = append(args, "-thirdparty")
		}
	}
	if len(only) > 0 {
		args = append(args, "-only", strings.Join(only, ","))
	}
	logf("images: go %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = c.Root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = os.Environ()
	if c.Kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+c.Kubeconfig)
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	return readImages(filepath.Join(out, "images.json"))
}

func readImages(path string) ([]Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var images []Image
	if err := json.Unmarshal(data, &images); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return images, nil
}

// deliverImages makes the images reachable by the nodes. Pushed (REGISTRY) and loaded
// (dev cluster) images already are; for K3s without a registry the tarballs are imported
// into this machine's K3s when it is a node, and the commands for the other nodes are
// printed.
func deliverImages(ctx context.Context, k *Kube, nodes []Node, images []Image) error {
	if k.Registry != "" || k.LocalImages() {
		return nil
	}
	var tarballs []string
	for _, im := range images {
		if im.Tarball != "" {
			tarballs = append(tarballs, filepath.Join(k.buildDir("images"), im.Tarball))
		}
	}
	if _, err := exec.LookPath("k3s"); err == nil && os.Geteuid() == 0 {
		for _, t := range tarballs {
			logf("k3s ctr images import %s", t)
			cmd := exec.CommandContext(ctx, "k3s", "ctr", "images", "import", t)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("import %s into this node's K3s: %w", t, err)
			}
		}
		if len(nodes) == 1 {
			return nil
		}
	}
	logf("no REGISTRY: copy the images to every node that runs edgeflow pods, e.g.")
	for _, n := range nodes {
		for _, t := range tarballs {
			fmt.Fprintf(os.Stderr, "  scp %s %s:/tmp/ && ssh %s sudo k3s ctr images import /tmp/%s\n", t, n.InternalIP, n.InternalIP, filepath.Base(t))
		}
	}
	logf("(or put them in /var/lib/rancher/k3s/agent/images/ on each node, which K3s imports when it starts)")
	logf("waiting for the pods meanwhile (DEPLOY_TIMEOUT=%s)", k.Timeout)
	return nil
}

// secrets generates the credentials once (scripts/secrets is idempotent) and applies one
// Secret per subfolder of .build/secrets/<cluster>/. The broker's and the dashboard's
// certificates name every node (and the dashboard's DASHBOARD_HOST).
func secrets(ctx context.Context, k *Kube, nodes []Node, influx string) error {
	dir := k.buildDir("secrets", k.Cluster)
	args := []string{"run", "./scripts/secrets", "-out", dir}
	for _, n := range nodes {
		if n.InternalIP != "" {
			args = append(args, "-san", n.InternalIP, "-dashboard-san", n.InternalIP)
		}
		args = append(args, "-san", n.Name, "-dashboard-san", n.Name)
	}
	if k.DashboardHost != "" {
		args = append(args, "-dashboard-san", k.DashboardHost)
	}
	if influx == Influx18 {
		args = append(args, "-influx18")
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = k.Root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	ns := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", Namespace)
	if _, err := k.OutputStdin(ctx, []byte(ns), "apply", "-f", "-"); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		// One folder per Secret, named edgeflow-*. Everything else stays on the
		// workstation: above all ca/, the CA's private key, which must never
		// reach the cluster (anyone who reads it could mint a broker certificate).
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "edgeflow-") {
			continue
		}
		if err := applySecret(ctx, k, dir, e.Name()); err != nil {
			return err
		}
		names = append(names, e.Name())
	}
	logf("secrets from %s: %s", dir, strings.Join(names, ", "))
	return nil
}

// writeKustomization writes .build/deploy/<overlay>/kustomization.yaml: the overlay with
// the images just built (and the dashboard's host name, and the components of the
// placement), and returns its folder.
func writeKustomization(c Config, images []Image) (string, error) {
	dir := c.buildDir("deploy", c.Overlay)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(dir, filepath.Join(c.Root, "manifests", "overlays", c.Overlay))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by scripts/deploy (task deploy) for this cluster; not committed, rewritten every deploy.\n")
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n", filepath.ToSlash(rel))
	if components := c.components(); len(components) > 0 {
		fmt.Fprintf(&b, "# PLACEMENT=%s COMPONENTS=%s IMAGES=%s\ncomponents:\n", c.Placement, strings.Join(c.Components, ","), c.Images)
		for _, comp := range components {
			rel, err := filepath.Rel(dir, filepath.Join(c.Root, "manifests", "components", comp))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "  - %s\n", filepath.ToSlash(rel))
		}
	}
	b.WriteString("images:\n")
	byName := map[string]Image{}
	for _, im := range images {
		byName[im.Name] = im
	}
	names := append([]string(nil), Services...)
	sort.Strings(names)
	for _, n := range names {
		im, ok := byName[n]
		if !ok {
			return "", fmt.Errorf("images.json has no %s image", n)
		}
		fmt.Fprintf(&b, "  - name: edgeflow/%s\n    newName: %s\n    newTag: %q\n", n, im.Repository(), im.Tag())
	}
	if c.DashboardHost != "" && !c.DevCluster() {
		// The rule answers that host only; the TLS entry names it too (Traefik picks the
		// Secret's certificate by the name a browser asks for).
		fmt.Fprintf(&b, "patches:\n  - target: {kind: Ingress, name: dashboard}\n    patch: |-\n      - {op: add, path: /spec/rules/0/host, value: %q}\n      - {op: add, path: /spec/tls/0/hosts, value: [%q]}\n", c.DashboardHost, c.DashboardHost)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// mergeImages replaces the entries of old by the rebuilt ones of the same name.
func mergeImages(old, rebuilt []Image) []Image {
	out := append([]Image(nil), old...)
	for _, r := range rebuilt {
		found := false
		for i := range out {
			if out[i].Name == r.Name {
				out[i], found = r, true
			}
		}
		if !found {
			out = append(out, r)
		}
	}
	return out
}

// TLSSecrets are the Secrets applied as kubernetes.io/tls (tls.crt and tls.key only), as
// Ingress controllers expect; the others are Opaque.
var TLSSecrets = []string{"edgeflow-dashboard-tls"}

// applySecret creates or updates Secret name from the files of dir/name.
func applySecret(ctx context.Context, k *Kube, dir, name string) error {
	typ := "Opaque"
	if slices.Contains(TLSSecrets, name) {
		typ = "kubernetes.io/tls"
	}
	yaml, err := k.Output(ctx, "-n", Namespace, "create", "secret", "generic", name, "--type="+typ,
		"--from-file="+filepath.Join(dir, name), "--dry-run=client", "-o", "yaml")
	if err != nil {
		return err
	}
	_, err = k.OutputStdin(ctx, []byte(yaml), "apply", "-f", "-")
	return err
}

// endpoints prints where the dashboard and MQTT answer and where the credentials are.
func endpoints(ctx context.Context, k *Kube, nodes []Node, workloads []string) error {
	sec := k.buildDir("secrets", k.Cluster)
	node := nodes[0].InternalIP
	fmt.Println()
	if !slices.Contains(workloads, "mosquitto") {
		// A hub (manifests/overlays/hub): no devices; the sites' NATS servers connect.
		dash := cmp.Or(k.DashboardHost, node)
		fmt.Printf("dashboard:  https://%s/   (Traefik Ingress, certificate of the CA below; or: go tool task dashboard)\n", dash)
		fmt.Printf("leaf nodes (TLS): %s:7422   (K3s ServiceLB; each site's hub=)\n", node)
		fmt.Printf("dashboard token:   %s\n", filepath.Join(sec, "edgeflow-dashboard", "token"))
		fmt.Printf("sites' logins:     %s/<site>/ (copy to each site's edgeflow-nats-uplink/)\n", filepath.Join(sec, "uplink"))
		fmt.Printf("hub's CA:          %s\n", filepath.Join(sec, "edgeflow-mqtt-tls", "ca.crt"))
		return nil
	}
	if k.DevCluster() {
		fmt.Printf("dashboard:  http://%s:30080/   (NodePort; or: go tool task dashboard)\n", node)
		fmt.Printf("MQTT (TLS): ssl://%s:30883   (NodePort)\n", node)
	} else {
		var svc struct {
			Status struct {
				LoadBalancer struct {
					Ingress []struct{ IP, Hostname string } `json:"ingress"`
				} `json:"loadBalancer"`
			} `json:"status"`
		}
		host := node
		if err := k.JSON(ctx, &svc, "-n", Namespace, "get", "service", "mqtt"); err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			host = svc.Status.LoadBalancer.Ingress[0].IP + svc.Status.LoadBalancer.Ingress[0].Hostname
		}
		dash := node
		if k.DashboardHost != "" {
			dash = k.DashboardHost
		}
		fmt.Printf("dashboard:  https://%s/   (Traefik Ingress, certificate of the CA below; http redirects; or: go tool task dashboard)\n", dash)
		fmt.Printf("MQTT (TLS): ssl://%s:8883   (K3s ServiceLB)\n", host)
	}
	fmt.Printf("dashboard token:   %s\n", filepath.Join(sec, "edgeflow-dashboard", "token"))
	fmt.Printf("device user:       device, password in %s\n", filepath.Join(sec, "edgeflow-mqtt", "device-password"))
	fmt.Printf("MQTT TLS CA:       %s\n", filepath.Join(sec, "edgeflow-mqtt-tls", "ca.crt"))
	if !k.DevCluster() {
		fmt.Printf("dashboard HTTPS:   %s (signed by the same CA)\n", filepath.Join(sec, "edgeflow-dashboard-tls", "tls.crt"))
	}
	return nil
}

// RenderedWorkloads are the Workloads a rendered overlay runs, in start-up order: a hub
// (manifests/overlays/hub) has no Mosquitto, ingest or notifier to wait for. A
// Deployment or StatefulSet that is not among Workloads is an error: nothing would
// wait for it.
func RenderedWorkloads(rendered []byte) ([]string, error) {
	have := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	for {
		var o struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rendered overlay: %w", err)
		}
		if o.Kind == "Deployment" || o.Kind == "StatefulSet" {
			if !slices.Contains(Workloads, o.Metadata.Name) {
				return nil, fmt.Errorf("rendered overlay: %s %s is not one of the workloads task deploy knows (%s)", o.Kind, o.Metadata.Name, strings.Join(Workloads, ", "))
			}
			have[o.Metadata.Name] = true
		}
	}
	out := slices.DeleteFunc(slices.Clone(Workloads), func(w string) bool { return !have[w] })
	if len(out) == 0 {
		return nil, errors.New("rendered overlay: no Deployment or StatefulSet")
	}
	return out, nil
}
