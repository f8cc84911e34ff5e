package devenv

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The product module's layout: internal/ holds what the services ship, and
// only that; devenv/ (this package, influxadmin, envtest) starts and sets up
// real servers for the services' own tests and for the tooling, and no shipped
// code imports it (docs/decisions.md, "Test support stays in the product
// module").
func TestShippedCodeAndTestSupportStayApart(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The product module on its own: the tooling module (scripts) imports
	// devenv freely and is not listed.
	golist := func(args ...string) string {
		cmd := exec.Command("go", append([]string{"list"}, args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOWORK=off")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	isSupport := func(pkg string) bool {
		return pkg == ModulePath+"/devenv" || strings.HasPrefix(pkg, ModulePath+"/devenv/")
	}

	packages := 0
	for line := range strings.Lines(golist("-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		packages++
		if isSupport(fields[0]) {
			continue
		}
		for _, imp := range fields[1:] {
			if isSupport(imp) {
				t.Errorf("%s imports %s in a non-test file: test support must stay out of what ships", fields[0], imp)
			}
		}
	}
	if packages < 10 {
		t.Fatalf("go list found %d packages in %s, want the whole product module", packages, root)
	}

	shipped := map[string]bool{}
	for line := range strings.Lines(golist("-deps", "./ingest", "./processor", "./notifier", "./dashboard")) {
		shipped[strings.TrimSpace(line)] = true
	}
	for line := range strings.Lines(golist("./internal/...")) {
		if pkg := strings.TrimSpace(line); !shipped[pkg] {
			t.Errorf("%s is under internal/ but no service imports it: internal/ holds shipped code only", pkg)
		}
	}
}
