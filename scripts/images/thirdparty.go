package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// The third-party images the dev cluster runs (it has no internet to pull the
// upstream ones). Their versions are their tags: manifests/components/local-images
// names them, so changing one here means changing it there (a test compares).
const (
	natsVersion      = "2.15.2"
	mosquittoVersion = "2.0.11"
	influxdbVersion  = "1.8.3"
)

// ThirdParty are the names -thirdparty adds, in build order.
var ThirdParty = []string{"nats", "mosquitto", "influxdb"}

// thirdPartySpec returns the spec of a third-party image, building or
// collecting its files for the host platform into cache.
func thirdPartySpec(ctx context.Context, log *slog.Logger, root, cache, repo, imgName string) (*Spec, error) {
	host := HostPlatform()
	switch imgName {
	case "nats":
		bin, err := goInstall(ctx, log, cache, "github.com/nats-io/nats-server/v2@v"+natsVersion, "nats-server", nil,
			[]string{"--version"}, "v"+natsVersion)
		if err != nil {
			return nil, err
		}
		return &Spec{
			Name:       "nats",
			Ref:        repo + "/nats:" + natsVersion,
			Entrypoint: []string{"/nats-server"},
			Env:        []string{"PATH=/"},
			Ports:      []string{"4222/tcp", "6222/tcp", "8222/tcp"},
			Labels:     upstreamLabels("https://github.com/nats-io/nats-server", natsVersion),
			Platforms:  []Platform{host},
			Files: func(Platform) (Rootfs, error) {
				r := Rootfs{}
				if err := r.AddFile(bin, "/nats-server", 0o755); err != nil {
					return nil, err
				}
				// JetStream's store_dir; a volume in the cluster.
				r.Add(File{Path: "/data", Mode: fs.ModeDir | 0o755, UID: nonrootUID, GID: nonrootGID})
				return r, nil
			},
		}, nil

	case "influxdb":
		// -X main.version makes `influxd version` and /ping report it.
		bin, err := goInstall(ctx, log, cache, "github.com/influxdata/influxdb/cmd/influxd@v"+influxdbVersion, "influxd",
			[]string{"-X main.version=" + influxdbVersion}, []string{"version"}, "InfluxDB v"+influxdbVersion+" ")
		if err != nil {
			return nil, err
		}
		return &Spec{
			Name:       "influxdb",
			Ref:        repo + "/influxdb:" + influxdbVersion,
			Entrypoint: []string{"/influxd"},
			// The server settings the tests run with (devenv.InfluxServerEnv
			// says why each).
			Env: append([]string{
				"PATH=/",
				"INFLUXDB_REPORTING_DISABLED=true",
				"INFLUXDB_META_DIR=/var/lib/influxdb/meta",
				"INFLUXDB_DATA_DIR=/var/lib/influxdb/data",
				"INFLUXDB_DATA_WAL_DIR=/var/lib/influxdb/wal",
			}, devenv.InfluxServerEnv...),
			Ports:     []string{"8086/tcp"},
			Labels:    upstreamLabels("https://github.com/influxdata/influxdb", influxdbVersion),
			Platforms: []Platform{host},
			Files: func(Platform) (Rootfs, error) {
				r := Rootfs{}
				if err := r.AddFile(bin, "/influxd", 0o755); err != nil {
					return nil, err
				}
				r.Add(File{Path: "/var/lib/influxdb", Mode: fs.ModeDir | 0o755, UID: nonrootUID, GID: nonrootGID})
				return r, nil
			},
		}, nil

	case "mosquitto":
		if err := ensureMosquitto(ctx, log, root); err != nil {
			return nil, err
		}
		bins := []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto_passwd"}
		libs := map[string]bool{}
		for _, b := range bins {
			ls, err := SharedLibraries(ctx, b)
			if err != nil {
				return nil, err
			}
			for _, l := range ls {
				libs[l] = true
			}
		}
		return &Spec{
			Name:       "mosquitto",
			Ref:        repo + "/mosquitto:" + mosquittoVersion,
			Entrypoint: []string{"/usr/sbin/mosquitto"},
			Env:        []string{"PATH=/usr/sbin:/usr/bin"},
			Ports:      []string{"1883/tcp"},
			Labels:     upstreamLabels("https://github.com/eclipse/mosquitto", mosquittoVersion),
			Platforms:  []Platform{host},
			Files: func(Platform) (Rootfs, error) {
				r := Rootfs{}
				for _, b := range bins {
					if err := r.AddFile(b, b, 0o755); err != nil {
						return nil, err
					}
				}
				for l := range libs {
					if err := r.AddFile(l, l, 0o755); err != nil {
						return nil, err
					}
				}
				// Where manifests/base/mosquitto.yaml mounts config and data.
				r.Add(Dir("/mosquitto", 0o755))
				r.Add(Dir("/mosquitto/config", 0o755))
				r.Add(File{Path: "/mosquitto/data", Mode: fs.ModeDir | 0o755, UID: nonrootUID, GID: nonrootGID})
				return r, nil
			},
		}, nil
	}
	return nil, fmt.Errorf("unknown third-party image %q", imgName)
}

