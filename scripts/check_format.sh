#!/usr/bin/env bash
# Fails if any C++ source differs from what .clang-format produces.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh' 2>/dev/null || true)
[ -n "$files" ] || exit 0
bad=0
for f in $files; do
  if ! clang-format --style=file "$f" | cmp -s - "$f"; then
    echo "[format] $f differs from .clang-format (run: clang-format -i $f)" >&2
    bad=1
  fi
done
[ $bad -eq 0 ] && echo "[format] all $(echo "$files" | wc -w) files clean"
exit $bad
