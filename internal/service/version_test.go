package service_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/edgeflow/edgeflow/internal/service"
)

// Every service's registry carries edgeflow_build_info = 1 with its three
// labels, none empty.
func TestBuildInfo(t *testing.T) {
	fams, err := service.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var m *dto.Metric
	for _, f := range fams {
		if f.GetName() == "edgeflow_build_info" {
			if f.GetType() != dto.MetricType_GAUGE || len(f.GetMetric()) != 1 {
				t.Fatalf("edgeflow_build_info: %v with %d series, want one gauge", f.GetType(), len(f.GetMetric()))
			}
			m = f.GetMetric()[0]
		}
	}
	if m == nil {
		t.Fatal("no edgeflow_build_info")
	}
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("edgeflow_build_info = %v, want 1", m.GetGauge().GetValue())
	}
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	b := service.Version()
	want := map[string]string{"version": b.Version, "revision": b.Revision, "goversion": runtime.Version()}
	for k, v := range want {
		if labels[k] != v || v == "" {
			t.Errorf("label %s = %q, want %q (never empty)", k, labels[k], v)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("labels %v, want exactly version, revision, goversion", labels)
	}
}

// A service binary built with the stamp prints it on --version and exits 0;
// built without it, it prints what the Go toolchain recorded in it (as
// `go version -m` reads it: the module's version and vcs.revision, which a
// go build in a git work tree records unless -buildvcs=false), or
// "unknown". The Taskfile's build stamps the same variables.
func TestVersionFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ingest twice")
	}
	dir := t.TempDir()
	build := func(name string, args ...string) string {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), "../../ingest")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return bin
	}
	version := func(bin string) string {
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatalf("%s --version: %v", bin, err)
		}
		return string(out)
	}

	stamped := build("stamped", "-ldflags", service.StampFlags("v1.2.3-test", "0123456789abcdef"))
	if got, want := version(stamped), "ingest v1.2.3-test (revision 0123456789abcdef, "+runtime.Version()+")\n"; got != want {
		t.Errorf("stamped --version = %q, want %q", got, want)
	}

	plain := build("plain")
	m, err := exec.Command("go", "version", "-m", plain).Output()
	if err != nil {
		t.Fatal(err)
	}
	ver, rev := "unknown", "unknown"
	for line := range strings.Lines(string(m)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod" && f[2] != "(devel)":
			ver = f[2]
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			rev = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	if got, want := version(plain), "ingest "+ver+" (revision "+rev+", "+runtime.Version()+")\n"; got != want {
		t.Errorf("unstamped --version = %q, want %q (go version -m:\n%s)", got, want, m)
	}

	taskfile, err := os.ReadFile("../../Taskfile.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{".version=", ".revision="} {
		if !strings.Contains(string(taskfile), "-X "+service.VersionPackage+v) {
			t.Errorf("Taskfile.yml does not stamp %s%s", service.VersionPackage, v)
		}
	}
}

// Unstamped, the version and revision come from the build information; a
// stamp wins over it; nothing known is "unknown", never empty.
func TestVersionFallback(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Path: "github.com/edgeflow/edgeflow", Version: "v0.0.0-20261203055441-4fe7e94f39ae+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "4fe7e94f39aec2a1b69d112c302fd46fac956c4e"}}}
	devel := &debug.BuildInfo{Main: debug.Module{Path: "github.com/edgeflow/edgeflow", Version: "(devel)"}}
	for _, c := range []struct {
		name              string
		version, revision string
		info              *debug.BuildInfo
		wantVer, wantRev  string
	}{
		{"vcs", "", "", vcs, "v0.0.0-20261203055441-4fe7e94f39ae+dirty", "4fe7e94f39aec2a1b69d112c302fd46fac956c4e"},
		{"stamped", "v1.0.0", "abc", vcs, "v1.0.0", "abc"},
		{"devel", "", "", devel, "unknown", "unknown"},
		{"none", "", "", nil, "unknown", "unknown"},
	} {
		b := service.VersionOf(c.version, c.revision, c.info)
		if b.Version != c.wantVer || b.Revision != c.wantRev || b.GoVersion != runtime.Version() {
			t.Errorf("%s: %+v, want version %q revision %q", c.name, b, c.wantVer, c.wantRev)
		}
	}
}
