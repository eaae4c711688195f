#!/usr/bin/env bash
# The test command: installs what is missing, builds Release, checks formatting, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
bash scripts/check_format.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"
