#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every C file git tracks is formatted as .clang-format says (clang-format 14).
# Prints the files that drift and exits 1; run "clang-format -i" on them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files '*.c' '*.h')
drift=()
for f in "${files[@]}"; do
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		drift+=("$f")
	fi
done
if ((${#drift[@]})); then
	printf 'not clang-formatted: %s\n' "${drift[@]}"
	echo "0 passed, ${#drift[@]} failed"
	exit 1
fi
echo "clang-format: ${#files[@]} files formatted"
