#!/usr/bin/env bash
# selfsup's SSL training step against PyTorch's, alternated in one run.
#
#   scripts/bench_vs_torch.sh [--model resnet-tiny | --config FILE] [--batch 64] [--rounds 2]
#                             [--steps 5] [--warmup 2] [--threads 2] [--views 2] [--out DIR]
#                             [--build] [--profile]
#
# Each round runs, every one in a fresh process (so each peak RSS is its own):
#   1. ./build-cpu/selfsup bench ...                      (--profile false unless --profile)
#   2. scripts/bench_step.py, glibc's default malloc      (contiguous, then channels_last)
#   3. scripts/bench_step.py with GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:
#      glibc.malloc.trim_threshold=68719476736             (contiguous, then channels_last)
# and the sgemm line of ./build-cpu/bench_conv is measured before the first and after the last
# round (selfsup's BLAS), with torch.mm on the same 4096^3 square (PyTorch's BLAS).
# Then a markdown table of medians over all timed steps of all rounds, and ratios.
#
# The machine is shared and noisy: only the ratios within one invocation mean much.
# selfsup is built (build-cpu, Release, CUDA off) only when the binaries are missing or with
# --build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODEL="" CONFIG="" BATCH=64 ROUNDS=2 STEPS=5 WARMUP=2 THREADS=2 VIEWS=2 OUT="" BUILD=0 PROFILE=false
# An option's value, or a clear error when it is missing.
val() {
  [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || {
    echo "bench_vs_torch: $1 needs a value" >&2
    exit 2
  }
  printf '%s' "$2"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$(val "$1" "${2-}"); shift 2 ;;
    --config) CONFIG=$(val "$1" "${2-}"); shift 2 ;;
    --batch|-b) BATCH=$(val "$1" "${2-}"); shift 2 ;;
    --rounds) ROUNDS=$(val "$1" "${2-}"); shift 2 ;;
    --steps) STEPS=$(val "$1" "${2-}"); shift 2 ;;
    --warmup) WARMUP=$(val "$1" "${2-}"); shift 2 ;;
    --threads) THREADS=$(val "$1" "${2-}"); shift 2 ;;
    --views|-k) VIEWS=$(val "$1" "${2-}"); shift 2 ;;
    --out) OUT=$(val "$1" "${2-}"); shift 2 ;;
    --build) BUILD=1; shift ;;
    --profile) PROFILE=true; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench_vs_torch: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL$CONFIG" ] || MODEL=resnet-tiny
# Checked before anything is timed: a bad value fails now, not after the sgemm passes.
need_int() {  # name value minimum
  case "$2" in
    '' | *[!0-9]*) echo "bench_vs_torch: $1 must be a whole number, got '$2'" >&2; exit 2 ;;
  esac
  [ "$2" -ge "$3" ] || { echo "bench_vs_torch: $1 must be at least $3, got $2" >&2; exit 2; }
}
need_int --batch "$BATCH" 1
need_int --rounds "$ROUNDS" 1
need_int --steps "$STEPS" 1
need_int --warmup "$WARMUP" 0
need_int --threads "$THREADS" 1
need_int --views "$VIEWS" 2
if [ -n "$CONFIG" ] && [ -n "$MODEL" ]; then
  echo "bench_vs_torch: give --model or --config, not both" >&2
  exit 2
fi
if [ -n "$CONFIG" ] && [ ! -f "$CONFIG" ]; then
  echo "bench_vs_torch: --config $CONFIG: no such file" >&2
  exit 2
fi
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "[bench_vs_torch] PyTorch is not importable by $PY; install Debian's package:" >&2
  echo "  sudo apt-get install -y python3-torch" >&2
  exit 1
fi
# The models both sides build: bench_step.py's table (selfsup builds all of them and more).
BOTH=$("$PY" -c 'import sys; sys.path.insert(0, "scripts"); import bench_step; print(" ".join(bench_step.MODELS))')
if [ -n "$MODEL" ] && [[ " $BOTH " != *" $MODEL "* ]]; then
  echo "bench_vs_torch: --model $MODEL is not one both sides build ($BOTH)" >&2
  exit 2
fi
BUILD_DIR=build-cpu
SELFSUP=$BUILD_DIR/selfsup
BENCH_CONV=$BUILD_DIR/bench_conv
TUNED='glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=68719476736'

