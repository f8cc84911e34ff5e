package main

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
)

// manifests/components/local-images, the one place the dev cluster swaps images, names
// exactly the third-party images -thirdparty builds, by the tags it gives them.
func TestLocalImagesComponentNamesTheBuiltImages(t *testing.T) {
	data, err := os.ReadFile("../../manifests/components/local-images/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Images []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"nats":              "localhost/edgeflow/nats:" + natsVersion,
		"eclipse-mosquitto": "localhost/edgeflow/mosquitto:" + mosquittoVersion,
		"influxdb":          "localhost/edgeflow/influxdb:" + influxdbVersion,
	}
	if len(k.Images) != len(want) || len(want) != len(ThirdParty) {
		t.Errorf("components/local-images swaps %d images, -thirdparty builds %d (%v)", len(k.Images), len(ThirdParty), ThirdParty)
	}
	for _, im := range k.Images {
		if got := im.NewName + ":" + im.NewTag; got != want[im.Name] {
			t.Errorf("components/local-images: %s -> %s, want %s", im.Name, got, want[im.Name])
		}
	}
}
