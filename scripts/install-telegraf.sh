#!/usr/bin/env bash
# Builds Telegraf 1.37.2 into <repo>/.bin/telegraf with only the plugins the
# bench's Telegraf leg uses (scripts/bench/telegraf.conf): the MQTT consumer
# input, the JSON parser, the basicstats aggregator and the InfluxDB v2
# output. Telegraf's "custom" build tag leaves every other plugin out, so the
# build takes about 40 s cold instead of many minutes, and the binary is
# small. Skipped when .bin/telegraf already reports 1.37.2 (install-go-tool.sh).
set -euo pipefail

version=1.37.2
tags="custom,inputs.mqtt_consumer,aggregators.basicstats,outputs.influxdb_v2,parsers.json"
# -X internal.Version makes `telegraf version` report the version (it says
# "unknown" otherwise), which the skip relies on.
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-go-tool.sh" telegraf version "^Telegraf ${version}\$" \
	"github.com/influxdata/telegraf/cmd/telegraf@v${version}" -tags "$tags" \
	-ldflags "-X github.com/influxdata/telegraf/internal.Version=${version}"
