package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkspaceKeepsProductVersions checks that the workspace (go.work: the
// product module and this tooling module) builds and tests the product with
// the module versions the product's own go.mod selects. In workspace mode
// one build list spans both modules, so a dependency this module requires
// at a higher version would silently change what the product's tests run
// against, and what `task images` builds, from what `GOWORK=off go build`
// ships. Lower the requirement here, or raise it in the product's go.mod.
func TestWorkspaceKeepsProductVersions(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatal(err)
	}
	standalone := productModules(t, root, "GOWORK=off")
	workspace := productModules(t, root, "GOWORK="+filepath.Join(root, "go.work"))
	if len(standalone) < 5 {
		t.Fatalf("product uses %d modules, want its whole dependency list: %v", len(standalone), standalone)
	}
	for path, v := range standalone {
		if workspace[path] != v {
			t.Errorf("%s: product's go.mod selects %s, the workspace %q", path, v, workspace[path])
		}
	}
	for path, v := range workspace {
		if _, ok := standalone[path]; !ok {
			t.Errorf("%s %s: only the workspace provides it to the product", path, v)
		}
	}
}

// productModules returns module path -> version of every module providing a
// package to the product module's packages or their tests.
func productModules(t *testing.T, root, gowork string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test",
		"-f", `{{with .Module}}{{.Path}} {{.Version}}{{end}}`, "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), gowork)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s go list: %v\n%s", gowork, err, stderr.String())
	}
	mods := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if path, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			mods[path] = v
		} else if path != "" {
			mods[path] = "" // a main module: no version
		}
	}
	return mods
}
