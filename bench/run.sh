#!/usr/bin/env bash
# run.sh — the benchmark (`make bench`): fmnist (bench.c) against PyTorch (peer_torch.py) on the
# real Fashion-MNIST, one process per measurement so that peak memory is each one's own, in
# rounds that alternate the two so both see the same machine. Prints the figures and a table of
# ratios; the raw JSON lines go to $BENCH_OUT.
#   BENCH_THREADS [all cores]  BENCH_ROUNDS [3]  BENCH_EPOCHS [4 timed + 1 warm-up]
#   BENCH_REPS [5]  BENCH_PRESETS ["mlp mlp256 mlp300-100 cnn"]  BENCH_OUT [build/bench-results.jsonl]
#   BENCH_CNN_IMAGES [6000: cnn is timed on the first N training images, reported per 60,000;
#   0 = all]
#   BENCH_PYTHON [/usr/bin/python3, the one Debian's python3-torch installs into]
#   BENCH_TIMEOUT [900: seconds one measurement may take; a busy machine can stall OpenMP]
#   FMNIST_DATA [/usr/share/datasets/fashion-mnist]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CORES=$(nproc)
THREADS=${BENCH_THREADS:-$CORES}
ROUNDS=${BENCH_ROUNDS:-3}
EPOCHS=${BENCH_EPOCHS:-4}
REPS=${BENCH_REPS:-5}
PRESETS=${BENCH_PRESETS:-mlp mlp256 mlp300-100 cnn}
CNN_IMAGES=${BENCH_CNN_IMAGES:-6000}
OUT=${BENCH_OUT:-$BUILD/bench-results.jsonl}
TIMEOUT=${BENCH_TIMEOUT:-900}
DATA=${FMNIST_DATA:-/usr/share/datasets/fashion-mnist}
BENCH=$BUILD/fmnist-bench

[ -x "$BENCH" ] || { echo "run.sh: $BENCH is missing; run make bench" >&2; exit 1; }
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -e "$DATA/train-images-idx3-ubyte" ]; then
    echo "run.sh: no Fashion-MNIST in $DATA (apt-get install dataset-fashion-mnist)" >&2
    exit 1
fi

# The peer: Debian's python3-torch, installed here when we may (root), else skipped with a note.
# It lives in the system Python, which may not be the python3 first on PATH (pyenv, venvs).
PY=${BENCH_PYTHON:-python3}
[ -n "${BENCH_PYTHON:-}" ] || [ ! -x /usr/bin/python3 ] || PY=/usr/bin/python3
TORCH=1
if ! "$PY" -c 'import torch' 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "run.sh: installing python3-torch (Debian) for the PyTorch peer"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null; } || true
    fi
    "$PY" -c 'import torch' 2>/dev/null || {
        TORCH=0
        echo "run.sh: no PyTorch (apt-get install python3-torch as root); measuring fmnist alone" >&2
    }
fi
# OpenBLAS 0.3.21 does not recognise this CPU family and would run its generic kernels; name its
# AVX-512 ones, for PyTorch's BLAS and for the OpenBLAS column of the GEMM peak.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

: >"$OUT"
# One measurement; one that runs past $TIMEOUT is reported and left out of the table.
measure() {
    timeout "$TIMEOUT" "$@" --data "$DATA" --threads "$THREADS" --epochs "$EPOCHS" --reps "$REPS" | tee -a "$OUT" ||
        echo "run.sh: no figure from: $* (exit $?, over ${TIMEOUT}s?)" >&2
}
ours() { measure "$BENCH" "$@"; }
peer() { [ "$TORCH" -eq 0 ] || measure "$PY" bench/peer_torch.py "$@"; }
# PyTorch's `mlp` on one thread as well: with two, its threads mostly wait on each other, and
# issue 3 compares against PyTorch at its best, whichever thread count that is. (Last --threads
# wins: python's argparse keeps the last value.)
peer1() {
    [ "$TORCH" -eq 0 ] || timeout "$TIMEOUT" env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$PY" bench/peer_torch.py "$@" \
        --data "$DATA" --epochs "$EPOCHS" --reps "$REPS" --threads 1 | tee -a "$OUT" ||
        echo "run.sh: no figure from: PyTorch $* on one thread (exit $?)" >&2
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ), $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), $THREADS threads, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    echo "== round $round"
    for preset in $PRESETS; do
        limit=()
        [ "$preset" != cnn ] || limit=(--images "$CNN_IMAGES")
        ours train "$preset" "${limit[@]}"
        peer train "$preset" "${limit[@]}"
        if [ "$preset" = mlp ] && [ "$THREADS" -gt 1 ]; then peer1 train mlp; fi
    done
    ours infer mlp
    peer infer mlp
done
ours peak 2048
peer peak 2048

python3 - "$OUT" "$THREADS" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
THREADS = int(sys.argv[2])
def med(impl, mode, key, preset=None, threads=THREADS):
    v = [r[key] for r in rows if r["impl"] == impl and r["mode"] == mode and r.get("threads") == threads
         and (preset is None or r.get("preset") == preset)]
    return statistics.median(v) if v else None
