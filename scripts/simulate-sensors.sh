#!/usr/bin/env bash
# simulate-sensors.sh: the sensors `task up` runs by default. Eight devices at
# three sites publish over MQTT QoS 1 in all three payload forms the pipeline
# accepts (see docs/architecture.md, "Devices and MQTT"):
#
#   JSON object  sensors/{site}/{device}           {"ts":<ms>,"seq":<n>,"temperature":21.5,...}
#   bare number  sensors/{site}/{device}/{metric}  21.5
#   SenML pack   sensors/{site}/{device}           [{"bn":"urn:dev:sim:wh-02:","bt":<s>,"n":"temperature","u":"Cel","v":21.5},...]
#
# Values drift as bounded random walks; warehouse/wh-01's temperature jumps
# above 40 °C for EDGEFLOW_SIM_SPIKE_FOR seconds every EDGEFLOW_SIM_SPIKE_EVERY
# seconds (an alert to fire and resolve), any temperature glitches now and
# then, and lab/lab-02 goes silent after EDGEFLOW_SIM_SILENT_AFTER seconds
# (a device-offline alert).
#
# Each topic has one long-lived `mosquitto_pub -l` fed through a pipe, so a
# tick costs no process spawn; mosquitto_pub reconnects by itself and resends
# what the broker had not acknowledged. Maths is bash integers in tenths.
#
# Environment (defaults in brackets):
#   EDGEFLOW_MQTT_HOST [127.0.0.1]     EDGEFLOW_MQTT_PORT [1883]
#   EDGEFLOW_MQTT_USERNAME, EDGEFLOW_MQTT_PASSWORD   optional credentials
#   EDGEFLOW_SIM_INTERVAL [1]          seconds between readings (decimals allowed)
#   EDGEFLOW_SIM_SILENT_AFTER [60]     seconds after which lab-02 stops (0 = never)
#   EDGEFLOW_SIM_SPIKE_EVERY [180]     seconds between wh-01 temperature spikes
#   EDGEFLOW_SIM_SPIKE_FOR [30]        seconds each spike lasts
#   EDGEFLOW_SIM_CLIENT_PREFIX [sim]   MQTT client ids are <prefix>-<device>[-<metric>]
#   EDGEFLOW_SIM_SITE_PREFIX []        put before every site name (north- publishes north-lab, ...)
#
# seq starts at the number of intervals since the Unix epoch, so it keeps
# growing across restarts and a restarted simulator is not mistaken for
# redelivery by ingest's deduplication (device + seq).
#
# SIGTERM or SIGINT closes every publisher (which flushes what it holds) and exits 0.
set -uo pipefail

die() {
	echo "simulate-sensors: $*" >&2
	exit 2
}

HOST=${EDGEFLOW_MQTT_HOST:-127.0.0.1}
PORT=${EDGEFLOW_MQTT_PORT:-1883}
INTERVAL=${EDGEFLOW_SIM_INTERVAL:-1}
SILENT_AFTER=${EDGEFLOW_SIM_SILENT_AFTER:-60}
SPIKE_EVERY=${EDGEFLOW_SIM_SPIKE_EVERY:-180}
SPIKE_FOR=${EDGEFLOW_SIM_SPIKE_FOR:-30}
CLIENT_PREFIX=${EDGEFLOW_SIM_CLIENT_PREFIX:-sim}
SITE_PREFIX=${EDGEFLOW_SIM_SITE_PREFIX:-}
USERNAME=${EDGEFLOW_MQTT_USERNAME:-}
PASSWORD=${EDGEFLOW_MQTT_PASSWORD:-}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
[[ $HOST =~ ^[A-Za-z0-9._:-]+$ ]] || die "EDGEFLOW_MQTT_HOST=$HOST: not a host name or address"
if ! is_uint "$PORT" || ((PORT < 1 || PORT > 65535)); then
	die "EDGEFLOW_MQTT_PORT=$PORT: want 1..65535"
