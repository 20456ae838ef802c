#!/usr/bin/env bash
# The second command of the README: installs what is missing, builds, and runs
# every test (unit tests and end-to-end tests against the real vivd).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --parallel 2 "$@"
