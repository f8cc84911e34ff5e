package main

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeflow/edgeflow/devenv/influxadmin"
)

// render writes the kustomization task deploy would write for c and renders it with
// kubectl's kustomize, as up does.
func render(t *testing.T, c Config) string {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		kubectl = filepath.Join(cmp.Or(os.Getenv("DEVCLUSTER_DIR"), "/tmp/edgeflow-devcluster"), "bin", "kubectl")
	}
	var images []Image
	for _, s := range Services {
		images = append(images, Image{Name: s, Ref: "localhost/edgeflow/" + s + ":test"})
	}
	dir, err := writeKustomization(c, images)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return string(out)
}

// Every shipped overlay runs InfluxDB 1.8.3 and says so, so that task deploy sets it up
// as the tests run it; components/influxdb2 switches the image and the set-up to 2.x.
// IMAGES=local swaps exactly the images of components/local-images into an overlay and
// forbids pulls; without it the k3s overlays keep the base's upstream images.
func TestDeployRendersTheInfluxDBAndImagesItSetsUp(t *testing.T) {
	for _, tc := range []struct {
		overlay    string
		components []string
		images     string
		api        string
		influx     string
		local      bool
	}{
		{"k3s", nil, "", Influx18, "image: influxdb:1.8.3", false},
		{"k3s-ha", nil, "", Influx18, "image: influxdb:1.8.3", false},
		{"k3s", nil, "local", Influx18, "image: localhost/edgeflow/influxdb:1.8.3", true},
		{"k3s-ha", []string{"one-node"}, "local", Influx18, "image: localhost/edgeflow/influxdb:1.8.3", true},
		{"devcluster", nil, "", Influx18, "image: localhost/edgeflow/influxdb:1.8.3", true},
		{"devcluster-ha", nil, "local", Influx18, "image: localhost/edgeflow/influxdb:1.8.3", true},
		{"k3s", []string{"influxdb2"}, "", Influx2, "image: influxdb:2.7", false},
		{"hub", nil, "", Influx18, "image: influxdb:1.8.3", false},
	} {
		name := tc.overlay + "+" + strings.Join(tc.components, ",") + "+" + tc.images
		// A copy of manifests/ under a root of the test's own: deploy writes its
		// kustomization into the root's .build.
		c := Config{Root: t.TempDir(), Overlay: tc.overlay, Components: tc.components, Images: tc.images}
		if err := os.CopyFS(filepath.Join(c.Root, "manifests"), os.DirFS("../../manifests")); err != nil {
			t.Fatal(err)
		}
		out := render(t, c)
		api, err := InfluxAPI([]byte(out))
		if err != nil || api != tc.api {
			t.Errorf("%s: InfluxDB API %q, %v; want %q", name, api, err, tc.api)
		}
		if !strings.Contains(out, tc.influx) {
			t.Errorf("%s: no %q in the rendering", name, tc.influx)
		}
		pulls := strings.Count(out, "imagePullPolicy: Never")
		local := strings.Count(out, "image: localhost/edgeflow/")
		if tc.local && (pulls != 7 || local != 7) {
			t.Errorf("%s: %d images from localhost/edgeflow, %d with imagePullPolicy Never; want all 7", name, local, pulls)
		}
		if !tc.local && (pulls != 0 || strings.Contains(out, "image: localhost/edgeflow/nats") || strings.Contains(out, "image: localhost/edgeflow/mosquitto")) {
			t.Errorf("%s: local images or pull policies in an overlay that pulls", name)
		}
	}
}

// task deploy waits for the workloads the overlay runs, in start-up order: all seven
// at a site, four at the hub (manifests/overlays/hub), which has no devices.
func TestRenderedWorkloads(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "manifests"), os.DirFS("../../manifests")); err != nil {
		t.Fatal(err)
	}
	for overlay, want := range map[string][]string{
		"k3s": Workloads,
		"hub": {"nats", "influxdb", "processor", "dashboard"},
	} {
		got, err := RenderedWorkloads([]byte(render(t, Config{Root: root, Overlay: overlay})))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: workloads %v, %v; want %v", overlay, got, err, want)
		}
	}
	if _, err := RenderedWorkloads([]byte("kind: Deployment\nmetadata: {name: gateway}\n")); err == nil {
		t.Error("an unknown Deployment: accepted (nothing would wait for it)")
	}
	if _, err := RenderedWorkloads([]byte("kind: Service\nmetadata: {name: nats}\n")); err == nil {
		t.Error("no workload: accepted")
	}
}

func TestInfluxAPIRefusesAnUnmarkedStatefulSet(t *testing.T) {
	if _, err := InfluxAPI([]byte("kind: StatefulSet\nmetadata: {name: influxdb}\n")); err == nil {
		t.Error("no annotation: accepted")
	}
	if _, err := InfluxAPI([]byte("kind: Deployment\nmetadata: {name: x}\n")); err == nil {
		t.Error("no influxdb StatefulSet: accepted")
	}
}

// On InfluxDB 2.x each bucket is mapped to the database/retention policy of
// the 1.8 layout (influxadmin's plan for the same buckets), the names the
// dashboard's InfluxQL reads: the window bucket as the database's default
// policy, the raw bucket as policy raw. (The mapping call itself is
// untested: InfluxDB 2.x does not build here.)
func TestDBRPMappingsFollowThe18Layout(t *testing.T) {
	plan, err := influxadmin.NewPlan(influxBucket, influxRawBucket, influxadmin.Retention{RawDays: 7, WindowDays: 180})
	if err != nil {
		t.Fatal(err)
	}
	for i, bucket := range []string{influxBucket, influxRawBucket} {
		db, rp, isDefault := dbrpOf(bucket)
		want := plan.Policies[i].Name
		if want == "" {
			want = "autogen" // the default policy of a new 1.x database
		}
		if db != plan.Database || rp != want || isDefault != (plan.Policies[i].Name == "") {
			t.Errorf("bucket %s mapped to %s/%s default=%v, want %s/%s as in the 1.8 plan", bucket, db, rp, isDefault, plan.Database, want)
		}
	}
}
