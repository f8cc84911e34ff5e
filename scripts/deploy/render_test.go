package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// serviceImages are images.json entries for every service, tagged tag.
func serviceImages(repo, tag string) []Image {
	var images []Image
	for _, s := range Services {
		ref := repo + "/" + s
		if tag != "" {
			ref += ":" + tag
		}
		images = append(images, Image{Name: s, Ref: ref})
	}
	return images
}

func readKustomization(t *testing.T, c Config, images []Image) string {
	t.Helper()
	dir, err := writeKustomization(c, images)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.Root, ".build", "deploy", c.Overlay); dir != want {
		t.Fatalf("kustomization folder %s, want %s", dir, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The generated kustomization names the overlay relative to its own folder, and every
// service's image by repository and quoted tag, in name order.
func TestWriteKustomizationPlain(t *testing.T) {
	c := Config{Root: t.TempDir(), Overlay: "k3s"}
	got := readKustomization(t, c, serviceImages("registry.local:5000/edgeflow", "0a1b2c"))
	want := `# Written by scripts/deploy (task deploy) for this cluster; not committed, rewritten every deploy.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../manifests/overlays/k3s
images:
  - name: edgeflow/dashboard
    newName: registry.local:5000/edgeflow/dashboard
    newTag: "0a1b2c"
  - name: edgeflow/ingest
    newName: registry.local:5000/edgeflow/ingest
    newTag: "0a1b2c"
  - name: edgeflow/notifier
    newName: registry.local:5000/edgeflow/notifier
    newTag: "0a1b2c"
  - name: edgeflow/processor
    newName: registry.local:5000/edgeflow/processor
    newTag: "0a1b2c"
`
	if got != want {
		t.Fatalf("kustomization:\n%s\nwant:\n%s", got, want)
	}
}

// Components come in order: the placement's, COMPONENTS, then local-images for
// IMAGES=local, each relative to the kustomization's folder.
func TestWriteKustomizationComponents(t *testing.T) {
	c := Config{Root: t.TempDir(), Overlay: "k3s-ha", Placement: "edge",
		Components: []string{"influxdb2", "ingest-share-group"}, Images: "local"}
	got := readKustomization(t, c, serviceImages("localhost/edgeflow", "t"))
	want := `# PLACEMENT=edge COMPONENTS=influxdb2,ingest-share-group IMAGES=local
components:
  - ../../../manifests/components/edge-agents
  - ../../../manifests/components/influxdb2
  - ../../../manifests/components/ingest-share-group
  - ../../../manifests/components/local-images
images:
`
	if !strings.Contains(got, want) {
		t.Fatalf("kustomization:\n%s\nwant it to hold:\n%s", got, want)
	}
}

// The devcluster overlays have local-images already and no Ingress: IMAGES=local adds no
// component and DASHBOARD_HOST no patch.
func TestWriteKustomizationDevCluster(t *testing.T) {
	c := Config{Root: t.TempDir(), Overlay: "devcluster", Images: "local", DashboardHost: "edge.example"}
	got := readKustomization(t, c, serviceImages("localhost/edgeflow", "t"))
	for _, no := range []string{"components:", "local-images", "patches:", "edge.example"} {
		if strings.Contains(got, no) {
			t.Errorf("devcluster kustomization holds %q:\n%s", no, got)
		}
	}
}

// DASHBOARD_HOST patches the Ingress rule's host and the TLS entry's hosts.
func TestWriteKustomizationDashboardHost(t *testing.T) {
	c := Config{Root: t.TempDir(), Overlay: "k3s", DashboardHost: "edge.example"}
	got := readKustomization(t, c, serviceImages("localhost/edgeflow", "t"))
	want := `patches:
  - target: {kind: Ingress, name: dashboard}
    patch: |-
      - {op: add, path: /spec/rules/0/host, value: "edge.example"}
      - {op: add, path: /spec/tls/0/hosts, value: ["edge.example"]}
`
	if !strings.HasSuffix(got, want) {
		t.Fatalf("kustomization:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestWriteKustomizationRefusesAMissingImage(t *testing.T) {
	c := Config{Root: t.TempDir(), Overlay: "k3s"}
	var images []Image
	for _, im := range serviceImages("localhost/edgeflow", "t") {
		if im.Name != "notifier" {
			images = append(images, im)
		}
	}
	if _, err := writeKustomization(c, images); err == nil || !strings.Contains(err.Error(), "no notifier image") {
		t.Fatalf("writeKustomization without the notifier's image: %v", err)
	}
}

func TestImageRepositoryAndTag(t *testing.T) {
	for _, tc := range []struct{ ref, repo, tag string }{
		{"localhost/edgeflow/ingest:abc", "localhost/edgeflow/ingest", "abc"},
		{"registry.local:5000/edgeflow/ingest:v1.2", "registry.local:5000/edgeflow/ingest", "v1.2"},
		{"registry.local:5000/edgeflow/ingest", "registry.local:5000/edgeflow/ingest", "latest"},
		{"ingest", "ingest", "latest"},
		{"ingest:x", "ingest", "x"},
	} {
		im := Image{Ref: tc.ref}
		if im.Repository() != tc.repo || im.Tag() != tc.tag {
			t.Errorf("%s: repository %q tag %q, want %q %q", tc.ref, im.Repository(), im.Tag(), tc.repo, tc.tag)
		}
	}
}

func names(images []Image) string {
	var out []string
	for _, im := range images {
		out = append(out, im.Name+"="+im.Ref)
	}
	return strings.Join(out, " ")
}

// A rollout of some services keeps the others' images: the rebuilt ones replace theirs.
func TestMergeImages(t *testing.T) {
	old := []Image{{Name: "ingest", Ref: "a:1"}, {Name: "processor", Ref: "b:1"}}
	rebuilt := []Image{{Name: "processor", Ref: "b:2"}, {Name: "notifier", Ref: "c:2"}}
	got := mergeImages(old, rebuilt)
	if want := "ingest=a:1 processor=b:2 notifier=c:2"; names(got) != want {
		t.Fatalf("merged %s, want %s", names(got), want)
	}
	if names(old) != "ingest=a:1 processor=b:1" {
		t.Fatalf("mergeImages changed its input: %s", names(old))
	}
}

func TestWriteAndReadImages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "images.json")
	images := []Image{{Name: "processor", Ref: "b:2", Tarball: "processor.tar"}, {Name: "dashboard", Ref: "d:1"}}
	if err := writeImages(path, images); err != nil {
		t.Fatal(err)
	}
	got, err := readImages(path)
	if err != nil {
		t.Fatal(err)
	}
	if names(got) != "dashboard=d:1 processor=b:2" || got[1].Tarball != "processor.tar" {
		t.Fatalf("read back %s (%+v), want them sorted by name", names(got), got)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readImages(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("readImages of broken JSON: %v, want an error naming the file", err)
	}
}

func TestPlatforms(t *testing.T) {
	nodes := []Node{
		{OS: "linux", Arch: "amd64"},
		{OS: "linux", Arch: "arm", Variant: "v7"},
		{OS: "linux", Arch: "amd64"},
		{OS: "linux", Arch: "arm64"},
	}
	if got, want := Platforms(nodes), "linux/amd64,linux/arm/v7,linux/arm64"; got != want {
		t.Fatalf("Platforms = %q, want %q", got, want)
	}
}

func TestPlacementNodes(t *testing.T) {
	nodes := []Node{
		{Name: "server"},
		{Name: "agent1", Labels: map[string]string{EdgeLabel: "true"}},
		{Name: "agent2", Labels: map[string]string{EdgeLabel: "false"}},
	}
	all, err := placementNodes(Config{}, nodes)
	if err != nil || len(all) != 3 {
		t.Fatalf("no placement: %v, %v; want every node", all, err)
	}
	edge, err := placementNodes(Config{Placement: "edge"}, nodes)
	if err != nil || len(edge) != 1 || edge[0].Name != "agent1" {
		t.Fatalf("PLACEMENT=edge: %v, %v; want agent1 only", edge, err)
	}
	if _, err := placementNodes(Config{Placement: "edge"}, nodes[:1]); err == nil || !strings.Contains(err.Error(), EdgeLabel+"=true") {
		t.Fatalf("PLACEMENT=edge with no labelled node: %v, want an error naming the label", err)
	}
}

// fakeRoot is a repository root loadConfig accepts: go.mod, the named overlays and
// components.
func fakeRoot(t *testing.T, overlays, components []string) string {
	t.Helper()
	root := t.TempDir()
	files := []string{"go.mod"}
	for _, o := range overlays {
		files = append(files, filepath.Join("manifests", "overlays", o, "kustomization.yaml"))
	}
	for _, c := range components {
		files = append(files, filepath.Join("manifests", "components", c, "kustomization.yaml"))
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// deployEnv clears every variable loadConfig reads, then sets those given.
func deployEnv(t *testing.T, set map[string]string) {
	t.Helper()
	for _, v := range []string{"KUBECONFIG", "OVERLAY", "REGISTRY", "PLATFORMS", "CLUSTER", "DASHBOARD_HOST",
		"DEPLOY_TIMEOUT", "PLACEMENT", "COMPONENTS", "IMAGES", "DEVCLUSTER_DIR"} {
		t.Setenv(v, set[v])
	}
}

func TestLoadConfig(t *testing.T) {
	root := fakeRoot(t, []string{"k3s", "devcluster"}, []string{"influxdb2", "ingest-share-group"})
	// From a subfolder: the root is found upwards.
	sub := filepath.Join(root, "manifests", "overlays")
	t.Chdir(sub)
	deployEnv(t, map[string]string{"KUBECONFIG": "/k", "REGISTRY": "reg.example:5000/edge/",
		"COMPONENTS": " influxdb2, ,ingest-share-group ", "DEPLOY_TIMEOUT": "90s", "PLACEMENT": "edge",
		"CLUSTER": "home", "DASHBOARD_HOST": "edge.example", "PLATFORMS": "linux/arm64"})
	c, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Root: root, Kubeconfig: "/k", Overlay: "k3s", Registry: "reg.example:5000/edge",
		Platforms: "linux/arm64", Cluster: "home", DashboardHost: "edge.example", Timeout: 90 * time.Second,
		Placement: "edge", Components: []string{"influxdb2", "ingest-share-group"}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("loadConfig:\n%+v\nwant\n%+v", c, want)
	}

	deployEnv(t, nil)
	if c, err := loadConfig(); err != nil || c.Timeout != 5*time.Minute || c.Overlay != "k3s" || c.Components != nil {
		t.Fatalf("defaults: %+v, %v; want overlay k3s, 5m, no components", c, err)
	}

	// Without KUBECONFIG the devcluster overlays use the dev cluster's admin kubeconfig.
	dev := t.TempDir()
	admin := filepath.Join(dev, "run", "admin.kubeconfig")
	if err := os.MkdirAll(filepath.Dir(admin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(admin, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	deployEnv(t, map[string]string{"OVERLAY": "devcluster", "DEVCLUSTER_DIR": dev})
	if c, err := loadConfig(); err != nil || c.Kubeconfig != admin || !c.DevCluster() || !c.LocalImages() {
		t.Fatalf("devcluster: %+v, %v; want kubeconfig %s and local images", c, err, admin)
	}
}

func TestLoadConfigRefuses(t *testing.T) {
	root := fakeRoot(t, []string{"k3s"}, []string{"influxdb2"})
	t.Chdir(root)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OVERLAY": "nope"}, "OVERLAY=nope"},
		{map[string]string{"COMPONENTS": "influxdb2,nope"}, "manifests/components/nope"},
		{map[string]string{"IMAGES": "remote"}, "IMAGES=remote"},
		{map[string]string{"DEPLOY_TIMEOUT": "5"}, "DEPLOY_TIMEOUT"},
		{map[string]string{"PLACEMENT": "cloud"}, "PLACEMENT=cloud"},
	} {
		deployEnv(t, tc.env)
		if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %q", tc.env, err, tc.want)
		}
	}

	t.Chdir(t.TempDir())
	deployEnv(t, nil)
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "edgeflow repository") {
		t.Errorf("outside the repository: %v", err)
	}
}
