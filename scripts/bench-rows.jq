# Turns bench-results/bench.json into the rows of the benchmark table:
# name, figure, reference, ratio, goal, attainment (the ratio oriented so that
# 1 or more meets the goal), tab-separated. Used by scripts/bench.sh.
def r2: (. * 100 | round) / 100;
def ms: "\(. | round) ms";
def r4: (. * 10000 | floor) / 10000;
# attain is cut (not rounded) to 4 places, so that 0.9999 never reads as met.
def row(name; figure; reference; ratio; goal; attain):
  [name, figure, reference, (ratio | tostring), goal, (attain | r4 | tostring)] | join("\t");

# HTTP rows name what one system call costs on this machine (ns per getppid(),
# measured in the same run) beside their reference: it moves them between
# machines.
def sc: "; getppid \(.getppid_ns | r2) ns";

.instance as $i | .http as $h | .kernels as $k | .deploy.languages as $d | .apps as $a |
.latency as $l | .cost as $c | .inflight as $f | sc as $sc |
row("instantiate+run+discard, C hello";
    "\($i.median_us | r2) us";
    "5 us (Wasmtime, published)";
    (5 / $i.median_us | r2); "<= 5 us"; 5 / $i.median_us),
row("  same, memory reset by madvise";
    "\($i.madvise_median_us | r2) us";
    "this run";
    ($i.madvise_median_us / $i.median_us | r2); "(reference)"; 5 / $i.madvise_median_us),
row("hello over HTTP vs nginx";
    "\($h.vivd.median_rps | round) req/s";
    "nginx \($h.nginx.median_rps | round) req/s\($sc)";
    ($h.vivd.median_rps / $h.nginx.median_rps | r2); ">= 0.90x"; $h.vivd.median_rps / $h.nginx.median_rps / 0.9),
row("hello over HTTP vs workerd";
    "\($h.vivd.median_rps | round) req/s";
    "workerd \($h.workerd.median_rps | round) req/s\($sc)";
    ($h.vivd.median_rps / $h.workerd.median_rps | r2); ">= 5x"; $h.vivd.median_rps / $h.workerd.median_rps / 5),
row("CPU deadline on: throughput cost";
    "\((1 - $h.vivd.median_rps / $h.notick.median_rps) * 100 | r2) %";
    "tick off \($h.notick.median_rps | round) req/s\($sc)";
    ($h.vivd.median_rps / $h.notick.median_rps | r2); "<= 5 %"; ($h.vivd.median_rps / $h.notick.median_rps) / 0.95),
row("CPU deadline on: CPU time per request";
    "\(($c.vivd.cpu_us_per_request / $c.vivd_notick.cpu_us_per_request - 1) * 100 | r2) %";
    "tick off \($c.vivd_notick.cpu_us_per_request | r2) us at \($c.cpu_rate) req/s\($sc)";
    ($c.vivd.cpu_us_per_request / $c.vivd_notick.cpu_us_per_request | r2); "<= 5 %";
    1.05 / ($c.vivd.cpu_us_per_request / $c.vivd_notick.cpu_us_per_request)),
row("p99 latency at 50 % of nginx's peak";
    "\($l["50"].vivd.p99_us | r2) us";
    "nginx \($l["50"].nginx.p99_us | r2) us at \($l["50"].nginx.target_rps) req/s\($sc)";
    ($l["50"].vivd.p99_us / $l["50"].nginx.p99_us | r2); "<= 1.5x";
    1.5 / ($l["50"].vivd.p99_us / $l["50"].nginx.p99_us)),
row("p99 latency at 90 % of nginx's peak";
    "\($l["90"].vivd.p99_us | r2) us";
    "nginx \($l["90"].nginx.p99_us | r2) us at \($l["90"].nginx.target_rps) req/s\($sc)";
    ($l["90"].vivd.p99_us / $l["90"].nginx.p99_us | r2); "<= 1.5x";
    1.5 / ($l["90"].vivd.p99_us / $l["90"].nginx.p99_us)),
