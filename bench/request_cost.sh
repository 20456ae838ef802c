#!/usr/bin/env bash
# What one request costs the server, for a vivd worker serving an app with a
# fresh sandbox per request and for nginx returning a fixed string, in counts
# that do not depend on how busy the machine is, beside times:
#
#   instructions   callgrind over a fixed count of requests, in user space:
#                  the worker's event loop thread, and apart from it the
#                  writer thread that stores access lines (under callgrind
#                  every request gets one; at full speed a worker logs at
#                  most 1,000 a second per app)
#   system calls   strace -c -f on the worker over a fixed count
#   CPU time       the worker's threads' time on CPU (schedstat) over a
#                  fixed count sent at a fixed rate, for vivd with the CPU
#                  deadline tick on and off, and nginx; rounds alternate
#
# Each server runs one worker. The counts are the difference between a run
# of WARMUP requests and one of WARMUP + REQUESTS, so start-up and shutdown
# cancel out. Prints the figures and writes them as JSON.
#
#   bench/request_cost.sh DATA_DIR APP_HOST JSON_OUT
#   bench/request_cost.sh vivarium-data hello.localhost cost.json
#
# DATA_DIR is a vivd data folder where APP_HOST is deployed (vivd serve made
# it, so it belongs to the user vivd runs its roles as). The environment may
# set REQUESTS (default 2000 under callgrind, ten times that for the rest),
# RATE (default 5000 requests a second for the CPU time), ROUNDS (default
# 3), VIVD (another build of vivd to measure, for before and after),
# CALLGRIND=0 to skip the instruction counts and CPU=0 to skip the CPU
# times and system calls. A benchmark measures; it asserts nothing.
set -euo pipefail

if [ $# -lt 3 ]; then
	sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
DATA=$1
APP_HOST=$2
JSON_OUT=$3
REQUESTS=${REQUESTS:-2000}
WARMUP=500
RATE=${RATE:-5000}
ROUNDS=${ROUNDS:-3}
CALLGRIND=${CALLGRIND:-1}
CPU=${CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VIVD=${VIVD:-"$ROOT/build/vivd/vivd"}
LOADGEN="$ROOT/build/bench/loadgen"

WORK=$(mktemp -d)
# The worker runs as the user vivd gives its roles, and writes its callgrind
# files here.
chmod 1777 "$WORK"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

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
	for _ in $(seq 600); do
		if curl -s -o /dev/null -m 5 ${2:+-H "Host: $2"} "$1"; then return 0; fi
		sleep 0.1
	done
	echo "request_cost: $1 did not answer" >&2
	return 1
}

# The one worker of a vivd runner whose supervisor is $1 (a new one after a
# restart: not $2).
worker_of() {
	local p
	for _ in $(seq 600); do
		for p in $(pgrep -P "$1" || true); do
			if [ "$p" != "${2:-}" ] &&
				[ "$(cat /proc/"$p"/comm 2>/dev/null)" = "worker 0" ]; then
				echo "$p"
				return 0
			fi
		done
		sleep 0.1
	done
	echo "request_cost: no worker under $1" >&2
	return 1
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Nanoseconds on CPU of every thread of process $1 so far.
cpu_ns() {
	cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%d\n", s }'
}

load() { # PORT HOST COUNT [loadgen options...]
	local port=$1 host=$2 count=$3
	shift 3
	"$LOADGEN" --requests "$count" --host "$host" "$@" "http://127.0.0.1:$port/" >/dev/null
}

nginx_conf() { # PORT DIR
	mkdir -p "$2"
	cat >"$2/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $2/nginx.pid;
error_log $2/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$1;
    location / { default_type text/plain; return 200 "Hello, world!\n"; }
  }
}
EOF
}

"$ROOT/build/bench/syscall_cost" --json "$WORK/syscall.json" >&2

# ---- CPU time and system calls: one worker of each, alternating rounds ----------
declare -A CPU SYSCALLS SYSCALL_TABLE
N_CPU=$((REQUESTS * 10))
if [ "$CPU" = 1 ]; then
free_port P_VIVD
free_port P_NOTICK
free_port P_NGINX
"$VIVD" runner --data "$DATA" --listen "127.0.0.1:$P_VIVD" --workers 1 \
	>"$WORK/vivd.log" 2>&1 &
SUP_VIVD=$!
PIDS+=("$SUP_VIVD")
"$VIVD" runner --data "$DATA" --listen "127.0.0.1:$P_NOTICK" --workers 1 --no-cpu-limit \
	>"$WORK/notick.log" 2>&1 &
SUP_NOTICK=$!
PIDS+=("$SUP_NOTICK")
nginx_conf "$P_NGINX" "$WORK/nginx"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
NGINX=$!
PIDS+=("$NGINX")
wait_http "http://127.0.0.1:$P_VIVD/" "$APP_HOST"
wait_http "http://127.0.0.1:$P_NOTICK/" "$APP_HOST"
wait_http "http://127.0.0.1:$P_NGINX/"
W_VIVD=$(worker_of "$SUP_VIVD")
W_NOTICK=$(worker_of "$SUP_NOTICK")

