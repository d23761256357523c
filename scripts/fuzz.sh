#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer targets in fuzz/ with clang (AddressSanitizer + UBSan) and runs
# each for a bounded time, starting from the seed corpus in fuzz/corpus/. Fails on any crash,
# leak, sanitizer report or time-out. New inputs go to build-fuzz/corpus/, never into the repo.
#   scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx model spec)

if ! command -v clang >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed"; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi

out=build-fuzz
mkdir -p "$out"
flags=(-g -O1 -std=c11 -pthread -Iinclude -Isrc -Wall -Wextra -Wno-unused-parameter -Wno-source-uses-openmp -Wno-unknown-pragmas)
# The SIMD tiles use GCC target pragmas; the fuzz build swaps them for stubs (fuzz/simd_stubs.c).
# Pictures, reports and ONNX export are not reached by these targets (they have no outside input
# of their own to parse) and need generated code and cairo: left out.
lib_src="$(make -s print-lib-src | tr ' ' '\n' | grep -v -E '^src/kernels/gemm_avx|^src/report/|^src/io/onnx.c|^src/data/image.c' | tr '\n' ' ') fuzz/simd_stubs.c"
for t in "${targets[@]}"; do
    clang "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -o "$out/fuzz_$t" "fuzz/fuzz_$t.c" $lib_src -lcjson -lz -lm
done

status=0
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    echo "== fuzz_$t: ${seconds}s"
    if "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" "fuzz/corpus/$t" \
        >"$out/fuzz_$t.log" 2>&1; then
        echo "ok   fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$out/fuzz_$t.log" | awk '{print $2}') runs, no finding"
    else
        status=1
        echo "FAIL fuzz_$t: finding in $out/artifacts/$t/ (log: $out/fuzz_$t.log)"
        grep -E 'ERROR|SUMMARY|runtime error' "$out/fuzz_$t.log" | head -5
    fi
done
exit $status