row("CPU per request: instructions (callgrind)";
    "\($c.vivd.instructions_per_request)";
    "nginx \($c.nginx.instructions_per_request)";
    ($c.vivd.instructions_per_request / $c.nginx.instructions_per_request | r2); "<= 1.2x";
    1.2 / ($c.vivd.instructions_per_request / $c.nginx.instructions_per_request)),
row("  same, vivd's writer thread (access lines)";
    "\($c.vivd.writer_instructions_per_request)";
    "every request logged, as under callgrind";
    ($c.vivd.writer_instructions_per_request / $c.nginx.instructions_per_request | r2);
    "(reference)"; 1),
row("CPU per request: time";
    "\($c.vivd.cpu_us_per_request | r2) us";
    "nginx \($c.nginx.cpu_us_per_request | r2) us at \($c.cpu_rate) req/s\($sc)";
    ($c.vivd.cpu_us_per_request / $c.nginx.cpu_us_per_request | r2); "<= 1.2x";
    1.2 / ($c.vivd.cpu_us_per_request / $c.nginx.cpu_us_per_request)),
row("system calls per request (strace)";
    "\($c.vivd.syscalls_per_request | r2)";
    "nginx \($c.nginx.syscalls_per_request | r2)\($sc)";
    ($c.vivd.syscalls_per_request / $c.nginx.syscalls_per_request | r2); "(reference)"; 1),
row("guest compute vs native (geomean)";
    "\($k.geomean_vivarium_over_native | r2)x native";
    "native build";
    ($k.geomean_vivarium_over_native | r2); "<= 1.15x"; 1.15 / $k.geomean_vivarium_over_native),
row("guest compute vs node V8 (geomean)";
    "\($k.geomean_vivarium_over_node | r2)x node";
    "node on the same .wasm";
    ($k.geomean_vivarium_over_node | r2); "< 1x"; 1 / $k.geomean_vivarium_over_node),
row("upload to first response, C hello";
    ($d.c.median_ms | ms); "goal 1 s"; ($d.c.median_ms / 1000 | r2); "<= 1000 ms"; 1000 / $d.c.median_ms),
row("upload to first response, Rust hello";
    ($d.rust.median_ms | ms); "goal 3 s"; ($d.rust.median_ms / 3000 | r2); "<= 3000 ms"; 3000 / $d.rust.median_ms),
row("upload to first response, AssemblyScript";
    ($d.assemblyscript.median_ms | ms); "goal 3 s";
    ($d.assemblyscript.median_ms / 3000 | r2); "<= 3000 ms"; 3000 / $d.assemblyscript.median_ms),
row("identical re-upload, C hello";
    ($d.c.identical_median_ms | ms); "goal 100 ms";
    ($d.c.identical_median_ms / 100 | r2); "< 100 ms"; 100 / $d.c.identical_median_ms),
row("many apps deployed and routable";
    "\($a.answering) of \($a.apps)";
    "\($a.kb_per_app | r2) KiB per idle app";
    ($a.answering / 10000 | r2); ">= 10000"; $a.answering / 10000),
row("requests in flight in one worker";
    "\($f.ok) of \($f.goal) answered";
    "\($f.held) held at once, \($f.failed) failed; RLIMIT_NOFILE \($f.nofile)";
    ($f.ok / 10000 | r2); ">= 10000"; $f.ok / 10000),
row("  host memory per suspended instance";
    "\($f.host_kib_per_instance | r2) KiB";
    "native stack \($f.stack_kib_per_instance | r2) KiB of it; guest pages \($f.guest_kib_per_instance | r2) KiB";
    ($f.host_kib_per_instance / 64 | r2); "<= 64 KiB"; 64 / $f.host_kib_per_instance),
row("  hello p99 while they are held";
    "\($f.hello_during.p99_us | r2) us";
    "before \($f.hello_before.p99_us | r2) us (p50 \($f.hello_before.p50_us | r2) / \($f.hello_during.p50_us | r2) us)\($f | sc)";
    ($f.hello_during.p99_us / $f.hello_before.p99_us | r2); "<= 1.2x";
    1.2 / ($f.hello_during.p99_us / $f.hello_before.p99_us))
