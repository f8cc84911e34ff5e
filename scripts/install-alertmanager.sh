#!/usr/bin/env bash
# Builds Prometheus Alertmanager v0.35.0 into <repo>/.bin/alertmanager, the
# Alertmanager that the notifier's alertmanager channel is tested against
# (devenv.StartAlertmanager, notifier/channel; docs/alerting.md).
#
# `go install github.com/prometheus/alertmanager/cmd/alertmanager@v0.35.0`
# does not work: the module's ui/web.go embeds ui/app/dist, the web UI built
# with npm, which the module zip leaves out ("pattern app/dist: no matching
# files found"). So the build runs in a copy of the module from the module
# cache, with a one-page stand-in for each UI (the API, all the tests use,
# is untouched), in a temporary directory with GOFLAGS and GOWORK cleared:
# neither the project's go.mod nor its flags take part. The version is
# stamped as upstream's Makefile (promu) does, so `alertmanager --version`
# reports it; skipped when .bin/alertmanager already reports the wanted
# version. Takes about 3 minutes on a cold build cache on 2 cores, seconds
# with a warm one.
set -euo pipefail

version=0.35.0
module=github.com/prometheus/alertmanager
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$repo/.bin"
bin="$bindir/alertmanager"

reports() { "$1" --version 2>&1 | grep -q "^alertmanager, version ${version} "; }

if [[ -x "$bin" ]] && reports "$bin"; then
	echo "install-alertmanager: $bin is Alertmanager $version (already installed)"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	echo "install-alertmanager: go is not in PATH" >&2
	exit 1
fi

mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

echo "install-alertmanager: building Alertmanager $version (about 3 min on a cold build cache)"
start=$SECONDS
export GOFLAGS=-buildvcs=false GOWORK=off GO111MODULE=on CGO_ENABLED=0
# The module cache as first proxy lets a warm cache build offline.
export GOPROXY="file://$(go env GOMODCACHE)/cache/download,$(go env GOPROXY)"
(
	cd "$tmp"
	src=$(go mod download -json "${module}@v${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -f "$src/cmd/alertmanager/main.go" ]] || {
		echo "install-alertmanager: ${module}@v${version} not in the module cache ($src)" >&2
		exit 1
	}
	cp -R "$src" am
	chmod -R u+w am
	for ui in elm mantine; do
		mkdir -p "am/ui/app/dist/$ui"
		printf '<!doctype html><title>Alertmanager</title><p>The web UI is not built into this Alertmanager (edgeflow test build); the API is at /api/v2/.</p>\n' \
			>"am/ui/app/dist/$ui/index.html"
	done
	cd am
	p=github.com/prometheus/common/version
	go build -trimpath -o "$bin.new" -ldflags "-s -w -X $p.Version=$version -X $p.Revision=v$version -X $p.Branch=HEAD -X $p.BuildUser=edgeflow -X $p.BuildDate=unknown" ./cmd/alertmanager
)
if ! reports "$bin.new"; then
	echo "install-alertmanager: the build does not report version $version: $("$bin.new" --version 2>&1 | head -n1)" >&2
	rm -f "$bin.new"
	exit 1
fi
mv "$bin.new" "$bin"
echo "install-alertmanager: installed $bin ($("$bin" --version 2>&1 | head -n1)) in $((SECONDS - start)) s"
