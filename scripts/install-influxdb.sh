#!/usr/bin/env bash
# Builds InfluxDB OSS 1.8.3 into <repo>/.bin/influxd, the InfluxDB that the
# integration tests and `task up` run (see shared recipe influxdb.md: 1.8.3 is
# the newest OSS release buildable from the Go module proxy alone, and it
# serves the 2.x-compatible /api/v2/write, /api/v2/query and /health).
#
# The build runs in a temporary directory with GOFLAGS and GOWORK cleared, so
# neither the project's go.mod nor its flags take part: influxd's 2020-era
# dependency graph must not leak into ours. Skipped when .bin/influxd already
# reports the wanted version. Takes 70-80 s cold, a few seconds with a warm
# build cache.
set -euo pipefail

version=1.8.3
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$repo/.bin"
bin="$bindir/influxd"

if [[ -x "$bin" ]] && "$bin" version 2>/dev/null | grep -q "^InfluxDB v${version} "; then
	echo "install-influxdb: $bin is InfluxDB $version (already installed)"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	echo "install-influxdb: go is not in PATH" >&2
	exit 1
fi

mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "install-influxdb: building InfluxDB $version (70-80 s on a cold build cache)"
(
	cd "$tmp"
	# -X main.version makes `influxd version` and /ping report the version.
	GOFLAGS= GOWORK=off GO111MODULE=on GOBIN="$bindir" \
		go install -ldflags "-X main.version=${version}" \
		"github.com/influxdata/influxdb/cmd/influxd@v${version}"
)

if ! "$bin" version | grep -q "^InfluxDB v${version} "; then
	echo "install-influxdb: $bin does not report version $version: $("$bin" version)" >&2
	exit 1
fi
echo "install-influxdb: installed $bin ($("$bin" version))"
