#!/usr/bin/env bash
# Downloads the official CIFAR-10 binary archive and verifies its checksum (machines with
# internet only). Usage: bash scripts/get_cifar10.sh [target-dir]   (default: data/cifar10)
# Afterwards: selfsup compare -c configs/cifar10-small.toml --set data.path=<target-dir>
set -euo pipefail
dir="${1:-data/cifar10}"
url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
md5="c32a1d4ab5d03f1284b67883e8d87530"
mkdir -p "$dir"
tmp="$dir/cifar-10-binary.tar.gz"
if command -v curl >/dev/null; then curl -fL -o "$tmp" "$url"; else wget -O "$tmp" "$url"; fi
echo "$md5  $tmp" | md5sum -c -
tar -xzf "$tmp" -C "$dir" --strip-components=1
rm "$tmp"
# The extracted batches must match the published sha256 sums.
(cd "$dir" && sha256sum -c - <<'SUMS'
cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5  data_batch_1.bin
a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed  data_batch_2.bin
8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b  test_batch.bin
SUMS
)
ls -l "$dir"
