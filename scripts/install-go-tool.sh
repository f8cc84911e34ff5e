#!/usr/bin/env bash
# install-go-tool.sh NAME VERSION-ARG EXPECT PACKAGE@VERSION [go install flags...]
#
# Builds a third-party Go command into <repo>/.bin/NAME with `go install`, in
# a temporary directory with GOFLAGS and GOWORK cleared, so neither the
# project's go.mod nor its flags take part: the tool's dependency graph must
# not leak into ours. Skipped when `.bin/NAME VERSION-ARG` already prints a
# line matching EXPECT (an extended regular expression); checked the same
# way after the build. scripts/install-influxdb.sh and install-telegraf.sh
# call it with their versions, flags and build tags.
set -euo pipefail

if (($# < 4)); then
	echo "usage: install-go-tool.sh NAME VERSION-ARG EXPECT PACKAGE@VERSION [go install flags...]" >&2
	exit 2
fi
name=$1 version_arg=$2 expect=$3 pkg=$4
shift 4
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$repo/.bin"
bin="$bindir/$name"

reports() { "$bin" "$version_arg" 2>&1 | grep -Eq "$expect"; }

if [[ -x "$bin" ]] && reports; then
	echo "install: $bin is ${pkg#*@} (already installed)"
	exit 0
fi
if ! command -v go >/dev/null 2>&1; then
	echo "install: go is not in PATH" >&2
	exit 1
fi

mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install: building $pkg into $bin"
(
	cd "$tmp"
	GOFLAGS= GOWORK=off GO111MODULE=on GOBIN="$bindir" go install "$@" "$pkg"
)
if ! reports; then
	echo "install: $bin does not report ${pkg#*@}: $("$bin" "$version_arg" 2>&1 | head -1)" >&2
	exit 1
fi
echo "install: installed $bin ($("$bin" "$version_arg" 2>&1 | head -1))"
