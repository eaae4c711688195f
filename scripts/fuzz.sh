#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.cpp) with clang in build-fuzz/ and runs each for
# the given number of seconds (default 300), one after another. Crashes land in
# build-fuzz/crashes/<target>/; copy any into tests/fuzz/regressions/ and add it to a test.
#   scripts/fuzz.sh [seconds] [target ...]      FUZZ_PARALLEL=1 runs the targets at once, niced.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_cifar fuzz_idx fuzz_image)

# The library is instrumented for coverage too (fuzzer-no-link), not only the fuzz entry points.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DSELFSUP_FUZZ=ON -DSELFSUP_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
  >/dev/null
cmake --build build-fuzz -j 2 --target "${targets[@]}"

run_one() {
  local t="$1" corpus crashes
  corpus="build-fuzz/corpus/$t"
  crashes="build-fuzz/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  cp -n tests/fuzz/seeds/"$t"* tests/fuzz/regressions/"$t"* "$corpus"/ 2>/dev/null || true
  echo "[fuzz] $t for ${secs}s"
  nice -n "${FUZZ_NICE:-0}" "build-fuzz/$t" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len=65536 -artifact_prefix="$crashes/" -print_final_stats=1 \
    >"build-fuzz/$t.log" 2>&1 || echo "[fuzz] $t exited with status $? (see build-fuzz/$t.log)"
  echo "[fuzz] $t: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "build-fuzz/$t.log" | tail -n 1)"
  grep -E 'stat::|ERROR|SUMMARY' "build-fuzz/$t.log" || true
}

if [ "${FUZZ_PARALLEL:-0}" = 1 ]; then
  for t in "${targets[@]}"; do FUZZ_NICE="${FUZZ_NICE:-10}" run_one "$t" & done
  wait
else
  for t in "${targets[@]}"; do run_one "$t"; done
fi
