#!/usr/bin/env bash
# Checks that every C source and header of the project is in the house format
# of .clang-format (tabs, 100 columns, Linux braces). Lists each file that is
# not, with clang-format's first complaints, and exits 1; exits 0 when all are.
#   scripts/check-format.sh          check
#   scripts/check-format.sh --fix    reformat the files in place instead
# The files are those git tracks when this is a git checkout, else every .c
# and .h beneath the source folders.
set -euo pipefail
cd "$(dirname "$0")/.."

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t files < <(git ls-files '*.c' '*.h')
else
	mapfile -t files < <(find api bench cli common pipeline runner sdk store tests vivd \
		-name '*.[ch]' -type f | sort)
fi
if [ "${#files[@]}" = 0 ]; then
	echo "check-format: no C files found" >&2
	exit 1
fi

if [ "${1:-}" = "--fix" ]; then
	clang-format -i "${files[@]}"
	exit 0
fi

bad=0
for f in "${files[@]}"; do
	if ! out=$(clang-format --dry-run --Werror "$f" 2>&1); then
		echo "$f is not in the house format; scripts/check-format.sh --fix reformats it:"
		printf '%s\n' "$out" | head -n 6 | sed 's/^/  /'
		bad=$((bad + 1))
	fi
done
echo "check-format: ${#files[@]} files, $bad not formatted"
[ "$bad" = 0 ]
