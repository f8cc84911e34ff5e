package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeflow/edgeflow/notifier/rules"
)

// A site's notifier gets the repository's rules with the site's prefix on
// every site selector ("*" left alone), and the notifier accepts them: the
// same rules, only for the site's own simulated sites.
func TestPrefixRulesKeepsTheRulesForTheSitesOwnNames(t *testing.T) {
	src := filepath.Join("..", "..", "rules.yaml")
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	want, err := rules.Parse(src, orig, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := prefixRules(src, filepath.Join(t.TempDir(), "north", "rules.yaml"), "north-")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rules.Parse(dst, data, noEnv)
	if err != nil {
		t.Fatalf("the notifier refuses the site's rules: %v\n%s", err, data)
	}
	if len(got.Rules) != len(want.Rules) || len(got.Rules) == 0 {
		t.Fatalf("%d rules, want %d", len(got.Rules), len(want.Rules))
	}
	for i, r := range got.Rules {
		w := want.Rules[i]
		site := "north-" + w.Site
		if w.Site == "*" {
			site = "*"
		}
		if r.Name != w.Name || r.Site != site || r.Device != w.Device || r.Kind != w.Kind {
			t.Errorf("rule %d: %s site %q device %q, want %s site %q device %q", i, r.Name, r.Site, r.Device, w.Name, site, w.Device)
		}
	}
}