fi
[[ $INTERVAL =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "EDGEFLOW_SIM_INTERVAL=$INTERVAL: want seconds, e.g. 1 or 0.5"
# The interval in milliseconds, for seq and for the sanity check below.
INTERVAL_MS=$(awk -v s="$INTERVAL" 'BEGIN { printf "%d", s * 1000 }')
((INTERVAL_MS >= 10)) || die "EDGEFLOW_SIM_INTERVAL=$INTERVAL: want at least 0.01"
is_uint "$SILENT_AFTER" || die "EDGEFLOW_SIM_SILENT_AFTER=$SILENT_AFTER: want whole seconds (0 = never silent)"
if ! is_uint "$SPIKE_EVERY" || ! is_uint "$SPIKE_FOR" || ((SPIKE_FOR == 0 || SPIKE_FOR >= SPIKE_EVERY)); then
	die "EDGEFLOW_SIM_SPIKE_EVERY=$SPIKE_EVERY, _SPIKE_FOR=$SPIKE_FOR: want whole seconds, 0 < FOR < EVERY"
fi
[[ $CLIENT_PREFIX =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "EDGEFLOW_SIM_CLIENT_PREFIX=$CLIENT_PREFIX: want 1..40 of [A-Za-z0-9_-]"
[[ $SITE_PREFIX =~ ^[A-Za-z0-9_-]{0,40}$ ]] || die "EDGEFLOW_SIM_SITE_PREFIX=$SITE_PREFIX: want up to 40 of [A-Za-z0-9_-]"

ensure_mosquitto_pub() {
	command -v mosquitto_pub >/dev/null 2>&1 && return
	echo "simulate-sensors: mosquitto_pub is missing; installing mosquitto-clients" >&2
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install mosquitto-clients first"
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update || die "apt-get update failed"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto-clients ||
		die "could not install mosquitto-clients"
	command -v mosquitto_pub >/dev/null 2>&1 || die "mosquitto_pub still missing after the install"
}
ensure_mosquitto_pub

# The devices: site, device, payload form, metrics.
DEVICES=(
	"greenhouse gh-01 json temperature,humidity"
	"greenhouse gh-02 json temperature,humidity"
	"greenhouse gh-03 bare temperature,humidity"
	"warehouse wh-01 json temperature,humidity"
	"warehouse wh-02 senml temperature,humidity"
	"lab lab-01 json temperature,humidity,pressure"
	"lab lab-02 json temperature"
	"lab lab-03 bare temperature"
)
SPIKE_DEVICE=wh-01
SILENT_DEVICE=lab-02

# Walk bounds in tenths: low, high, largest step per reading.
declare -A LOW=([temperature]=0 [humidity]=200 [pressure]=9800)
declare -A HIGH=([temperature]=350 [humidity]=950 [pressure]=10400)
declare -A STEP=([temperature]=2 [humidity]=5 [pressure]=3)
declare -A UNIT=([temperature]=Cel [humidity]=%RH [pressure]=hPa)
# Typical values per site, in tenths.
declare -A TYPICAL=(
	[greenhouse.temperature]=240 [greenhouse.humidity]=650
	[warehouse.temperature]=150 [warehouse.humidity]=400
	[lab.temperature]=210 [lab.humidity]=450 [lab.pressure]=10130
)

declare -A VALUE # "device.metric" -> current value in tenths
declare -A SEQ   # device -> next seq
declare -A MID   # "device.metric" -> the value the walk is pulled back to
declare -A FD    # topic -> write end of its mosquitto_pub's stdin
declare -A PID   # topic -> mosquitto_pub's pid
declare -A STARTED # topic -> SECONDS of its last (re)start
declare -A CLIENT  # topic -> MQTT client id
declare -A SILENCED # device -> 1 once it went silent

AUTH=()
if [[ -n $USERNAME ]]; then
	AUTH=(-u "$USERNAME")
	[[ -n $PASSWORD ]] && AUTH+=(-P "$PASSWORD")
fi

# start_pub TOPIC: one mosquitto_pub publishing each line written to FD[TOPIC].
start_pub() {
	local topic=$1 fd f
	# The child closes the other publishers' pipes it inherited, or closing
	# one of those would never reach its mosquitto_pub as end of input.
	exec {fd}> >(
		for f in "${FD[@]}"; do exec {f}>&-; done
		exec mosquitto_pub -h "$HOST" -p "$PORT" "${AUTH[@]}" -q 1 -i "${CLIENT[$topic]}" -t "$topic" -l
	)
	FD[$topic]=$fd
	PID[$topic]=$!
	STARTED[$topic]=$SECONDS
}

# stop_pub TOPIC: close its stdin; mosquitto_pub publishes what it read and exits.
stop_pub() {
	local topic=$1 fd=${FD[$1]:-}
	[[ -n $fd ]] && exec {fd}>&-
	unset "FD[$topic]"
}

# publish TOPIC LINE: hand LINE to the topic's mosquitto_pub, restarting one
# that exited (it exits when the broker is unreachable at connect) at most
# every 5 s; a line meanwhile is dropped, as a device without network would.
publish() {
	local topic=$1 line=$2
	if [[ -n ${FD[$topic]:-} ]] && ! kill -0 "${PID[$topic]}" 2>/dev/null; then
		stop_pub "$topic"
	fi
	if [[ -z ${FD[$topic]:-} ]]; then
		((SECONDS - ${STARTED[$topic]:--5} >= 5)) || return 0
		start_pub "$topic"
	fi
	printf '%s\n' "$line" 2>/dev/null 1>&"${FD[$topic]}" || stop_pub "$topic"
}

# dec TENTHS: REPLY is the number with one decimal.
dec() {
	local v=$1 sign=
	if ((v < 0)); then sign=-; v=$((-v)); fi
	REPLY="$sign$((v / 10)).$((v % 10))"
}

# walk KEY METRIC: one bounded random-walk step, pulled gently back to MID.
walk() {
	local key=$1 metric=$2 step=${STEP[$2]} v=${VALUE[$1]}
	v=$((v + RANDOM % (2 * step + 1) - step))
	local mid=${MID[$key]} low=${LOW[$metric]} high=${HIGH[$metric]}
	v=$((v - (v - mid) / 25))
	if ((v < low)); then v=$low; fi
	if ((v > high)); then v=$high; fi
	VALUE[$key]=$v
}

# reading DEVICE METRIC ELAPSED: REPLY is this tick's value in tenths, the
# walk's unless a spike or a glitch overrides it.
reading() {
	local dev=$1 metric=$2 elapsed=$3 key=$1.$2
	walk "$key" "$metric"
	REPLY=${VALUE[$key]}
	[[ $metric == temperature ]] || return 0
	if [[ $dev == "$SPIKE_DEVICE" ]] && ((elapsed % SPIKE_EVERY >= SPIKE_EVERY - SPIKE_FOR)); then
		REPLY=$((410 + RANDOM % 40)) # 41.0 .. 44.9
	elif ((RANDOM % 600 == 0)); then
		REPLY=$((REPLY + 60 + RANDOM % 40)) # a one-reading glitch of +6..+10 °C
	fi
}

cleanup() {
	trap - TERM INT
	[[ -n ${SLEEP_PID:-} ]] && kill "$SLEEP_PID" 2>/dev/null
	local topic pid
	for topic in "${!FD[@]}"; do stop_pub "$topic"; done
	# mosquitto_pub exits once its last QoS 1 message is acknowledged; a
	# broker that is down must not hold the shutdown up for long.
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		local alive=0
		for pid in "${PID[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.2
	done
	for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null; done
	echo "simulate-sensors: stopped" >&2
	exit 0
}
trap cleanup TERM INT
trap '' PIPE # a publisher that died shows as a failed write, handled in publish

# Initial state and topics.
SEQ_START=$(awk -v t="${EPOCHREALTIME//[!0-9]/}" -v ms="$INTERVAL_MS" 'BEGIN { printf "%d", substr(t, 1, 13) / ms }')
for entry in "${DEVICES[@]}"; do
	read -r site dev form metrics <<<"$entry"
	SEQ[$dev]=$SEQ_START
	IFS=, read -ra ms <<<"$metrics"
	for metric in "${ms[@]}"; do
		key=$dev.$metric
		# Devices of one site differ a little from each other.
		MID[$key]=$((${TYPICAL[$site.$metric]} + RANDOM % 41 - 20))
		VALUE[$key]=${MID[$key]}
		if [[ $form == bare ]]; then
			CLIENT["sensors/$SITE_PREFIX$site/$dev/$metric"]=$CLIENT_PREFIX-$dev-$metric
		fi
	done
	[[ $form == bare ]] || CLIENT["sensors/$SITE_PREFIX$site/$dev"]=$CLIENT_PREFIX-$dev
done

silence="$SILENT_DEVICE goes silent after ${SILENT_AFTER}s"
((SILENT_AFTER == 0)) && silence="$SILENT_DEVICE never goes silent"
echo "simulate-sensors: ${#DEVICES[@]} devices at greenhouse, warehouse, lab -> mqtt://$HOST:$PORT every ${INTERVAL}s, QoS 1;" \
	"JSON on sensors/{site}/{device} (gh-01 gh-02 wh-01 lab-01 lab-02), bare numbers on .../{metric} (gh-03 lab-03), SenML (wh-02);" \
	"$SPIKE_DEVICE temperature > 40 for ${SPIKE_FOR}s every ${SPIKE_EVERY}s; $silence"

while :; do
	elapsed=$SECONDS
	now=${EPOCHREALTIME//[!0-9]/}
	ts=${now:0:13} # Unix ms
	for entry in "${DEVICES[@]}"; do
		read -r site dev form metrics <<<"$entry"
		if [[ $dev == "$SILENT_DEVICE" ]] && ((SILENT_AFTER > 0 && elapsed >= SILENT_AFTER)); then
			if [[ -z ${SILENCED[$dev]:-} ]]; then
				SILENCED[$dev]=1
				echo "simulate-sensors: $site/$dev goes silent" >&2
				stop_pub "sensors/$SITE_PREFIX$site/$dev"
			fi
			continue
		fi
		IFS=, read -ra ms <<<"$metrics"
		seq=${SEQ[$dev]}
		SEQ[$dev]=$((seq + 1))
		case $form in
		json)
			line="{\"ts\":$ts,\"seq\":$seq"
			for metric in "${ms[@]}"; do
				reading "$dev" "$metric" "$elapsed"
				dec "$REPLY"
				line+=",\"$metric\":$REPLY"
			done
			publish "sensors/$SITE_PREFIX$site/$dev" "$line}"
			;;
		bare)
			for metric in "${ms[@]}"; do
				reading "$dev" "$metric" "$elapsed"
				dec "$REPLY"
				publish "sensors/$SITE_PREFIX$site/$dev/$metric" "$REPLY"
			done
			;;
		senml)
			line="[" sep=""
			for metric in "${ms[@]}"; do
				reading "$dev" "$metric" "$elapsed"
				dec "$REPLY"
				if [[ -z $sep ]]; then
					line+="{\"bn\":\"urn:dev:sim:$dev:\",\"bt\":${ts:0:10}.${ts:10:3},\"n\":\"$metric\",\"u\":\"${UNIT[$metric]}\",\"v\":$REPLY}"
				else
					line+=",{\"n\":\"$metric\",\"u\":\"${UNIT[$metric]}\",\"v\":$REPLY}"
				fi
				sep=,
			done
			publish "sensors/$SITE_PREFIX$site/$dev" "$line]"
			;;
		esac
	done
	# Sleeping in the background lets a signal interrupt the wait at once.
	sleep "$INTERVAL" &
	SLEEP_PID=$!
	wait "$SLEEP_PID"
	SLEEP_PID=
done
