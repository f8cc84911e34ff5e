package main

import (
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/edgeflow/edgeflow/internal/service"
)

// TestPushAndRunIngest builds the real ingest image for the host platform,
// pushes it to an in-process registry, pulls it back and runs the binary
// from the pulled image's file system: `ingest -h` prints its variables.
func TestPushAndRunIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ingest")
	}
	if _, err := os.Stat(caBundle); err != nil {
		t.Skipf("no CA bundle: %v", err)
	}
	ctx := t.Context()
	root, err := RepoRoot(ctx, ".")
	if err != nil {
		t.Fatal(err)
	}
	host := HostPlatform()
	rev := Revision{Commit: strings.Repeat("ab", 20), Tag: "test"}
	binDirs, err := GoBuild(ctx, quietLog(), root, t.TempDir(), []string{"./ingest"}, []Platform{host}, 1,
		service.StampFlags(rev.Tag, rev.Commit))
	if err != nil {
		t.Fatal(err)
	}
	// The binary carries the build the image labels name (edgeflow_build_info, --version).
	out, err := exec.Command(filepath.Join(binDirs[host], "ingest"), "--version").Output()
	if want := "ingest test (revision " + rev.Commit + ", " + runtime.Version() + ")\n"; err != nil || string(out) != want {
		t.Fatalf("ingest --version = %q, %v; want %q", out, err, want)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	repo := u.Host + "/edgeflow"
	spec := serviceSpec("ingest", repo, "test", rev, []Platform{host}, binDirs)
	baseFS, err := BaseRootfs()
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseFS.Layer()
	if err != nil {
		t.Fatal(err)
	}
	built, err := buildIndex(ctx, spec, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := Push(ctx, spec.Ref, built.index, true); err != nil {
		t.Fatal(err)
	}

	ref, err := name.ParseReference(spec.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(pulled); err != nil {
		t.Fatalf("pulled index does not validate: %v", err)
	}
	if d, _ := pulled.Digest(); d.String() != built.Digest {
		t.Fatalf("pulled index %s, pushed %s", d, built.Digest)
	}
	// What a node does: resolve the tag for its own platform.
	pl := host.V1()
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(pl))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || strings.Join(cfg.Config.Entrypoint, " ") != "/ingest" {
		t.Errorf("user %q entrypoint %q", cfg.Config.User, cfg.Config.Entrypoint)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   sourceURL,
		"org.opencontainers.image.revision": rev.Commit,
		"org.opencontainers.image.version":  "test",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	for _, e := range cfg.Config.Env {
		if !strings.HasPrefix(e, "PATH=") {
			t.Errorf("unexpected variable in the image: %s", e)
		}
	}

	// The flattened file system, as a container would see it.
	fsys := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	untarFS(t, rc, fsys)
	for _, f := range []string{"ingest", "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt"} {
		if _, err := os.Stat(filepath.Join(fsys, f)); err != nil {
			t.Errorf("image file system: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(fsys, "tmp")); err != nil || !fi.IsDir() {
		t.Errorf("/tmp: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fsys, "bin", "sh")); err == nil {
		t.Error("the image has a shell")
	}
	out, err = exec.CommandContext(ctx, filepath.Join(fsys, "ingest"), "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("ingest -h from the pulled image: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "EDGEFLOW_") {
		t.Errorf("ingest -h printed no EDGEFLOW_ variables:\n%s", out)
	}
}
