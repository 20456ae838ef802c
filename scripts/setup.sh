#!/usr/bin/env bash
# Installs what Vivarium needs on Debian 12 (bookworm) and is a no-op when
# everything is there. apt-get runs as root, through sudo otherwise.
#   scripts/setup.sh           build, run and test
#   scripts/setup.sh --bench   also what scripts/bench.sh compares against
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config git ca-certificates
  # libraries
  libsqlite3-dev libmicrohttpd-dev libjansson-dev libarchive-dev
  libcurl4-openssl-dev libssl-dev libh2o-evloop-dev uthash-dev
  libcriterion-dev
  # guest toolchains: C to wasm, wasm tools, AOT compiler, build sandbox
  clang lld llvm wasi-libc libclang-rt-dev-wasm32 wabt binaryen bubblewrap
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(nginx-light wrk gnuplot-nox nodejs npm linux-perf valgrind)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
