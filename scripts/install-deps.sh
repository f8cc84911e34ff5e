#!/usr/bin/env bash
# Installs the Debian packages that the dev environment (`task up`) and the
# integration tests start as real servers: the Mosquitto broker and its
# command-line clients. Extra package names may be given as arguments
# (for example `scripts/install-deps.sh chromium`, which `task test` does for
# the dashboard's browser tests).
#
# Idempotent: apt is only touched (update, then install) when something is
# missing, so running it before every `task up` or test run costs nothing.
#
# Debian's mosquitto package may start a system broker on port 1883 where an
# init system is present. The tests start their own broker on a free loopback
# port with manifests/base/mosquitto/mosquitto.conf (see internal/devenv), but
# `task up` serves MQTT on 1883 itself (NATS's MQTT listener), so it installs
# only the clients: `scripts/install-deps.sh --clients-only`.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# installed reports whether a Debian package is installed.
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

broker=1
if [[ "${1:-}" == "--clients-only" ]]; then
	broker=0
	shift
fi

missing=()
# Non-root users often lack /usr/sbin in PATH, where the broker lives.
if ((broker)) && ! command -v mosquitto >/dev/null 2>&1 && [[ ! -x /usr/sbin/mosquitto ]]; then
	missing+=(mosquitto)
fi
if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
	missing+=(mosquitto-clients)
fi
for pkg in "$@"; do
	if ! installed "$pkg"; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: nothing to do (mosquitto-clients$( ((broker)) && echo ', mosquitto')${*:+, $*} present)"
	exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
	# sudo resets the environment, so DEBIAN_FRONTEND is passed explicitly.
	sudo=(sudo env DEBIAN_FRONTEND=noninteractive)
fi

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"

if command -v ss >/dev/null 2>&1 && ss -ltn 'sport = :1883' 2>/dev/null | grep -q LISTEN; then
	echo "install-deps: note: something (probably Debian's mosquitto service) listens on 1883;" \
		"edgeflow's tests and 'task up' use their own ports and do not need it."
fi
