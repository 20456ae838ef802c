#!/usr/bin/env bash
# The first command of the README: installs what is missing, builds, and runs
# `vivd serve` (API on 127.0.0.1:8080, apps on http://APP.localhost:8000/,
# data in ./vivarium-data). Arguments go to vivd serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# Started as root, vivd runs as the user vivarium, which must reach its
# data folder: a checkout in root's home is out of its reach, so the data
# goes to /var/lib/vivarium there instead (unless --data says otherwise).
args=("$@")
if [ "$(id -u)" -eq 0 ] && [[ " $* " != *" --data"* ]] &&
   ! runuser -u vivarium -- test -x "$PWD"; then
  echo "run: the user vivarium cannot reach $PWD; the data folder is /var/lib/vivarium"
  mkdir -p /var/lib/vivarium
  args=(--data /var/lib/vivarium "$@")
fi
exec build/vivd/vivd serve "${args[@]}"
