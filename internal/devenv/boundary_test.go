package devenv

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// testSupport are the product module's packages that start or set up real
// servers for tests and tooling. They live in the product module because the
// services' own tests use them (docs/decisions.md), but no shipped code may
// import them.
var testSupport = map[string]bool{
	ModulePath + "/internal/devenv":          true,
	ModulePath + "/internal/influxadmin":     true,
	ModulePath + "/internal/service/envtest": true,
}

// TestTestSupportStaysOutOfProduct fails when a non-test file of a product
// package imports test support, so the services never link it. Test files
// and test support itself (devenv sets InfluxDB up through influxadmin) may.
func TestTestSupportStaysOutOfProduct(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The product module on its own: the tooling module (scripts) imports
	// test support freely and is not listed.
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	packages := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		packages++
		pkg := fields[0]
		if testSupport[pkg] {
			continue
		}
		for _, imp := range fields[1:] {
			if testSupport[imp] {
				t.Errorf("%s imports %s in a non-test file: test support must stay out of what ships", pkg, imp)
			}
		}
	}
	if packages < 10 {
		t.Fatalf("go list found %d packages in %s, want the whole product module:\n%s", packages, root, out)
	}
}
