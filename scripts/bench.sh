#!/usr/bin/env bash
# Vivarium's benchmark: every comparison of the table below, side by side in
# one run on this machine, printed as figures and ratios, written to
# bench-results/bench.json and drawn as bench-results/bench.png.
#
#   instantiate + run + discard (C hello, in process)   goal <= 5 us
#   hello over HTTP, a fresh sandbox per request        goal >= 0.9 x nginx
#   the same against workerd serving a JS hello         goal >= 5 x workerd
#   the per-request CPU deadline switched on            goal <= 5 % of throughput
#                                                       and of CPU time per request
#   p99 latency at 50 % and 90 % of nginx's peak rate   goal <= 1.5 x nginx's p99
#   CPU per request: instructions (callgrind) and time  goal <= 1.2 x nginx's
#   system calls per request (strace)                   beside nginx's
#   guest compute kernels                               goal <= 1.15 x native, < node
#   upload to first response, C / Rust / AssemblyScript goal <= 1 s / 3 s / 3 s,
#     identical re-upload                               goal < 100 ms
#   many apps                                           10,000 deployed and routable
#   requests in flight in one worker, each guest        10,000, <= 64 KiB of host memory
#     suspended on a slow upstream                      each beyond its guest pages,
#                                                       the hello app's p99 unchanged
#
# Every HTTP row also gives what one system call (getppid) costs on this
# machine, measured in the same run: the server's share of a request is
# mostly system calls, so that figure moves the rows between machines.
#
# It installs what it compares against (nginx, wrk, gnuplot, valgrind,
# strace, workerd from npm), builds, and takes a few minutes. A benchmark
# measures; it asserts nothing. Environment: ROUNDS (HTTP rounds, default 5), SECONDS_PER_ROUND
# (default 5), APPS (many apps, default 10000), DEPLOY_RUNS (default 5),
# INFLIGHT (requests in flight, default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ROUNDS=${ROUNDS:-5}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-5}
APPS=${APPS:-10000}
DEPLOY_RUNS=${DEPLOY_RUNS:-5}
INFLIGHT=${INFLIGHT:-10000}
WORKERD_VERSION=1.20261117.1
CORES=$(nproc)

scripts/setup.sh --bench
scripts/build.sh >/dev/null

