// Package scripts holds the tests of the shell installers beside it.
package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeAptGet behaves like apt-get towards its lock: a second apt-get while one
// runs fails at once with apt's own message and exit code, as Debian's does
// ("Could not get lock /var/lib/apt/lists/lock. It is held by process ...").
// Each run holds the lock long enough for a concurrent one to collide.
const fakeAptGet = `#!/bin/bash
exec 9>"$FAKE_APT/lock"
if ! flock -n 9; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
  exit 100
fi
echo "$*" >>"$FAKE_APT/calls"
sleep 1
if [[ " $* " == *" install "* ]]; then
  for a in "$@"; do
    case $a in -*|install|DPkg::*|Dpkg::*) ;; *) touch "$FAKE_APT/installed/$a" ;; esac
  done
fi
`

// fakeDpkgQuery answers the two status formats the installers ask for.
const fakeDpkgQuery = `#!/bin/bash
pkg=${@: -1}
[[ -e "$FAKE_APT/installed/$pkg" ]] || exit 1
case "$*" in
  *'db:Status-Status'*) printf installed ;;
  *) printf 'install ok installed' ;;
esac
`

// TestInstallersRunConcurrentlyOnAFreshMachine runs the two package
// installers at once on a machine with nothing installed, as the test task's
// dependencies do: both must succeed, every package must end installed, and a
// second run must not touch apt at all. apt-get and dpkg-query are fakes on
// PATH that keep their state in a temporary folder and refuse a concurrent
// apt-get as apt does.
func TestInstallersRunConcurrentlyOnAFreshMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the dev cluster's installer runs as root only")
	}
	for _, tool := range []string{"flock", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	fake := t.TempDir()
	bin := filepath.Join(fake, "bin")
	for _, dir := range []string{bin, filepath.Join(fake, "installed")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"apt-get": fakeAptGet, "dpkg-query": fakeDpkgQuery} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "FAKE_APT="+fake, "PATH="+bin+":"+os.Getenv("PATH"),
		"EDGEFLOW_APT_LOCK="+filepath.Join(fake, "install.lock"))

	installers := [][]string{
		{"install-deps.sh", "broker", "chromium"}, // what task test's deps asks for
		{"devcluster/install-deps.sh"},            // what devcluster:build's deps asks for
	}
	run := func() []string {
		outs := make([]string, len(installers))
		var wg sync.WaitGroup
		for i, args := range installers {
			wg.Go(func() {
				cmd := exec.Command("bash", args...)
				cmd.Env = env
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
				}
				outs[i] = out.String()
			})
		}
		wg.Wait()
		return outs
	}

	run()
	want := []string{"mosquitto", "mosquitto-clients", "chromium", "containerd", "runc", "etcd-server", "etcd-client"}
	for _, pkg := range want {
		if _, err := os.Stat(filepath.Join(fake, "installed", pkg)); err != nil {
			t.Errorf("%s not installed after both installers ran", pkg)
		}
	}
	calls := readLines(t, filepath.Join(fake, "calls"))
	if t.Failed() {
		t.Fatalf("apt-get calls:\n%s", strings.Join(calls, "\n"))
	}

	outs := run()
	if again := readLines(t, filepath.Join(fake, "calls")); len(again) != len(calls) {
		t.Errorf("a second run with everything installed called apt-get again: %q\n%s",
			again[len(calls):], strings.Join(outs, "\n"))
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(strings.Split(string(b), "\n"), func(s string) bool { return s == "" })
}
