#!/usr/bin/env bash
# Installs what Vivarium needs on Debian 12 (bookworm) and is a no-op when
# everything is there. apt-get runs as root, through sudo otherwise.
#   scripts/setup.sh           build, run and test
#   scripts/setup.sh --bench   also what scripts/bench.sh compares against
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config git ca-certificates
  # the house format, checked by the suite (scripts/check-format.sh)
  clang-format
  # libraries
  libsqlite3-dev libmicrohttpd-dev libjansson-dev libarchive-dev
  libcurl4-openssl-dev libssl-dev libh2o-evloop-dev uthash-dev
  libcriterion-dev
  # the store's second database: libpq to reach PostgreSQL, and the server,
  # which the tests start in a scratch folder of their own
  libpq-dev postgresql
  # the load balancer in front of runner hosts: its shipped configuration is
  # checked, and a test puts it in front of two runner hosts
  haproxy systemd
  # guest toolchains: C and C++ to wasm, wasm tools, AOT compiler, build sandbox
  clang lld llvm wasi-libc libclang-rt-dev-wasm32 libc++-dev-wasm32 wabt binaryen
  bubblewrap
  # Rust guests: Debian's rustc has the wasm32-wasi standard library (a
  # rustup toolchain on PATH need not); builds are offline and take crates
  # from Debian's librust-*-dev packages, of which cfg-if is the smallest
  rustc cargo libstd-rust-dev-wasm32 librust-cfg-if-dev
  # the host-call fuzz target (scripts/fuzz.sh): clang's libFuzzer and ASan runtimes
  libclang-rt-14-dev
  # the web page's browser test (tests/web) drives Debian's Chromium
  chromium chromium-driver
  # the outbound test (tests/e2e/test_outbound_private.c) sets up a network
  # namespace of its own with ip
  iproute2
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(nginx-light wrk gnuplot-nox jq curl iproute2 linux-perf valgrind strace)
fi
# AssemblyScript's compiler runs on node and comes from npm. A node that is
# already installed (nodesource's, say) is used as it is: Debian's npm
# package conflicts with it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
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

# The users vivd runs as when it starts as root: vivarium for the API, the
# builders and the runner workers, vivarium-build for tenants' build steps.
# Neither can log in; each has a group of its own.
for user in vivarium vivarium-build; do
  if ! getent passwd "$user" >/dev/null; then
    echo "setup: adding the system user $user"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
      sudo=(sudo)
    fi
    "${sudo[@]}" useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$user"
  fi
done

# The AssemblyScript compiler, pinned: the pipeline builds with this version
# only (PIPE_ASC_VERSION in pipeline/pipeline_int.h) and finds it in the tool
# directory (VIV_TOOL_DIR in CMakeLists.txt).
asc_version=0.27.37
tool_dir="${VIV_TOOL_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.tools}"
asc_pkg="$tool_dir/node_modules/assemblyscript/package.json"
have=""
if [ -f "$asc_pkg" ]; then
  have=$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$asc_pkg")
fi
if [ "$have" != "$asc_version" ]; then
  echo "setup: installing assemblyscript@$asc_version into $tool_dir"
  mkdir -p "$tool_dir"
  npm install --prefix "$tool_dir" --save-exact --no-audit --no-fund --loglevel=error \
    "assemblyscript@$asc_version"
fi

# The web page's code editor, CodeMirror 5 (its UMD build needs no bundler;
# the API serves it at /web/vendor/codemirror/); playwright-core, with which
# the browser test drives Debian's Chromium, and axe-core, with which it
# checks the page's accessibility; pinned, in the tool folder.
web_npm=()
for spec in codemirror@5.65.21 playwright-core@1.65.2 axe-core@4.14.1; do
  pkg="$tool_dir/node_modules/${spec%@*}/package.json"
  have=""
  if [ -f "$pkg" ]; then
    have=$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$pkg")
  fi
  [ "$have" = "${spec##*@}" ] || web_npm+=("$spec")
done
if [ ${#web_npm[@]} -gt 0 ]; then
  echo "setup: installing ${web_npm[*]} into $tool_dir"
  mkdir -p "$tool_dir"
  npm install --prefix "$tool_dir" --save-exact --no-audit --no-fund --loglevel=error \
    "${web_npm[@]}"
fi
