#!/usr/bin/env bash
# The first command of the README: installs what is missing, builds, and runs
# `vivd serve` (API on 127.0.0.1:8080, apps on http://APP.localhost:8000/,
# data in ./vivarium-data). Arguments go to vivd serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/vivd/vivd serve "$@"
