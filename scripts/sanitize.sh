#!/usr/bin/env bash
# Builds with AddressSanitizer + UndefinedBehaviorSanitizer (-DSELFSUP_SANITIZE=ON) in build-asan/
# and runs ctest there. Extra arguments go to ctest, e.g.: scripts/sanitize.sh -R data
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSELFSUP_SANITIZE=ON -DSELFSUP_CUDA=OFF \
  -DSELFSUP_NATIVE=OFF >/dev/null
# With ctest arguments such as -R data, build only the test targets they select.
targets=()
if [ "$#" -ge 2 ] && [ "$1" = "-R" ]; then
  for src in tests/test_*.cpp; do
    name=$(basename "$src" .cpp)
    [[ "$name" =~ $2 ]] && targets+=(--target "$name")
  done
fi
cmake --build build-asan -j "${JOBS:-2}" "${targets[@]}"
cd build-asan
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --output-on-failure "$@"
