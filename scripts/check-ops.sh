#!/usr/bin/env bash
# Checks what operators are given to run Vivarium on several machines: the
# HAProxy configuration (haproxy -c) and the systemd units (systemd-analyze
# verify, with the build's vivd in place of the installed one), each role of
# the template as an instance. Run by the suite as ctest ops_configs.
#   scripts/check-ops.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

haproxy -c -q -f scripts/haproxy.cfg

fill() {
	sed -e "s|@CMAKE_INSTALL_FULL_BINDIR@/vivd|$(realpath "$build")/vivd/vivd|" \
	    -e "s|@CMAKE_INSTALL_FULL_DATADIR@|/usr/share|" \
	    -e "s|@CMAKE_INSTALL_FULL_SYSCONFDIR@|/etc|" "$1"
}
fill scripts/vivd.service.in > "$work/vivd.service"
for role in api builder runner; do
	fill 'scripts/vivd@.service.in' > "$work/vivd@$role.service"
done
# verify prints its findings and fails on the serious ones; any line it
# prints is a finding here.
out=$(cd "$work" && systemd-analyze verify ./vivd.service ./vivd@api.service \
	./vivd@builder.service ./vivd@runner.service 2>&1 || true)
if [ -n "$out" ]; then
	echo "$out"
	exit 1
fi
# Every role the template is documented for is one vivd takes.
for role in api builder runner; do
	"$build/vivd/vivd" "$role" --help > /dev/null
done
echo "check-ops: haproxy.cfg and 4 units are valid"
