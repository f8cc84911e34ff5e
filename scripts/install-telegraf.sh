#!/usr/bin/env bash
# Builds Telegraf 1.37.2 into <repo>/.bin/telegraf with only the plugins the
# bench's Telegraf leg uses (scripts/bench/telegraf.conf.tmpl): the MQTT
# consumer input, the JSON parser, the basicstats aggregator and the
# InfluxDB v2 output. Telegraf's "custom" build tag leaves every other plugin
# out, so the build takes a minute instead of many and the binary is small.
#
# The build runs in a temporary directory with GOFLAGS and GOWORK cleared, so
# neither the project's go.mod nor its flags take part: Telegraf's dependency
# graph must not leak into ours. Skipped when .bin/telegraf already reports
# the wanted version. Takes about 40 s cold, a few seconds with a warm build
# cache.
set -euo pipefail

version=1.37.2
tags="custom,inputs.mqtt_consumer,aggregators.basicstats,outputs.influxdb_v2,parsers.json"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bindir="$repo/.bin"
bin="$bindir/telegraf"

if [[ -x "$bin" ]] && "$bin" version 2>/dev/null | grep -q "^Telegraf ${version}\$"; then
	echo "install-telegraf: $bin is Telegraf $version (already installed)"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	echo "install-telegraf: go is not in PATH" >&2
	exit 1
fi

mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "install-telegraf: building Telegraf $version with $tags (about 40 s on a cold build cache)"
(
	cd "$tmp"
	# -X internal.Version makes `telegraf version` report the version (it
	# says "unknown" otherwise), which the check above relies on.
	GOFLAGS= GOWORK=off GO111MODULE=on GOBIN="$bindir" \
		go install -tags "$tags" \
		-ldflags "-X github.com/influxdata/telegraf/internal.Version=${version}" \
		"github.com/influxdata/telegraf/cmd/telegraf@v${version}"
)

if ! "$bin" version | grep -q "^Telegraf ${version}\$"; then
	echo "install-telegraf: $bin does not report version $version: $("$bin" version)" >&2
	exit 1
fi
echo "install-telegraf: installed $bin ($("$bin" version))"
