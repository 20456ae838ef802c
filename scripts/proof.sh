#!/usr/bin/env bash
# Runs the proof under hostile input and faults (issue 13) at full size and
# prints each test's figures: the suite runs the same tests smaller.
#   scripts/proof.sh              every proof test, full counts
#   scripts/proof.sh unpack ...   only the ones named (unpack, differential,
#                                 traps, tenants, outbound, slow, framing,
#                                 crashes, fuzz)
# Sizes come from the environment, with these defaults: VIV_PROOF_DAMAGE
# (damaged archives beside the other hostile uploads, 600),
# VIV_PROOF_MODULES (Binaryen modules compared, 1000), VIV_PROOF_TRAPS
# (traps in a row, 10000), VIV_PROOF_ALTERNATIONS (tenant alternations,
# 1000), VIV_PROOF_CRASHES (SIGKILL rounds of two deploys each, 60),
# VIV_PROOF_FUZZ_SECONDS (each fuzz target, 300). It builds first
# (scripts/build.sh) unless VIV_PROOF_NO_BUILD=1; VIV_BUILD_DIR names the
# build folder (default build/).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${VIV_BUILD_DIR:-$repo/build}"
export VIV_PROOF_DAMAGE="${VIV_PROOF_DAMAGE:-600}"
export VIV_PROOF_MODULES="${VIV_PROOF_MODULES:-1000}"
export VIV_PROOF_TRAPS="${VIV_PROOF_TRAPS:-10000}"
export VIV_PROOF_ALTERNATIONS="${VIV_PROOF_ALTERNATIONS:-1000}"
export VIV_PROOF_CRASHES="${VIV_PROOF_CRASHES:-60}"
fuzz_seconds="${VIV_PROOF_FUZZ_SECONDS:-300}"

if [ "${VIV_PROOF_NO_BUILD:-}" != 1 ]; then
  "$repo/scripts/build.sh"
fi
declare -A tests=(
  [unpack]=pipeline/test_pipeline_unpack_hostile
  [differential]=pipeline/test_pipeline_differential
  [traps]=e2e/test_e2e_guest_traps
  [tenants]=e2e/test_e2e_tenants
  [outbound]=e2e/test_e2e_outbound_private
  [slow]=e2e/test_e2e_slow_clients
  [framing]=e2e/test_e2e_framing
  [crashes]=e2e/test_e2e_crashes
)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(unpack differential traps tenants outbound slow framing crashes fuzz)
fi
status=0
figures="$(mktemp /tmp/viv-proof-XXXXXX)"
trap 'rm -f "$figures"' EXIT
for name in "${names[@]}"; do
  if [ "$name" = fuzz ]; then
    for target in hostcall unpack manifest wasm cgi; do
      echo "proof: fuzzing $target for $fuzz_seconds s"
      log="$build/tests/fuzz/proof-$target.log"
      if VIV_FUZZ_NO_BUILD=1 VIV_BUILD_DIR="$build" "$repo/scripts/fuzz.sh" "$target" \
           "$fuzz_seconds" >"$log" 2>&1; then
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
        echo "figure: fuzz $target: ${runs:-?} inputs in $fuzz_seconds s, no crash" | tee -a "$figures"
      else
        echo "figure: fuzz $target: FAILED, see $log" | tee -a "$figures"
        status=1
      fi
    done
    continue
  fi
  bin="${tests[$name]:-}"
  if [ -z "$bin" ]; then
    echo "proof: no test called $name" >&2
    exit 2
  fi
  echo "proof: $name ($bin)"
  # pipefail: the test's own failure fails the pipeline.
  if ! (cd "$build" && "./tests/$bin" --jobs 1 2>&1) | tee /dev/stderr | grep '^figure:' >>"$figures"; then
    status=1
  fi
done
echo
echo "proof: figures"
cat "$figures"
exit $status
