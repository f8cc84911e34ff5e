package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// extractRootfs writes a layer's files under dir, as a container would see
// them.
func extractRootfs(t *testing.T, r Rootfs, dir string) {
	t.Helper()
	raw, err := r.Tar()
	if err != nil {
		t.Fatal(err)
	}
	untarFS(t, bytes.NewReader(raw), dir)
}

// TestNatsImageFiles builds nats-server at its pinned version (from the
// module cache: edgeflow's go.mod requires the same module) and runs it.
func TestNatsImageFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server")
	}
	ctx := t.Context()
	root, err := RepoRoot(ctx, ".")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := thirdPartySpec(ctx, quietLog(), root, t.TempDir(), defaultRepo, "nats")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Ref != "localhost/edgeflow/nats:2.15.2" || strings.Join(spec.Entrypoint, " ") != "/nats-server" {
		t.Errorf("ref %s entrypoint %v", spec.Ref, spec.Entrypoint)
	}
	if len(spec.Platforms) != 1 || spec.Platforms[0] != HostPlatform() {
		t.Errorf("platforms %v, want the host's only", spec.Platforms)
	}
	r, err := spec.Files(HostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	if f := r["/data"]; !f.Mode.IsDir() || f.UID != nonrootUID || f.GID != nonrootGID {
		t.Errorf("/data: %+v, want a directory owned by the image user", f)
	}
	if len(r) != 2 {
		t.Errorf("layer has %d entries, want /nats-server and /data", len(r))
	}
	dir := t.TempDir()
	extractRootfs(t, r, dir)
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "nats-server"), "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "nats-server: v2.15.2" {
		t.Errorf("nats-server --version: %v %q", err, out)
	}
}

// TestMosquittoImageRunsFromItsOwnFiles runs Debian's broker chrooted into
// nothing but the image's files, as the image user: proof that ldd's list is
// complete. Needs root (chroot) and the mosquitto package.
func TestMosquittoImageRunsFromItsOwnFiles(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		t.Skip("mosquitto is not installed (go tool task deps)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	ctx := t.Context()
	root, err := RepoRoot(ctx, ".")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := thirdPartySpec(ctx, quietLog(), root, t.TempDir(), defaultRepo, "mosquitto")
	if err != nil {
		if strings.Contains(err.Error(), "the image is tagged") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	r, err := spec.Files(HostPlatform())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto_passwd"} {
		if f, ok := r[p]; !ok || f.Mode != 0o755 {
			t.Errorf("%s: %+v", p, f)
		}
	}
	if f := r["/mosquitto/data"]; !f.Mode.IsDir() || f.UID != nonrootUID {
		t.Errorf("/mosquitto/data: %+v, want a directory owned by the image user", f)
	}
	base, err := BaseRootfs()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	extractRootfs(t, base, dir)
	extractRootfs(t, r, dir)
	if err := os.Chmod(filepath.Join(dir, "tmp"), fs.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	inImage := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir, Credential: &syscall.Credential{Uid: nonrootUID, Gid: nonrootGID}}
		return cmd
	}
	// mosquitto -h prints its usage and exits 3.
	out, _ := inImage("/usr/sbin/mosquitto", "-h").CombinedOutput()
	if !strings.Contains(string(out), "mosquitto version "+mosquittoVersion) {
		t.Errorf("mosquitto -h in the image:\n%s", out)
	}
	if out, err := inImage("/usr/bin/mosquitto_passwd", "-c", "-b", "/tmp/passwd", "sensor", "secret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd in the image: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tmp", "passwd"))
	if err != nil || !strings.HasPrefix(string(b), "sensor:$7$") {
		t.Errorf("password file %q %v", b, err)
	}
}
