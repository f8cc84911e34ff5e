#!/usr/bin/env bash
# Builds InfluxDB OSS 1.8.3 into <repo>/.bin/influxd, the InfluxDB that the
# integration tests and `task up` run: 1.8.3 is the newest OSS release
# buildable from the Go module proxy alone, and it serves the 2.x-compatible
# /api/v2/write and /health besides InfluxQL's /query.
# 70-80 s on a cold build cache, seconds with a warm one; skipped when
# .bin/influxd already reports 1.8.3 (install-go-tool.sh).
set -euo pipefail

version=1.8.3
# -X main.version makes `influxd version` and /ping report the version.
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-go-tool.sh" influxd version "^InfluxDB v${version} " \
	"github.com/influxdata/influxdb/cmd/influxd@v${version}" -ldflags "-X main.version=${version}"
