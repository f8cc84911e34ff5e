// Package devenv starts the real servers edgeflow runs against, on loopback
// with their own ports and data directories: NATS with JetStream (embedded),
// and InfluxDB 1.8.3, Mosquitto and Alertmanager as child processes. It is the one way the
// project starts servers, used by `task up` and by the integration tests; the
// project's own service binaries are started the same way (StartProcess) so
// that tests can SIGTERM and SIGKILL them.
//
// Child processes are stopped by PID (SIGTERM, then SIGKILL after a timeout)
// and die with the process that started them (Pdeathsig), so a crashed test
// run leaves nothing behind. Nothing here needs a fixed port: Mosquitto's
// 1883 and NATS' 4222 may be taken by a system service.
package devenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the module RepoRoot looks for.
const ModulePath = "github.com/edgeflow/edgeflow"

// ErrNotInstalled reports that a server binary is missing. The error wrapping
// it says which script installs the binary.
var ErrNotInstalled = errors.New("not installed")

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is not reserved: start the server soon, and prefer servers that pick
// their own port (NATSOptions.Port 0) where the caller can read it back.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n distinct free ports. They are held open together until
// all are found, so the same port is never returned twice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RepoRoot walks up from the working directory to the directory whose go.mod
// declares ModulePath. Tests run in their package's directory and `task`
// runs in the repository, so both find it.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if modulePath(filepath.Join(dir, "go.mod")) == ModulePath {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find repository root: no go.mod with module %s in %s or above", ModulePath, wd)
		}
	}
}

// modulePath returns the module path declared in a go.mod file, or "" if the
// file is missing or declares none.
func modulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

// TB is the part of testing.TB that RequireInstalled uses; it keeps the
// testing package out of binaries such as `task up`'s orchestrator.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// RequireInstalled ends a test that cannot start a server. A missing binary
// (ErrNotInstalled) skips the test on a developer machine but fails it in CI
// (environment variable CI set, as CI systems do), where it means the install
// step is broken and the test would otherwise pass without testing anything.
// Any other error fails the test.
func RequireInstalled(tb TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && !InCI() {
		tb.Skipf("%v (set CI=true to make this a failure)", err)
		return
	}
	tb.Fatalf("%v", err)
}

// InCI reports whether the environment variable CI is set to something other
// than false or 0.
func InCI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v != "" && v != "false" && v != "0"
}
