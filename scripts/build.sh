#!/usr/bin/env bash
# Configures and builds a Release tree in build/ (extra CMake flags pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "${BUILD_DIR:-build}" -j "$(nproc)"