declare -A PORT=([vivd]=$P_VIVD [notick]=$P_NOTICK [nginx]=$P_NGINX)
declare -A PID=([vivd]=$W_VIVD [notick]=$W_NOTICK [nginx]=$NGINX)
declare -A HOSTNAME_OF=([vivd]=$APP_HOST [notick]=$APP_HOST [nginx]=localhost)
SECONDS_CPU=$(awk -v n="$N_CPU" -v r="$RATE" 'BEGIN { printf "%.3f", n / r }')
echo "request_cost: CPU time over $N_CPU requests at $RATE a second, $ROUNDS rounds" >&2
for k in vivd notick nginx; do
	load "${PORT[$k]}" "${HOSTNAME_OF[$k]}" 2000 --connections 8
done
for r in $(seq "$ROUNDS"); do
	line="round $r:"
	for k in vivd notick nginx; do
		before=$(cpu_ns "${PID[$k]}")
		"$LOADGEN" --rate "$RATE" --seconds "$SECONDS_CPU" --connections 16 \
			--host "${HOSTNAME_OF[$k]}" "http://127.0.0.1:${PORT[$k]}/" >/dev/null
		after=$(cpu_ns "${PID[$k]}")
		if [ "$after" -le "$before" ]; then
			# The worker's threads were not there to read (a worker
			# that restarted has another pid): no sample.
			line+=" $k (no sample)"
			continue
		fi
		v=$(awk -v a="$after" -v b="$before" -v n="$N_CPU" 'BEGIN { printf "%.3f", (a - b) / n / 1000 }')
		CPU[$k]+="$v "
		line+=" $k $v us"
	done
	echo "$line" >&2
done

# System calls: strace on the worker (all its threads) over a fixed count.
for k in vivd nginx; do
	strace -c -f -p "${PID[$k]}" -o "$WORK/strace-$k.txt" 2>/dev/null &
	ST=$!
	sleep 1
	load "${PORT[$k]}" "${HOSTNAME_OF[$k]}" "$N_CPU" --connections 1
	kill -INT "$ST"
	wait "$ST" 2>/dev/null || true
	SYSCALLS[$k]=$(awk -v n="$N_CPU" '$NF == "total" { printf "%.3f", $4 / n }' \
		"$WORK/strace-$k.txt")
	# Per call name: calls per request, the busiest first.
	SYSCALL_TABLE[$k]=$(awk -v n="$N_CPU" '
		/^-/ || /^%/ || $NF == "total" { next }
		{ printf "%s\t%.4f\n", $NF, $4 / n }' \
		"$WORK/strace-$k.txt" | sort -t$'\t' -k2 -gr |
		jq -R -s 'split("\n") | map(select(length > 0) | split("\t") |
			{(.[0]): (.[1] | tonumber)}) | add // {}')
	echo "request_cost: $k: ${SYSCALLS[$k]} system calls per request" >&2
done
for k in vivd notick nginx; do kill "${PID[$k]}" 2>/dev/null || true; done
kill "$SUP_VIVD" "$SUP_NOTICK" 2>/dev/null || true
wait "$SUP_VIVD" "$SUP_NOTICK" "$NGINX" 2>/dev/null || true
PIDS=()
fi

