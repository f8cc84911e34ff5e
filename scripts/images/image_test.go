package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// helloModule writes a one-file Go program in its own module, small enough
// to cross-compile for every platform in a test.
func helloModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.22\n",
		"main.go": "package main\n\nimport (\"fmt\"; \"runtime\")\n\nfunc main() { fmt.Println(\"hello from\", runtime.GOOS+\"/\"+runtime.GOARCH) }\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func all3(t *testing.T) []Platform {
	t.Helper()
	ps, err := ParsePlatforms(defaultPlatforms)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// layerFiles reads a layer's entries.
func layerFiles(t *testing.T, l v1.Layer) map[string]tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := readLayer(t, rc)
	return got
}

// TestMultiPlatformIndex builds a real program for the three default
// platforms and checks the index, each image's config and layers, the
// binaries' ELF headers, and the OCI archive as another OCI reader sees it.
func TestMultiPlatformIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles a program three times")
	}
	if _, err := os.Stat(caBundle); err != nil {
		t.Skipf("no CA bundle: %v", err)
	}
	ctx := t.Context()
	platforms := all3(t)
	src := helloModule(t)
	binDirs, err := GoBuild(ctx, quietLog(), src, t.TempDir(), []string{"."}, platforms, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	spec := &Spec{
		Name:       "hello",
		Ref:        "localhost/edgeflow/hello:test",
		Entrypoint: []string{"/hello"},
		Env:        []string{"PATH=/"},
		Labels:     map[string]string{"org.opencontainers.image.revision": "abc"},
		Created:    time.Unix(1700000000, 0),
		Platforms:  platforms,
		Files: func(p Platform) (Rootfs, error) {
			r := Rootfs{}
			return r, r.AddFile(filepath.Join(binDirs[p], "hello"), "/hello", 0o755)
		},
	}
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
	idx := built.index
	if err := validate.Index(idx); err != nil {
		t.Fatalf("index does not validate: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	if len(im.Manifests) != 3 {
		t.Fatalf("index has %d manifests, want 3", len(im.Manifests))
	}
	wantMachine := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64, "linux/arm/v7": elf.EM_ARM}
	for i, desc := range im.Manifests {
		p := platforms[i]
		if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != p.Arch || desc.Platform.Variant != p.Variant {
			t.Errorf("manifest %d: platform %+v, want %s", i, desc.Platform, p)
		}
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", p, desc.MediaType)
		}
		if built.Platforms[i].Platform != p.String() || built.Platforms[i].Digest != desc.Digest.String() || built.Platforms[i].CompressedSize < 100_000 {
			t.Errorf("%s: report entry %+v does not match %s", p, built.Platforms[i], desc.Digest)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != "linux" || cfg.Architecture != p.Arch || cfg.Variant != p.Variant {
			t.Errorf("%s: config platform %s/%s/%s", p, cfg.OS, cfg.Architecture, cfg.Variant)
		}
		if cfg.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", p, cfg.Config.User)
		}
		if strings.Join(cfg.Config.Entrypoint, " ") != "/hello" || strings.Join(cfg.Config.Env, " ") != "PATH=/" || cfg.Config.WorkingDir != "/" {
			t.Errorf("%s: entrypoint %q env %q workdir %q", p, cfg.Config.Entrypoint, cfg.Config.Env, cfg.Config.WorkingDir)
		}
		if cfg.Config.Labels["org.opencontainers.image.revision"] != "abc" || !cfg.Created.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: labels %v created %v", p, cfg.Config.Labels, cfg.Created)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != 2 {
			t.Fatalf("%s: %d layers, want base + own", p, len(layers))
		}
		if d0, _ := layers[0].Digest(); i > 0 {
			first, _ := idx.Image(im.Manifests[0].Digest)
			fl, _ := first.Layers()
			if fd, _ := fl[0].Digest(); fd != d0 {
				t.Errorf("%s: base layer %s differs from %s's %s", p, d0, platforms[0], fd)
			}
		}
		if mt, _ := layers[1].MediaType(); mt != types.OCILayer {
			t.Errorf("%s: layer media type %s", p, mt)
		}
		own := layerFiles(t, layers[1])
		if len(own) != 1 {
			t.Errorf("%s: own layer has %d entries, want only hello", p, len(own))
		}
		hello, ok := own["hello"]
		if !ok || hello.typ != tar.TypeReg || hello.mode != 0o755 || hello.uid != 0 || hello.gid != 0 {
			t.Fatalf("%s: /hello is %+v, want a root-owned 0755 file", p, hello)
		}
		f, err := elf.NewFile(strings.NewReader(hello.data))
		if err != nil {
			t.Fatalf("%s: /hello is not ELF: %v", p, err)
		}
		if f.Machine != wantMachine[p.String()] {
			t.Errorf("%s: /hello is for %v", p, f.Machine)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: /hello is dynamically linked", p)
			}
		}
		if p == HostPlatform() && runtime.GOOS == "linux" {
			bin := filepath.Join(t.TempDir(), "hello")
			if err := os.WriteFile(bin, []byte(hello.data), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "hello from linux/"+runtime.GOARCH {
				t.Errorf("running the host binary from the image: %v %q", err, out)
			}
		}
	}

	// The archive, as written and as an OCI layout reader sees it.
	var buf bytes.Buffer
	ref, err := name.NewTag(spec.Ref, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteOCIArchive(&buf, ref, idx); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := WriteOCIArchive(&again, ref, idx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the same index gave two different archives")
	}
	dir := t.TempDir()
	untarFS(t, bytes.NewReader(buf.Bytes()), dir)
	var top v1.IndexManifest
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	if len(top.Manifests) != 1 || top.Manifests[0].Digest != d || top.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json entries %+v, want the image index %s", top.Manifests, d)
	}
	if got := top.Manifests[0].Annotations[annotationContainerdName]; got != "localhost/edgeflow/hello:test" {
		t.Errorf("%s = %q", annotationContainerdName, got)
	}
	if got := top.Manifests[0].Annotations[annotationRefName]; got != "test" {
		t.Errorf("%s = %q", annotationRefName, got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || string(b) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %q %v", b, err)
	}
	lp, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := lp.ImageIndex(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(inner); err != nil {
		t.Fatalf("the archive's index does not validate: %v", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	// 1 index + 3 × (manifest + config + own layer) + 1 shared base layer.
	if len(entries) != 11 {
		t.Errorf("%d blobs, want 11", len(entries))
	}
}

// untarFS extracts a tar of directories and regular files, keeping the
// executable bits.
func untarFS(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir) {
			t.Fatalf("entry %s leaves the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o755); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("entry %s: unexpected type %c", h.Name, h.Typeflag)
		}
	}
}