peak_ours = med("fmnist", "peak", "fmnist_gflops")
peak_blas = med("fmnist", "peak", "openblas_gflops") or 0.0
peak_torch = med("pytorch", "peak", "torch_gflops") or 0.0
peak = max(peak_ours or 0.0, peak_blas, peak_torch)
def fmt(v, unit=""):
    if v is None: return "—"
    if v >= 1000: return f"{v:,.0f}{unit}"
    if v >= 10: return f"{v:.1f}{unit}"
    return f"{v:.3f}{unit}"
lines = ["| measure | fmnist | PyTorch | fmnist speed-up |", "| --- | ---: | ---: | ---: |"]
def row(name, ours, theirs, lower_is_better=False):
    ratio = None
    if ours and theirs:
        ratio = theirs / ours if lower_is_better else ours / theirs
    lines.append(f"| {name} | {fmt(ours)} | {fmt(theirs)} | {'—' if ratio is None else f'{ratio:.2f}×'} |")
presets = []
for r in rows:
    if r["mode"] == "train" and r["preset"] not in presets: presets.append(r["preset"])
for p in presets:
    timed = med("fmnist", "train", "images_timed", p)
    part = f", timed on {timed:,.0f}" if timed and timed < 60000 else ""
    row(f"`{p}` train, s/epoch (60,000 images{part}, batch 32, Adam)", med("fmnist", "train", "epoch_s", p), med("pytorch", "train", "epoch_s", p), True)
    row(f"`{p}` train, CPU s/epoch (process CPU time)", med("fmnist", "train", "epoch_cpu_s", p), med("pytorch", "train", "epoch_cpu_s", p), True)
    # Rates from the median epoch time, so that every row of a preset tells the same story.
    images = med("fmnist", "train", "images", p)
    gflop = med("fmnist", "train", "gflop_per_epoch", p)
    s_o, s_t = med("fmnist", "train", "epoch_s", p), med("pytorch", "train", "epoch_s", p)
    rate = lambda s, x: x / s if s else None
    row(f"`{p}` train, images/s", rate(s_o, images), rate(s_t, images))
    row(f"`{p}` train, GFLOP/s (matmul FLOPs / epoch time)", rate(s_o, gflop), rate(s_t, gflop))
    g_o, g_t = rate(s_o, gflop), rate(s_t, gflop)
    lines.append(f"| `{p}` train, % of GEMM peak ({peak:.0f} GFLOP/s) | {100*g_o/peak:.1f}% | {'—' if g_t is None else f'{100*g_t/peak:.1f}%'} | |")
    row(f"`{p}` train, peak RSS MiB", med("fmnist", "train", "peak_rss_mib", p), med("pytorch", "train", "peak_rss_mib", p), True)
    one = med("pytorch", "train", "epoch_s", p, threads=1) if THREADS > 1 else None
    if one is not None:
        best = min(one, s_t) if s_t else one
        row(f"`{p}` train, s/epoch against PyTorch at its best (its faster of 1 and {THREADS} threads: {one:.3f} s on 1)",
            s_o, best, True)
row("`mlp` inference batch 1, images/s", med("fmnist", "infer", "batch1_images_per_s"), med("pytorch", "infer", "batch1_images_per_s"))
row("`mlp` inference batch 1000, images/s", med("fmnist", "infer", "batch1000_images_per_s"), med("pytorch", "infer", "batch1000_images_per_s"))
row("`mlp` inference batch 1, images per CPU second", med("fmnist", "infer", "batch1_cpu_images_per_s"), med("pytorch", "infer", "batch1_cpu_images_per_s"))
row("`mlp` inference batch 1000, images per CPU second", med("fmnist", "infer", "batch1000_cpu_images_per_s"), med("pytorch", "infer", "batch1000_cpu_images_per_s"))
row("`mlp` inference, peak RSS MiB", med("fmnist", "infer", "peak_rss_mib"), med("pytorch", "infer", "peak_rss_mib"), True)
core = next((r.get("openblas_core", "") for r in rows if r["mode"] == "peak" and r["impl"] == "fmnist"), "")
lines.append(f"| SGEMM 2048³, GFLOP/s: fmnist kernel / OpenBLAS {core} / torch.matmul | {fmt(peak_ours)} | {fmt(peak_blas)} / {fmt(peak_torch)} | |")
print()
print("\n".join(lines))
print()
spread = {}
for impl in ("fmnist", "pytorch"):
    for th in sorted({r["threads"] for r in rows if r["impl"] == impl and r["mode"] == "train"}):
        v = [r["epoch_s"] for r in rows if r["impl"] == impl and r["mode"] == "train" and r["preset"] == "mlp" and r["threads"] == th]
        if v: spread[f"{impl} ({th} thread{'s' if th > 1 else ''})"] = f"{min(v):.3f}-{max(v):.3f}"
if spread:
    print("mlp s/epoch across rounds (min-max): " + ", ".join(f"{k} {v}" for k, v in spread.items()))
EOF
