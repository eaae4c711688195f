#!/usr/bin/env bash
# Installs the Debian packages selfsup needs, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command and stops.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-dev libstb-dev doctest-dev zlib1g-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  gnuplot-nox dataset-fashion-mnist clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "selfsup needs these Debian packages; run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
$cmd
