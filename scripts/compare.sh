#!/usr/bin/env bash
# The main job: installs what is missing, builds, and compares the objectives on
# Fashion-MNIST (Debian's dataset-fashion-mnist: no download). Extra arguments go to
# `selfsup compare`, e.g. --set optim.epochs=4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/selfsup compare --config configs/fmnist-small.toml --overwrite "$@"