if [ "$BUILD" = 1 ] || [ ! -x "$SELFSUP" ] || [ ! -x "$BENCH_CONV" ]; then
  echo "== building selfsup (build-cpu, Release, CUDA off)"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSELFSUP_CUDA=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target selfsup bench_conv
fi

OUT=${OUT:-$(mktemp -d /tmp/bench_vs_torch.XXXXXX)}
mkdir -p "$OUT"
JSON=$OUT/results.jsonl
: >"$JSON"
LOG=$OUT/log.txt
: >"$LOG"

SEL=(--batch "$BATCH" --views "$VIEWS" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS")
if [ -n "$CONFIG" ]; then
  SEL+=(--config "$CONFIG")
else
  SEL+=(--model "$MODEL")
fi
# Both sides time InfoNCE (bench_step.py implements only that), whatever the config's [loss] is.
CMD_SELFSUP=("$SELFSUP" bench "${SEL[@]}" --loss infonce --profile "$PROFILE" --json "$JSON")
CMD_TORCH=("$PY" scripts/bench_step.py "${SEL[@]}" --memory-format both --json "$JSON")
CMD_GEMM=("$BENCH_CONV" --threads "$THREADS" --reps 3)

run() {  # label, command...
  local label=$1; shift
  echo "== $label: $*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
}

torch_gemm() {
  OMP_NUM_THREADS=$THREADS "$PY" - "$THREADS" <<'EOF'
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = 4096
a, b = torch.ones(n, n), torch.full((n, n), 0.5)
torch.mm(a, b)
t = []
for _ in range(3):
    t0 = time.perf_counter(); torch.mm(a, b); t.append(time.perf_counter() - t0)
t = sorted(t)[1]
print("torch.mm sgemm %dx%dx%d  %8.2f ms  %7.1f GFLOP/s" % (n, n, n, t * 1e3, 2 * n**3 / t / 1e9))
EOF
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), nproc $(nproc), $(uname -r)" | tee -a "$LOG"
echo "load before: $(uptime)" | tee -a "$LOG"
echo "git: $(git rev-parse --short HEAD) ($(git status --porcelain | wc -l) paths modified/untracked)" | tee -a "$LOG"

run "sgemm (selfsup BLAS) before" "${CMD_GEMM[@]}"
run "sgemm (torch BLAS) before" torch_gemm
for r in $(seq 1 "$ROUNDS"); do
  echo "#### round $r / $ROUNDS ($(uptime | sed 's/.*load/load/'))" | tee -a "$LOG"
  run "selfsup" "${CMD_SELFSUP[@]}"
  run "torch default malloc" env -u GLIBC_TUNABLES "${CMD_TORCH[@]}"
  run "torch tuned malloc" env GLIBC_TUNABLES="$TUNED" "${CMD_TORCH[@]}"
done
run "sgemm (selfsup BLAS) after" "${CMD_GEMM[@]}"
run "sgemm (torch BLAS) after" torch_gemm
echo "load after: $(uptime)" | tee -a "$LOG"

echo
echo "commands (each round, each a fresh process; torch runs one process per memory format):"
echo "  ${CMD_SELFSUP[*]}"
echo "  env -u GLIBC_TUNABLES ${CMD_TORCH[*]}"
echo "  env GLIBC_TUNABLES=$TUNED ${CMD_TORCH[*]}"
echo "  ${CMD_GEMM[*]}   (before and after)"
echo "results: $JSON, log: $LOG"
echo

"$PY" - "$JSON" "$LOG" "$(lscpu | sed -n 's/^Model name: *//p')" "$(nproc)" <<'EOF'
import json, re, statistics, sys
json_path, log_path, cpu, nproc = sys.argv[1:5]
recs = [json.loads(l) for l in open(json_path) if l.strip()]
log = open(log_path).read()

sgemm_selfsup = max([float(v) for v in re.findall(r"(?m)^sgemm \S+\s+[\d.]+ ms\s+([\d.]+) GFLOP/s", log)] or [0]) or None
sgemm_torch = max([float(v) for v in re.findall(r"(?m)^torch\.mm sgemm \S+\s+[\d.]+ ms\s+([\d.]+) GFLOP/s", log)] or [0]) or None

def key(r):
    if r["impl"] == "selfsup":
        return "selfsup"
    alloc = "tuned" if r["allocator"].startswith("glibc-tuned") else r["allocator"].replace("glibc-", "")
    return "torch %s malloc, %s" % (alloc, r["memory_format"])

groups = {}
for r in recs:
    steps = list(r["step_ms"])
    # older selfsup builds wrote "step_ms" in seconds: normalise by comparing with ms_per_step
    if steps and statistics.median(steps) < r["ms_per_step"] / 100:
        steps = [s * 1e3 for s in steps]
    g = groups.setdefault(key(r), {"steps": [], "rss": [], "rounds": [], "rec": r})
    g["steps"] += steps
    g["rss"].append(r["peak_rss_mib"])
    g["rounds"].append(r["ms_per_step"])
    if "baseline_rss_mib" in r:
        g.setdefault("base", []).append(r["baseline_rss_mib"])

def med_upper(v):  # apps/bench.cpp's convention: sorted[n/2]
    return sorted(v)[len(v) // 2]

rows = []
for name, g in groups.items():
    r = g["rec"]
    views = r["batch"] * r["views"]
    ms = med_upper(g["steps"])
    gflop_step = r["gflops"] * r["ms_per_step"] / 1e3  # 3 x forward FLOPs
    rows.append(dict(name=name, ms=ms, vps=views / (ms / 1e3), gfs=gflop_step / (ms / 1e3),
                     rss=statistics.median(g["rss"]), base=statistics.median(g["base"]) if "base" in g else None,
                     rounds=g["rounds"], n=len(g["steps"]), model=r["model"], batch=r["batch"], views=r["views"]))
sel = next((x for x in rows if x["name"] == "selfsup"), None)
if sel is None:
    sys.exit("no selfsup result")
torch_rows = [x for x in rows if x["name"] != "selfsup"]
rows.sort(key=lambda x: (x["name"] != "selfsup", x["name"]))

print("machine: %s, nproc %s; %s, batch %d x %d views, %d timed steps pooled per row"
      % (cpu, nproc, sel["model"], sel["batch"], sel["views"], sel["n"]))
print()
print("| impl / config | views/s (median) | ms/step | GFLOP/s | peak RSS MiB | per-round ms/step "
      "| selfsup/this views/s | selfsup/this peak RSS |")
print("|---|---:|---:|---:|---:|---|---:|---:|")
for x in rows:
    rss = "%.0f" % x["rss"] + (" (%.0f after import)" % x["base"] if x["base"] is not None else "")
    vr = "-" if x is sel else "%.2f" % (sel["vps"] / x["vps"])
    mr = "-" if x is sel else "%.2f" % (sel["rss"] / x["rss"])
    print("| %s | %.1f | %.1f | %.1f | %s | %s | %s | %s |"
          % (x["name"], x["vps"], x["ms"], x["gfs"], rss,
             " ".join("%.0f" % t for t in x["rounds"]), vr, mr))
print()
for alloc in ("default", "tuned"):
    cand = [x for x in torch_rows if x["name"].startswith("torch %s" % alloc)]
    if not cand:
        continue
    best = max(cand, key=lambda x: x["vps"])
    print("- selfsup vs torch %s malloc, better memory format (%s): views/s x%.2f, peak RSS x%.2f"
          % (alloc, best["name"].split(", ")[1], sel["vps"] / best["vps"], sel["rss"] / best["rss"]))
if torch_rows:
    best = max(torch_rows, key=lambda x: x["vps"])
    print("- selfsup vs fastest torch (%s): views/s x%.2f, peak RSS x%.2f"
          % (best["name"], sel["vps"] / best["vps"], sel["rss"] / best["rss"]))
if sgemm_selfsup:
    print("- sgemm 4096^3 with selfsup's OpenBLAS (bench_conv, best of before/after): %.1f GFLOP/s; "
          "selfsup step at %.0f%% of it" % (sgemm_selfsup, 100 * sel["gfs"] / sgemm_selfsup))
if sgemm_torch:
    bt = max(torch_rows, key=lambda x: x["vps"]) if torch_rows else None
    print("- sgemm 4096^3 with torch.mm: %.1f GFLOP/s%s" % (sgemm_torch,
          "; fastest torch step at %.0f%% of it" % (100 * bt["gfs"] / sgemm_torch) if bt else ""))
EOF
