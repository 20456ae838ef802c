#!/usr/bin/env bash
# Fuzzes one target, built with AddressSanitizer (tests/fuzz/fuzz_NAME.c):
#   hostcall  the host-call boundary: libFuzzer feeds programs of host calls
#             to a real guest (tests/fuzz/guest.c) in the runner (default)
#   unpack    uploads through pipe_unpack()
#   manifest  vivarium.json through pipe_manifest_parse()
#   wasm      modules through the WebAssembly reader (pipeline/wasm.c)
#   cgi       a WASI command's stdout through run_cgi_response()
# The target's name may come first, before the arguments below:
#   scripts/fuzz.sh unpack 600       the unpacker for ten minutes
#   scripts/fuzz.sh                  60 seconds
#   scripts/fuzz.sh 3600             an hour
#   scripts/fuzz.sh 600 -jobs=2 -workers=2   seconds, then any libFuzzer options
#   scripts/fuzz.sh -runs=100000     libFuzzer options only
#   scripts/fuzz.sh CRASH-FILE...    runs these inputs once (to reproduce a crash)
#   scripts/fuzz.sh --ci 20          what ctest runs: fixed seed, and the new
#                                    inputs go to a temporary folder
# It builds first (scripts/build.sh) unless VIV_FUZZ_NO_BUILD=1; VIV_BUILD_DIR
# names the build folder (default build/). New inputs go to the build's
# corpus folder, beside the seeds checked in under tests/fuzz/corpus (the
# host calls' own, whose regress-* ones are inputs that found bugs) and
# tests/fuzz/corpus/NAME for the other targets.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${VIV_BUILD_DIR:-$repo/build}"
here="$build/tests/fuzz"

target=hostcall
ci=()
ci_mode=
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci_mode=1; ci=(-seed=1); shift ;;
    hostcall|unpack|manifest|wasm|cgi) target="$1"; shift ;;
    *) break ;;
  esac
done
fuzzer="$here/clang/tests/fuzz/fuzz_$target"
guest="$here/guest.so"
if [ "$target" = hostcall ]; then
  corpus="$here/corpus"
  seeds="$repo/tests/fuzz/corpus"
  max_len=8192
else
  corpus="$here/corpus-$target"
  seeds="$repo/tests/fuzz/corpus/$target"
  max_len=65536
fi
crashes="$here/crashes/"
if [ -n "$ci_mode" ]; then
  corpus="$(mktemp -d /tmp/viv-fuzz-corpus-XXXXXX)"
  trap 'rm -rf "$corpus"' EXIT
fi
if [ "${VIV_FUZZ_NO_BUILD:-}" != 1 ]; then
  "$repo/scripts/build.sh"
fi
if [ "$target" != hostcall ]; then
  guest=/dev/null # only the host-call target runs a guest
fi
if [ ! -x "$fuzzer" ] || [ ! -e "$guest" ]; then
  echo "fuzz: no fuzz target at $fuzzer or no guest at $guest: build first;" \
       "the build needs clang's libFuzzer (scripts/setup.sh)" >&2
  exit 1
fi
mkdir -p "$corpus" "$crashes"
export VIV_FUZZ_GUEST="$guest"

# The runner turns the guest's faults into traps itself: libFuzzer's handlers
# for SIGSEGV and SIGBUS stay out of the way (AddressSanitizer still reports
# faults in host code).
flags=(-max_len=$max_len -timeout=10 -print_final_stats=1 "-artifact_prefix=$crashes$target-")
if [ "$target" = hostcall ]; then
  flags+=(-handle_segv=0 -handle_bus=0)
fi
if [ $# -gt 0 ] && [ -f "$1" ]; then
  cmd=("$fuzzer" "${flags[@]}" "$@")
  echo "fuzz: running the inputs given: ${cmd[*]}"
  exec "${cmd[@]}"
fi
seconds=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  seconds="$1"
  shift
fi
cmd=("$fuzzer" "${flags[@]}" "-max_total_time=$seconds" "${ci[@]}" "$@" "$corpus"
     "$seeds")
echo "fuzz: ${cmd[*]}"
echo "fuzz: new inputs go to $corpus; a crash is saved in $crashes"
echo "fuzz: reproduce one with: $0 $target ${crashes}$target-crash-..."
status=0
"${cmd[@]}" || status=$?
echo "fuzz: done; crashes so far: $(find "$crashes" -type f | wc -l) in $crashes"
exit $status
