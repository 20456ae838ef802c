#!/usr/bin/env bash
# Checks the runner's layering (issue 10): no file of runner/ calls into more
# than three other files of runner/. Prints the map "file -> files it calls",
# one line a file, and exits 1 when a file calls more than three others.
#   scripts/check-layering.sh              the build in build/
#   scripts/check-layering.sh BUILD-DIR    another build
# VIV_LAYERING_MAX changes the bound (3).
#
# It reads the object files the build made of runner/ (no ctags, no parsing
# of C): a function one object defines (nm types T, W, i) and another
# leaves undefined is a call from the second file into the first. Headers do
# not count (an inline function there is the caller's own code), nor do
# variables. coro_x86_64.S is the x86-64 half of coro.c and counts as
# coro.c. Only objects of the sources that exist in runner/ now are read, so
# that a stale object of a file that is gone does not count.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build}"
max="${VIV_LAYERING_MAX:-3}"
objdir="$build/runner/CMakeFiles/viv_runner.dir"

# The file an object stands for in the map.
unit_of() {
  case "$1" in
    coro_x86_64.S) echo coro.c ;;
    *) echo "$1" ;;
  esac
}

declare -A defined_in   # symbol -> file
declare -A object_of    # file -> object path (several for coro.c)
files=()
for src in "$repo"/runner/*.c "$repo"/runner/*.S; do
  [ -e "$src" ] || continue
  name="$(basename "$src")"
  obj="$objdir/$name.o"
  if [ ! -f "$obj" ]; then
    [[ "$name" == *.S ]] && continue # not built on this architecture
    echo "check-layering: $obj is missing; build first" >&2
    exit 2
  fi
  unit="$(unit_of "$name")"
  if [ -z "${object_of[$unit]:-}" ]; then
    files+=("$unit")
    object_of[$unit]="$obj"
  else
    object_of[$unit]+=" $obj"
  fi
  while read -r sym type _; do
    case "$type" in
      T | W | i) defined_in[$sym]="$unit" ;;
    esac
  done < <(nm -P --defined-only "$obj")
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "check-layering: no runner sources under $repo/runner" >&2
  exit 2
fi

status=0
for unit in $(printf '%s\n' "${files[@]}" | sort); do
  declare -A callees=()
  for obj in ${object_of[$unit]}; do
    while read -r sym _; do
      callee="${defined_in[$sym]:-}"
      if [ -n "$callee" ] && [ "$callee" != "$unit" ]; then
        callees[$callee]=1
      fi
    done < <(nm -P -u "$obj")
  done
  list="$(printf '%s\n' "${!callees[@]}" | sed '/^$/d' | sort | tr '\n' ' ')"
  n="${#callees[@]}"
  mark=""
  if [ "$n" -gt "$max" ]; then
    mark="   <-- calls $n files, more than $max"
    status=1
  fi
  printf '%-18s -> %s%s\n' "$unit" "${list% }" "$mark"
  unset callees
done
if [ "$status" -ne 0 ]; then
  echo "check-layering: a runner file calls into more than $max others" >&2
fi
exit "$status"
