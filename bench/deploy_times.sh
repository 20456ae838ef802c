#!/usr/bin/env bash
# Deploy times: from the start of an upload to the app's first 200 with the
# new deployment, for the C, Rust and AssemblyScript hellos, against a running
# vivd. Each language is deployed RUNS times, each time with its greeting
# changed to one never built before, so that every build step runs (a comment
# would leave the optimized module, and so the artifact, as it was, and the
# native compile would be skipped); then the last tarball is uploaded again
# RUNS times unchanged (an identical re-upload). Prints the median of each in
# ms and writes them, with every sample, as JSON.
#
#   bench/deploy_times.sh API_URL TOKEN APPS_PORT [RUNS] [JSON_OUT]
#   bench/deploy_times.sh http://127.0.0.1:8080 "$(cat vivarium-data/admin-token)" 8000 5 out.json
#
# The environment may set LANGS (default "c rust assemblyscript"), DOMAIN
# (the apps' domain, default localhost), APPS_ADDR (default 127.0.0.1) and
# APP_PREFIX (default bench-deploy). A benchmark measures; it asserts no time.
set -euo pipefail

if [ $# -lt 3 ]; then
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
API=${1%/}
TOKEN=$2
APPS_PORT=$3
RUNS=${4:-5}
JSON_OUT=${5:-}
LANGS=${LANGS:-c rust assemblyscript}
DOMAIN=${DOMAIN:-localhost}
APPS_ADDR=${APPS_ADDR:-127.0.0.1}
APP_PREFIX=${APP_PREFIX:-bench-deploy}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Polling goes through bash's /dev/tcp, not curl: starting a curl costs
# about 30 ms on the 2-core build machine, more than the whole identical
# re-upload takes inside vivd. The upload itself is curl's, as a user's is.
POLL_S=0.005
TIMEOUT_MS=300000

case $API in
http://*) ;;
*)
	echo "the API URL must be http:// (the polls speak plain HTTP)" >&2
	exit 2
	;;
