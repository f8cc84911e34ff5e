package service

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// The build stamps these with -ldflags, in every place that builds the
// binaries (Taskfile.yml `build`, scripts/images, the end-to-end tests):
//
//	-X github.com/edgeflow/edgeflow/internal/service.version=<git describe>
//	-X github.com/edgeflow/edgeflow/internal/service.revision=<commit>
//
// Left empty (go run, go test, a plain go build) Version falls back to what
// the Go toolchain recorded (debug.ReadBuildInfo).
var version, revision string

// VersionPackage is the import path the -X flags name.
const VersionPackage = "github.com/edgeflow/edgeflow/internal/service"

// StampFlags are the -ldflags that stamp version and revision, for the Go
// programs that build the services (scripts/images). Neither may hold a
// space or a quote (a git describe or commit hash never does).
func StampFlags(version, revision string) string {
	return "-X " + VersionPackage + ".version=" + version + " -X " + VersionPackage + ".revision=" + revision
}

// Build is what a binary knows of the source it was built from.
type Build struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goversion"`
}

// Version returns the stamped version and revision; an unstamped one is read
// from the build information the Go toolchain embeds: the main module's
// version (a pseudo-version with +dirty from VCS since Go 1.24, "(devel)"
// otherwise) and vcs.revision. What neither says is "unknown", so the labels
// of edgeflow_build_info are never empty.
func Version() Build {
	info, _ := debug.ReadBuildInfo()
	return versionOf(version, revision, info)
}

// versionOf is Version with the stamp and the build information given
// (info nil: none).
func versionOf(version, revision string, info *debug.BuildInfo) Build {
	b := Build{Version: version, Revision: revision, GoVersion: runtime.Version()}
	if info != nil {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && b.Revision == "" {
				b.Revision = s.Value
			}
		}
	}
	if b.Version == "" {
		b.Version = "unknown"
	}
	if b.Revision == "" {
		b.Revision = "unknown"
	}
	return b
}

// PrintVersion writes `<name> <version> (revision <revision>, <go version>)`,
// what `<binary> --version` prints.
func PrintVersion(w io.Writer, name string) {
	b := Version()
	fmt.Fprintf(w, "%s %s (revision %s, %s)\n", name, b.Version, b.Revision, b.GoVersion)
}

// newBuildInfo is edgeflow_build_info: always 1, the build in its labels, so
// a query can join any series with the version that produced it.
func newBuildInfo() prometheus.Collector {
	b := Version()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgeflow_build_info",
		Help:        "Always 1; the labels say which build of edgeflow runs.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	}, func() float64 { return 1 })
}
