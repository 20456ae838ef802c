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
# Polling: often enough that it adds little to a 100 ms figure, seldom enough
# that curl does not take a core from a build on a small machine.
POLL_FAST=0.005
POLL_SLOW=0.05
FAST_FOR_MS=400
TIMEOUT_MS=300000

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

now_us() {
	local t=${EPOCHREALTIME/./}
	echo "$t"
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

# Uploads tarball $2 to app $1 and prints the ms from the start of the upload
# to the app's first 200 after its deployment is ready; fails loudly when the
# build fails.
deploy_once() {
	local app=$1 tarball=$2 t0 t1 reply id status body elapsed
	t0=$(now_us)
	reply=$(curl -sS -H "Authorization: Bearer $TOKEN" --data-binary "@$tarball" \
		"$API/v1/apps/$app/deployments")
	id=$(printf '%s' "$reply" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
	if [ -z "$id" ]; then
		echo "upload to $app was refused: $reply" >&2
		return 1
	fi
	while :; do
		body=$(curl -sS -H "Authorization: Bearer $TOKEN" "$API/v1/deployments/$id")
		status=$(printf '%s' "$body" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
		case $status in
		ready) break ;;
		failed)
			echo "deployment $id of $app failed:" >&2
			printf '%s\n' "$body" >&2
			return 1
			;;
		esac
		elapsed=$((($(now_us) - t0) / 1000))
		if [ "$elapsed" -gt "$TIMEOUT_MS" ]; then
			echo "deployment $id of $app still $status after $elapsed ms" >&2
			return 1
		fi
		if [ "$elapsed" -lt "$FAST_FOR_MS" ]; then sleep "$POLL_FAST"; else sleep "$POLL_SLOW"; fi
	done
	until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $app.$DOMAIN" \
		"http://$APPS_ADDR:$APPS_PORT/")" = 200 ]; do
		elapsed=$((($(now_us) - t0) / 1000))
		if [ "$elapsed" -gt "$TIMEOUT_MS" ]; then
			echo "$app is ready but does not answer 200" >&2
			return 1
		fi
		sleep "$POLL_FAST"
	done
	t1=$(now_us)
	echo $(((t1 - t0) / 1000))
}

json=""
for lang in $LANGS; do
	read -r example file <<<"$(example_of "$lang")"
	app="$APP_PREFIX-$lang"
	src="$WORK/$lang"
	changed=()
	for i in $(seq 1 "$RUNS"); do
		rm -rf "$src"
		cp -r "$ROOT/sdk/examples/$example" "$src"
		sed -i "s/Hello, world!/Hello, world! (bench run $i, $(now_us))/" "$src/$file"
		if ! grep -q "bench run $i" "$src/$file"; then
			echo "$example/$file has no greeting to change" >&2
			exit 1
		fi
		tar czf "$WORK/$lang.tar.gz" -C "$src" .
		changed+=("$(deploy_once "$app" "$WORK/$lang.tar.gz")")
	done
	same=()
	for i in $(seq 1 "$RUNS"); do
		same+=("$(deploy_once "$app" "$WORK/$lang.tar.gz")")
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

if [ -n "$JSON_OUT" ]; then
	printf '{"benchmark":"deploy_times","runs":%s,"languages":{%s}}\n' "$RUNS" "$json" >"$JSON_OUT"
	echo "wrote $JSON_OUT"
fi