esac
API_HOSTPORT=${API#http://}
API_HOSTPORT=${API_HOSTPORT%%/*}
API_HOST=${API_HOSTPORT%:*}
API_PORT=${API_HOSTPORT##*:}
[ "$API_PORT" = "$API_HOSTPORT" ] && API_PORT=80

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A descriptor that never has data: read -t on it sleeps without a process.
exec {NAP_FD}<> <(:)

nap() {
	read -r -t "$POLL_S" -u "$NAP_FD" _ || true
}

# GET path from host:port with a Host header and extra header lines; sets
# HTTP_STATUS and HTTP_REPLY (headers and body).
http_get() {
	local fd
	HTTP_STATUS=000
	HTTP_REPLY=
	exec {fd}<>"/dev/tcp/$1/$2" || return 0
	printf 'GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n' "$3" "$4" "$5" >&"$fd"
	IFS= read -r -d '' HTTP_REPLY <&"$fd" || true
	exec {fd}>&-
	HTTP_STATUS=${HTTP_REPLY#HTTP/1.? }
	HTTP_STATUS=${HTTP_STATUS%% *}
}

# The example folder and the file that holds its greeting, per language.
example_of() {
	case $1 in
	c) echo "c-hello hello.c" ;;
	rust) echo "rust-hello src/lib.rs" ;;
	assemblyscript) echo "assemblyscript-hello assembly/index.ts" ;;
	*)
		echo "unknown language $1 (c, rust, assemblyscript)" >&2
		exit 2
		;;
	esac
}

median() {
	printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {
		if (NR == 0) { print "null"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2)
	}'
}

# Uploads tarball $2 to app $1 and sets DEPLOY_MS to the ms from the start of
# the upload to the app's first 200 after its deployment is ready; fails
# loudly when the build fails.
deploy_once() {
	local app=$1 tarball=$2 t0 reply id elapsed auth
	auth="Authorization: Bearer $TOKEN"$'\r\n'
	t0=${EPOCHREALTIME/./}
	reply=$(curl -sS -H "Authorization: Bearer $TOKEN" --data-binary "@$tarball" \
		"$API/v1/apps/$app/deployments")
	if ! [[ $reply =~ \"id\":([0-9]+) ]]; then
		echo "upload to $app was refused: $reply" >&2
		return 1
	fi
	id=${BASH_REMATCH[1]}
	while :; do
		http_get "$API_HOST" "$API_PORT" "/v1/deployments/$id" "$API_HOSTPORT" "$auth"
		case $HTTP_REPLY in
		*'"status":"ready"'*) break ;;
		*'"status":"failed"'*)
			echo "deployment $id of $app failed:" >&2
			printf '%s\n' "$HTTP_REPLY" >&2
			return 1
			;;
		esac
		elapsed=$(((${EPOCHREALTIME/./} - t0) / 1000))
		if [ "$elapsed" -gt "$TIMEOUT_MS" ]; then
			echo "deployment $id of $app not ready after $elapsed ms" >&2
			return 1
		fi
		nap
	done
	while :; do
		http_get "$APPS_ADDR" "$APPS_PORT" / "$app.$DOMAIN" ""
		[ "$HTTP_STATUS" = 200 ] && break
		elapsed=$(((${EPOCHREALTIME/./} - t0) / 1000))
		if [ "$elapsed" -gt "$TIMEOUT_MS" ]; then
			echo "$app is ready but answers $HTTP_STATUS, not 200" >&2
			return 1
		fi
		nap
	done
	DEPLOY_MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

# The figures move with whatever else the machine runs: the load average
# before and after goes with them.
read -r LOAD_START _ </proc/loadavg
json=""
for lang in $LANGS; do
	read -r example file <<<"$(example_of "$lang")"
	app="$APP_PREFIX-$lang"
	src="$WORK/$lang"
	changed=()
	for i in $(seq 1 "$RUNS"); do
		rm -rf "$src"
		cp -r "$ROOT/sdk/examples/$example" "$src"
		sed -i "s/Hello, world!/Hello, world! (bench run $i, ${EPOCHREALTIME/./})/" "$src/$file"
		if ! grep -q "bench run $i" "$src/$file"; then
			echo "$example/$file has no greeting to change" >&2
			exit 1
		fi
		tar czf "$WORK/$lang.tar.gz" -C "$src" .
		deploy_once "$app" "$WORK/$lang.tar.gz"
		changed+=("$DEPLOY_MS")
	done
	same=()
	for i in $(seq 1 "$RUNS"); do
		deploy_once "$app" "$WORK/$lang.tar.gz"
		same+=("$DEPLOY_MS")
	done
	m_changed=$(median "${changed[@]}")
	m_same=$(median "${same[@]}")
	printf '%-15s changed: median %6s ms (%s)   identical re-upload: median %4s ms (%s)\n' \
		"$lang" "$m_changed" "${changed[*]}" "$m_same" "${same[*]}"
	[ -n "$json" ] && json+=","
	json+=$(printf '"%s":{"median_ms":%s,"runs_ms":[%s],"identical_median_ms":%s,"identical_runs_ms":[%s]}' \
		"$lang" "$m_changed" "$(
			IFS=,
			echo "${changed[*]}"
		)" "$m_same" "$(
			IFS=,
			echo "${same[*]}"
		)")
done

read -r LOAD_END _ </proc/loadavg
echo "load average (1 min): $LOAD_START before, $LOAD_END after"
if [ -n "$JSON_OUT" ]; then
	printf '{"benchmark":"deploy_times","runs":%s,"loadavg_before":%s,"loadavg_after":%s,"languages":{%s}}\n' \
		"$RUNS" "$LOAD_START" "$LOAD_END" "$json" >"$JSON_OUT"
	echo "wrote $JSON_OUT"
fi
