#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: configures and builds a CUDA tree in build-cuda/, runs every
# test (the CUDA comparisons included), then the training-step benchmark on the GPU and, when
# PyTorch sees a GPU, the PyTorch baseline. Every step has a timeout; the whole run stays under
# 8 minutes. Exits non-zero when the build or a test fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

start=$SECONDS
budget=${GPU_CHECK_BUDGET:-470}  # seconds for everything
jobs=$(nproc)
status=0

left() { echo $((budget - (SECONDS - start))); }
step() { echo; echo "== [gpu_check] $* ($(left)s left)"; }

# Runs "$@" with a timeout of min($1, time left - 5); returns 124 on a timeout.
timed() {
  local limit=$1
  shift
  local rest=$(($(left) - 5))
  ((rest < limit)) && limit=$rest
  if ((limit < 10)); then
    echo "[gpu_check] not enough time left for: $*"
    return 124
  fi
  timeout --signal=TERM --kill-after=10 "$limit" "$@"
}

step "device"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "[gpu_check] nvidia-smi not found; the CUDA tests will report 'skipped: no CUDA device'"
fi

step "configure build-cuda (SELFSUP_CUDA=ON, Release)"
if ! timed 60 cmake -S . -B build-cuda -DSELFSUP_CUDA=ON -DCMAKE_BUILD_TYPE=Release >/dev/null; then
  echo "[gpu_check] configure failed"
  exit 1
fi

step "build (-j$jobs)"
t0=$SECONDS
if ! timed 270 cmake --build build-cuda -j "$jobs" >build-cuda/gpu_check_build.log 2>&1; then
  tail -n 40 build-cuda/gpu_check_build.log
  echo "[gpu_check] build failed or timed out (log: build-cuda/gpu_check_build.log)"
  exit 1
fi
echo "[gpu_check] built in $((SECONDS - t0))s"

step "ctest"
if ! (cd build-cuda && timed 120 ctest --output-on-failure -j 4 --timeout 90); then
  echo "[gpu_check] ctest failed"
  status=1
fi
if [ -x build-cuda/test_cuda ]; then
  # The CUDA comparison alone, verbose, so its skip or pass is visible in the log.
  (cd build-cuda && timed 60 ./test_cuda) | tail -n 8 || status=1
fi

step "selfsup bench on the GPU"
if [ -x build-cuda/selfsup ]; then
  timed 90 ./build-cuda/selfsup bench --device cuda --model resnet18 --batch 256 --views 2 ||
    { echo "[gpu_check] selfsup bench failed or timed out"; status=1; }
else
  echo "[gpu_check] build-cuda/selfsup not built (apps/main.cpp absent?): bench skipped"
fi

step "PyTorch baseline"
if [ -f scripts/bench_step.py ]; then
  if /usr/bin/python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    2>/dev/null; then
    timed 90 /usr/bin/python3 scripts/bench_step.py --device cuda --model resnet18 --batch 256 \
      --views 2 || echo "[gpu_check] bench_step.py failed or timed out"
  else
    echo "[gpu_check] PyTorch with CUDA not available to /usr/bin/python3: baseline skipped"
  fi
else
  echo "[gpu_check] scripts/bench_step.py absent: baseline skipped"
fi

echo
echo "[gpu_check] done in $((SECONDS - start))s, status $status"
exit $status
