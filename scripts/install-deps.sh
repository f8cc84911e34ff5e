#!/usr/bin/env bash
# The one place edgeflow installs Debian packages. Every task that needs a
# package comes here, so that installs never run two at a time.
#
# usage: install-deps.sh [--check] [SET|PACKAGE ...]   (no argument: broker)
#   sets:  clients  mosquitto-clients (task up: its MQTT broker is NATS's own listener)
#          broker   mosquitto and mosquitto-clients (the tests' real broker)
#          cluster  the dev cluster's packages (scripts/devcluster/install-deps.sh --list)
#          cluster-k3s  the same for its K3s layout (LAYOUT=k3s: adds busybox-static)
#   any other word is a Debian package name (e.g. chromium, for the browser tests).
#   --check only reports what is missing, and exits 1 if anything is.
#
# Idempotent: apt is touched (update, then one install of everything missing)
# only when something is missing. Serial: the whole update-and-install holds
# a lock (EDGEFLOW_APT_LOCK), so a second installer started meanwhile waits
# and then finds its packages present, and apt-get itself waits for dpkg's
# lock rather than failing on it: two apt-get at once fail on apt's lock.
#
# Debian's mosquitto package may start a system broker on port 1883 where an
# init system is present. The tests start their own broker on a free loopback
# port (devenv), and `task up` serves MQTT on 1883 itself.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

check=0
if [[ "${1:-}" == "--check" ]]; then
	check=1
	shift
fi
(($# > 0)) || set -- broker

wanted=()
for word in "$@"; do
	case $word in
	clients) wanted+=(mosquitto-clients) ;;
	broker) wanted+=(mosquitto mosquitto-clients) ;;
	cluster)
		list=$(bash "$here/devcluster/install-deps.sh" --list)
		mapfile -t -O "${#wanted[@]}" wanted <<<"$list"
		;;
	cluster-k3s)
		list=$(DEVCLUSTER_LAYOUT=k3s bash "$here/devcluster/install-deps.sh" --list)
		mapfile -t -O "${#wanted[@]}" wanted <<<"$list"
		;;
	*) wanted+=("$word") ;;
	esac
done

# missing lists the wanted packages dpkg does not have installed.
missing() {
	local pkg
	for pkg in "${wanted[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
	done | sort -u
}

mapfile -t todo < <(missing)
if ((${#todo[@]} == 0)); then
	echo "install-deps: nothing to do (${wanted[*]} installed)"
	exit 0
fi
if ((check)); then
	echo "install-deps: missing Debian packages: ${todo[*]} (run scripts/install-deps.sh $*)" >&2
	exit 1
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
	# sudo resets the environment, so DEBIAN_FRONTEND is passed explicitly.
	sudo=(sudo env DEBIAN_FRONTEND=noninteractive)
fi

lock=${EDGEFLOW_APT_LOCK:-${TMPDIR:-/tmp}/edgeflow-apt-install.lock}
exec 9>>"$lock"
if ! flock -n 9; then
	echo "install-deps: another install is running; waiting for it ($lock)"
	flock 9
fi
# What another installer did while this one waited counts.
mapfile -t todo < <(missing)
if ((${#todo[@]} > 0)); then
	echo "install-deps: installing ${todo[*]}"
	"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
	"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${todo[@]}"
fi
flock -u 9

if [[ " ${todo[*]} " == *" mosquitto "* ]] && command -v ss >/dev/null 2>&1 &&
	ss -ltn 'sport = :1883' 2>/dev/null | grep -q LISTEN; then
	echo "install-deps: note: something (probably Debian's mosquitto service) listens on 1883;" \
		"edgeflow's tests and 'task up' use their own ports and do not need it."
fi