func upstreamLabels(source, version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":  source,
		"org.opencontainers.image.version": version,
	}
}

// goInstall builds a Go command at an exact module version for the host into
// cache/<binary name>-<version>/, from the module's own go.mod: a temporary
// working directory and cleared GOFLAGS/GOWORK keep edgeflow's go.mod and
// flags out of it. It tries a static build (CGO_ENABLED=0) and refuses
// anything else: a dynamically linked Go binary would need the host's libc
// in the image. The result must print want when run with versionArgs.
func goInstall(ctx context.Context, log *slog.Logger, cache, pkgAtVersion, bin string, ldflags, versionArgs []string, want string) (string, error) {
	version := pkgAtVersion[strings.LastIndex(pkgAtVersion, "@")+1:]
	gobin, err := filepath.Abs(filepath.Join(cache, bin+"-"+version))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(gobin, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "edgeflow-images-goinstall-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	log.Info("building third-party binary (a minute or more the first time, seconds from the build cache)", "package", pkgAtVersion)
	args := []string{"install", "-trimpath", "-ldflags=" + strings.Join(append([]string{"-s", "-w"}, ldflags...), " "), pkgAtVersion}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = tmp
	cmd.Env = append(withoutGoTarget(os.Environ()),
		"GOFLAGS=-buildvcs=false", "GOWORK=off", "GO111MODULE=on", "CGO_ENABLED=0", "GOBIN="+gobin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	path := filepath.Join(gobin, bin)
	got, err := exec.CommandContext(ctx, path, versionArgs...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", path, strings.Join(versionArgs, " "), err, got)
	}
	if !strings.Contains(string(got), want) {
		return "", fmt.Errorf("%s reports %q, want %q", path, strings.TrimSpace(string(got)), want)
	}
	log.Info("built third-party binary", "binary", path, "version", strings.TrimSpace(string(got)), "took", time.Since(start).Round(time.Millisecond))
	return path, nil
}

// withoutGoTarget drops GOOS/GOARCH/GOARM from an environment: go install
// with GOBIN refuses to cross-compile, and these images are for the host.
func withoutGoTarget(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if strings.HasPrefix(e, "GOOS=") || strings.HasPrefix(e, "GOARCH=") || strings.HasPrefix(e, "GOARM=") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// ensureMosquitto installs Debian's mosquitto package through the repo's
// install script when the broker is missing, and checks that it is the
// upstream version the image is tagged with.
func ensureMosquitto(ctx context.Context, log *slog.Logger, root string) error {
	if _, err := os.Stat("/usr/sbin/mosquitto"); errors.Is(err, fs.ErrNotExist) {
		log.Info("installing Debian's mosquitto package", "script", "scripts/install-deps.sh")
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "install-deps.sh"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install mosquitto: %w", err)
		}
	}
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", "mosquitto").Output()
	if err != nil {
		return fmt.Errorf("dpkg-query mosquitto: %w (is /usr/sbin/mosquitto from Debian's package?)", err)
	}
	if got := UpstreamVersion(string(out)); got != mosquittoVersion {
		return fmt.Errorf("this host's mosquitto package is %s (upstream %s); the image is tagged %s and manifests/components/local-images expects that version",
			out, got, mosquittoVersion)
	}
	return nil
}

// UpstreamVersion is a Debian version without epoch and Debian revision:
// 2.0.11-1.2+deb12u2 -> 2.0.11.
func UpstreamVersion(debian string) string {
	v := strings.TrimSpace(debian)
	if i := strings.Index(v, ":"); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndex(v, "-"); i >= 0 {
		v = v[:i]
	}
	return v
}

// SharedLibraries lists the absolute paths of every shared library a
// dynamically linked binary loads, as ldd reports them, the dynamic loader
// included: the image holds each at that path (the loader searches the
// multiarch directories by default, so no ld.so.cache is needed).
func SharedLibraries(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	return parseLdd(bin, out)
}

func parseLdd(bin string, out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.Contains(line, "linux-vdso") || strings.Contains(line, "linux-gate") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: a library is missing: %s", bin, line)
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		case strings.Contains(line, "statically linked"):
		default:
			return nil, fmt.Errorf("ldd %s: cannot read line %q", bin, line)
		}
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("ldd %s: no libraries listed (not a dynamic binary?)", bin)
	}
	return libs, nil
}