# ---- Instructions: callgrind, the difference of two counts ---------------------
# The sum of callgrind's totals in the files named $1*, thread $2 ("01" the
# first; "" all).
ir_of() {
	local f total=0 v
	for f in "$1"*; do
		if [ -n "$2" ] && [ "${f%-"$2"}" = "$f" ]; then
			continue
		fi
		v=$(awk '/^totals:/ { print $2 }' "$f")
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# Instructions per request of each function, the most first: the counts of
# callgrind file $2 less those of $1.
per_function() {
	local f
	for f in "$1" "$2"; do
		callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null |
			awk -v tag="$f" '!/PROGRAM TOTALS/ &&
				match($0, /^ *[0-9,]+ +\( *[0-9.]+%\) +/) {
				n = $1; gsub(",", "", n);
				print tag "\t" n "\t" substr($0, RLENGTH + 1) }'
	done | awk -F'\t' -v a="$1" -v n="$REQUESTS" '
		{ d[$3] += ($1 == a ? -$2 : $2) }
		END { for (k in d) if (d[k] / n >= 1) printf "%10.0f  %s\n", d[k] / n, k }' |
		sort -gr | awk 'NR <= 25'
}

declare -A IR IR_WRITER
if [ "$CALLGRIND" = 1 ]; then
	echo "request_cost: instructions under callgrind, $REQUESTS requests" >&2
	# glibc's memset and memcpy use rep stosb and rep movsb past a few KiB,
	# which callgrind counts as one instruction per byte: 12,288 for
	# zeroing three pages that take a few hundred cycles. With the
	# thresholds raised they are counted by their vector stores instead.
	CG=(env GLIBC_TUNABLES=glibc.cpu.x86_rep_stosb_threshold=0x7fffffff:glibc.cpu.x86_rep_movsb_threshold=0x7fffffff
		valgrind --tool=callgrind --separate-threads=yes --dump-line=no)
	# vivd: a worker serves WARMUP requests and stops; the supervisor starts
	# another, which serves WARMUP + REQUESTS. Valgrind cannot hold 64
	# sandboxes of 8 GiB of address space, so the worker has 4.
	free_port P_CG
	"${CG[@]}" --callgrind-out-file="$WORK/cg-vivd.%p" "$VIVD" runner --data "$DATA" \
		--listen "127.0.0.1:$P_CG" --workers 1 --sandboxes 4 >"$WORK/cg-vivd.log" 2>&1 &
	SUP=$!
	PIDS+=("$SUP")
	prev=""
	for n in "$WARMUP" $((WARMUP + REQUESTS)); do
		w=$(worker_of "$SUP" "$prev")
		wait_http "http://127.0.0.1:$P_CG/" "$APP_HOST"
		load "$P_CG" "$APP_HOST" $((n - 1)) --connections 1
		kill -TERM "$w"
		while kill -0 "$w" 2>/dev/null; do sleep 0.2; done
		prev=$w
		FILES+=("$WORK/cg-vivd.$w")
	done
	kill "$SUP"
	wait "$SUP" 2>/dev/null || true
	PIDS=()
	a=${FILES[0]}
	b=${FILES[1]}
	IR[vivd]=$((($(ir_of "$b" 01) - $(ir_of "$a" 01)) / REQUESTS))
	IR_WRITER[vivd]=$((($(ir_of "$b" "") - $(ir_of "$a" "") - ($(ir_of "$b" 01) - $(ir_of "$a" 01))) / REQUESTS))
	# The top functions of the event loop's thread over the requests: each
	# function's count in the longer run less its count in the shorter.
	per_function "$a-01" "$b-01" >"$WORK/top-vivd.txt"

	# nginx: one process, the same two runs.
	NG=()
	for n in "$WARMUP" $((WARMUP + REQUESTS)); do
		free_port P_CGN
		nginx_conf "$P_CGN" "$WORK/cg-nginx-$n"
		"${CG[@]}" --callgrind-out-file="$WORK/cg-nginx-$n.out" nginx \
			-c "$WORK/cg-nginx-$n/nginx.conf" -p "$WORK/cg-nginx-$n" \
			>"$WORK/cg-nginx-$n.log" 2>&1 &
		NP=$!
		wait_http "http://127.0.0.1:$P_CGN/"
		load "$P_CGN" localhost $((n - 1)) --connections 1
		kill -TERM "$NP"
		wait "$NP" 2>/dev/null || true
		NG+=("$WORK/cg-nginx-$n.out")
	done
	IR[nginx]=$((($(ir_of "${NG[1]}" "") - $(ir_of "${NG[0]}" "")) / REQUESTS))
	echo "request_cost: instructions per request: vivd ${IR[vivd]} (writer thread" \
		"${IR_WRITER[vivd]} more), nginx ${IR[nginx]}" >&2
	echo "request_cost: vivd's event loop, instructions per request by function:" >&2
	cat "$WORK/top-vivd.txt" >&2
fi

jq -n --slurpfile sc "$WORK/syscall.json" \
	--arg vc "$(echo "${CPU[vivd]:-}" | median)" --arg nc "$(echo "${CPU[notick]:-}" | median)" \
	--arg gc "$(echo "${CPU[nginx]:-}" | median)" \
	--arg vcs "${CPU[vivd]:-}" --arg ncs "${CPU[notick]:-}" --arg gcs "${CPU[nginx]:-}" \
	--arg vs "${SYSCALLS[vivd]:-}" --arg gs "${SYSCALLS[nginx]:-}" \
	--argjson vst "${SYSCALL_TABLE[vivd]:-null}" --argjson gst "${SYSCALL_TABLE[nginx]:-null}" \
	--arg vi "${IR[vivd]:-}" --arg vw "${IR_WRITER[vivd]:-}" --arg gi "${IR[nginx]:-}" \
	--arg top "$(cat "$WORK/top-vivd.txt" 2>/dev/null || true)" \
	--argjson n "$N_CPU" --argjson rate "$RATE" --argjson ncg "$REQUESTS" '
	def num: if . == "" then null else tonumber end;
	def samples: split(" ") | map(select(length > 0) | tonumber);
	{getppid_ns: $sc[0].getppid_ns, cpu_requests: $n, cpu_rate: $rate,
	 callgrind_requests: $ncg,
	 vivd: {cpu_us_per_request: ($vc | num), cpu_samples: ($vcs | samples),
	        syscalls_per_request: ($vs | num), syscalls: $vst,
	        instructions_per_request: ($vi | num),
	        writer_instructions_per_request: ($vw | num),
	        top_functions: ($top | split("\n") | map(select(length > 0)))},
	 vivd_notick: {cpu_us_per_request: ($nc | num), cpu_samples: ($ncs | samples)},
	 nginx: {cpu_us_per_request: ($gc | num), cpu_samples: ($gcs | samples),
	         syscalls_per_request: ($gs | num), syscalls: $gst,
	         instructions_per_request: ($gi | num)}}' >"$JSON_OUT"
echo "wrote $JSON_OUT" >&2