OUT="$ROOT/bench-results"
mkdir -p "$OUT"
WORK=$(mktemp -d)
# vivd started as root runs its roles as the user vivarium, who must reach
# the data folder inside.
chmod 755 "$WORK"
PIDS=()
cleanup() {
	local rc=$?
	if [ "$rc" != 0 ]; then
		for f in "$WORK"/*.log; do
			[ -f "$f" ] && { echo "--- the end of $f:"; tail -n 20 "$f"; } >&2
		done
	fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*" >&2; }

# Sets the variable named $1 to a free TCP port on the loopback interface
# (not through $(...), whose subshell would forget the ports handed out).
next_port=$((20000 + RANDOM % 20000))
free_port() {
	local -n port_out=$1
	while ss -ltn "sport = :$next_port" | grep -q LISTEN; do
		next_port=$((next_port + 1))
	done
	port_out=$next_port
	next_port=$((next_port + 1))
}

wait_http() { # URL [HOST]
	for _ in $(seq 200); do
		if curl -s -o /dev/null ${2:+-H "Host: $2"} "$1"; then return 0; fi
		sleep 0.05
	done
	echo "bench: $1 did not answer" >&2
	return 1
}

# ---- workerd, pinned, from npm --------------------------------------------------
TOOLS="$ROOT/.tools"
WORKERD="$TOOLS/node_modules/@cloudflare/workerd-linux-64/bin/workerd"
if [ ! -x "$WORKERD" ] || [ "$("$WORKERD" --version 2>/dev/null)" = "" ]; then
	say "installing @cloudflare/workerd-linux-64@$WORKERD_VERSION into .tools"
	npm install --prefix "$TOOLS" --no-save --no-audit --no-fund --loglevel=error \
		"@cloudflare/workerd-linux-64@$WORKERD_VERSION"
fi

# ---- 1. In process ---------------------------------------------------------------
say "instantiate + run + discard, C hello, in process"
build/bench/bench_instance --json "$OUT/instance.json" sdk/examples/c-hello

# ---- 2. Guest compute ------------------------------------------------------------
say "guest compute: native, Vivarium and node on the same kernels"
build/bench/bench_kernels --json "$OUT/kernels.json"

# ---- 3. HTTP: vivd, vivd without the CPU tick, nginx, workerd ---------------------
say "hello over HTTP: $ROUNDS rounds of ${SECONDS_PER_ROUND}s each, wrk -t2 -c64"
DATA="$WORK/data"
free_port API_PORT
free_port APPS_PORT
free_port NOTICK_PORT
free_port NGINX_PORT
free_port WORKERD_PORT

build/vivd/vivd serve --data "$DATA" --api "127.0.0.1:$API_PORT" \
	--listen "127.0.0.1:$APPS_PORT" --workers "$CORES" >"$WORK/vivd.log" 2>&1 &
VIVD_PID=$!
PIDS+=($VIVD_PID)
wait_http "http://127.0.0.1:$API_PORT/healthz"
TOKEN=$(cat "$DATA/admin-token")
tar czf "$WORK/hello.tgz" -C sdk/examples/c-hello .
curl -s -H "Authorization: Bearer $TOKEN" --data-binary "@$WORK/hello.tgz" \
	"http://127.0.0.1:$API_PORT/v1/apps/hello/deployments" >/dev/null
for _ in $(seq 600); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: hello.localhost" \
		"http://127.0.0.1:$APPS_PORT/")" = 200 ] && break
	sleep 0.1
done
# The same apps from a second runner fleet on the same data directory, with
# the CPU tick off.
build/vivd/vivd runner --data "$DATA" --listen "127.0.0.1:$NOTICK_PORT" \
	--workers "$CORES" --no-cpu-limit >"$WORK/vivd-notick.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NOTICK_PORT/" hello.localhost

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $CORES;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type text/plain; return 200 "Hello, world!\n"; }
  }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/"

mkdir -p "$WORK/workerd"
cat >"$WORK/workerd/hello.js" <<'EOF'
export default {
  async fetch(request) {
    return new Response("Hello, world!\n", { headers: { "content-type": "text/plain" } });
  },
};
EOF
cat >"$WORK/workerd/config.capnp" <<EOF
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .hello) ],
  sockets = [ (name = "http", address = "127.0.0.1:$WORKERD_PORT", http = (), service = "main") ],
);
const hello :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "hello.js") ],
  compatibilityDate = "2024-09-01",
);
EOF
"$WORKERD" serve "$WORK/workerd/config.capnp" >"$WORK/workerd.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$WORKERD_PORT/"

rps() { # URL [HOST]
	wrk -t2 -c64 -d"${SECONDS_PER_ROUND}s" ${2:+-H "Host: $2"} "$1" |
		awk '/Requests\/sec/ { print $2 }'
}
declare -A SAMPLES
for r in $(seq "$ROUNDS"); do
	SAMPLES[nginx]+="$(rps "http://127.0.0.1:$NGINX_PORT/") "
	SAMPLES[vivd]+="$(rps "http://127.0.0.1:$APPS_PORT/" hello.localhost) "
	SAMPLES[notick]+="$(rps "http://127.0.0.1:$NOTICK_PORT/" hello.localhost) "
	SAMPLES[workerd]+="$(rps "http://127.0.0.1:$WORKERD_PORT/") "
	last() { local s=${SAMPLES[$1]% }; echo "${s##* }"; }
	echo "round $r: nginx $(last nginx) vivd $(last vivd) vivd-no-tick $(last notick)" \
		"workerd $(last workerd)" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
{
	printf '{'
	sep=""
	for k in nginx vivd notick workerd; do
		m=$(echo "${SAMPLES[$k]}" | median)
		printf '%s"%s": {"median_rps": %s, "samples": [%s]}' "$sep" "$k" "$m" \
			"$(echo "${SAMPLES[$k]}" | xargs | tr ' ' ',')"
		sep=", "
	done
	printf ', "connections": 64, "wrk_threads": 2, "round_seconds": %s}\n' "$SECONDS_PER_ROUND"
} >"$OUT/http.json"

# Latency at a fixed rate, half and nine tenths of nginx's peak above: an
# open-loop generator (bench/loadgen) counts each request from when it was
# due, so a server that stalls pays for every request that waited.
say "p99 latency at 50 % and 90 % of nginx's peak rate"
build/bench/syscall_cost --json "$OUT/syscall.json" >&2
NGINX_PEAK=$(jq .nginx.median_rps "$OUT/http.json")
for pct in 50 90; do
	rate=$(awk -v p="$NGINX_PEAK" -v f="$pct" 'BEGIN { printf "%d", p * f / 100 }')
	build/bench/loadgen --rate "$rate" --seconds "$SECONDS_PER_ROUND" --connections 64 --processes 2 \
		--json "$WORK/lat-nginx-$pct.json" "http://127.0.0.1:$NGINX_PORT/" >&2
	build/bench/loadgen --rate "$rate" --seconds "$SECONDS_PER_ROUND" --connections 64 --processes 2 \
		--host hello.localhost --json "$WORK/lat-vivd-$pct.json" \
		"http://127.0.0.1:$APPS_PORT/" >&2
done
jq -n --slurpfile n50 "$WORK/lat-nginx-50.json" --slurpfile v50 "$WORK/lat-vivd-50.json" \
	--slurpfile n90 "$WORK/lat-nginx-90.json" --slurpfile v90 "$WORK/lat-vivd-90.json" \
	'{"50": {nginx: $n50[0], vivd: $v50[0]}, "90": {nginx: $n90[0], vivd: $v90[0]}}' \
	>"$OUT/latency.json"

# What one request costs each server, in instructions, system calls and
# CPU time, one worker each (bench/request_cost.sh).
say "CPU and system calls per request: vivd's worker and nginx"
bench/request_cost.sh "$DATA" hello.localhost "$OUT/cost.json"

# ---- 4. Upload to first response ------------------------------------------------
say "upload to first response: C, Rust, AssemblyScript hello; identical re-upload"
bench/deploy_times.sh "http://127.0.0.1:$API_PORT" "$TOKEN" "$APPS_PORT" "$DEPLOY_RUNS" \
	"$OUT/deploy.json"

# ---- 5. Many apps ------------------------------------------------------------------
say "many apps: $APPS apps deployed, each requested once"
build/bench/bench_apps --api "http://127.0.0.1:$API_PORT" --token "$TOKEN" \
	--apps-port "$APPS_PORT" --vivd "$VIVD_PID" --upload "$WORK/hello.tgz" --count "$APPS" \
	--json "$OUT/apps.json"

# ---- 6. Requests in flight -------------------------------------------------------
# Its own vivd serve with one worker; the reference is the same hello
# measured in the same run before the requests are opened.
say "requests in flight: $INFLIGHT guests suspended on a slow upstream in one worker"
build/bench/bench_inflight --vivd build/vivd/vivd --count "$INFLIGHT" --json "$OUT/inflight.json"

# ---- Table, JSON and chart ---------------------------------------------------------
MACHINE="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $CORES cores, $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -sr)"
jq -n --arg machine "$MACHINE" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--slurpfile instance "$OUT/instance.json" --slurpfile kernels "$OUT/kernels.json" \
	--slurpfile http "$OUT/http.json" --slurpfile deploy "$OUT/deploy.json" \
	--slurpfile apps "$OUT/apps.json" --slurpfile latency "$OUT/latency.json" \
	--slurpfile cost "$OUT/cost.json" --slurpfile syscall "$OUT/syscall.json" \
	--slurpfile inflight "$OUT/inflight.json" \
	'{machine: $machine, date: $date, instance: $instance[0], kernels: $kernels[0],
	  http: $http[0], deploy: $deploy[0], apps: $apps[0], latency: $latency[0],
	  cost: $cost[0], inflight: $inflight[0], getppid_ns: $syscall[0].getppid_ns}' \
	>"$OUT/bench.json"

# One row per goal: the figure, its reference, the ratio, the goal and
# "attainment", the ratio oriented so that 1 or more meets the goal.
jq -r -f scripts/bench-rows.jq "$OUT/bench.json" >"$OUT/rows.tsv"
echo
echo "Vivarium benchmark, $(jq -r .date "$OUT/bench.json") on $MACHINE"
awk -F'\t' '{ printf "%-44s %14s  %-48s %9s  %-14s %s\n", $1, $2, $3, $4, $5,
	($5 == "(reference)" ? "" : $6 >= 1 ? "met" : "missed") }' \
	"$OUT/rows.tsv"

# The chart: one bar per goal (reference rows left out), green where met.
awk -F'\t' '$5 != "(reference)"' "$OUT/rows.tsv" >"$WORK/goals.tsv"
gnuplot <<EOF
set terminal pngcairo size 1100,640 font "sans,10"
set output "$OUT/bench.png"
set title "Vivarium against its goals ($(jq -r .date "$OUT/bench.json"))\\n$MACHINE" noenhanced
set style fill solid 0.85 border -1
set boxwidth 0.7
set yrange [0:*]
set bmargin 11
set ylabel "goal attainment (1 = goal met exactly; higher is better)"
set xtics rotate by -30 left noenhanced
set grid ytics
set key off
set datafile separator "\t"
plot "$WORK/goals.tsv" using 0:6:(\$6 >= 1 ? 0x3ba55d : 0xd83b3b):xtic(1) with boxes lc rgb variable, \\
     "" using 0:6:2 with labels offset 0,0.8 font "sans,8" noenhanced, \\
     1 with lines lw 2 lc rgb "#555555"
EOF
echo
echo "written: $OUT/bench.json, $OUT/bench.png"
