#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer targets in fuzz/ with clang (AddressSanitizer + UBSan) and runs
# each for a bounded time, starting from the seed corpus in fuzz/corpus/. Fails on any crash,
# leak, sanitizer report or time-out. New inputs go to build-fuzz/corpus/, never into the repo.
#   scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
# Targets: idx model spec cli image onnx (all by default).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx model spec cli image onnx)

if ! command -v clang >/dev/null || ! dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null | grep -q "ok installed"; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi

out=build-fuzz
mkdir -p "$out/obj"
# The generated sources (ONNX messages, the patched stb_image.h), written the Makefile's way.
make -s BUILD="$out" gen
flags=(-g -O1 -std=c11 -pthread -Iinclude -Isrc -Icli -I"$out/gen" $(pkg-config --cflags cairo fontconfig)
       -Wall -Wextra -Wno-unused-parameter -Wno-source-uses-openmp -Wno-unknown-pragmas
       -fsanitize=address,undefined -fno-sanitize-recover=all)
libs=(-lprotobuf-c $(pkg-config --libs cairo fontconfig) -lcjson -lz -lm)
# The whole library and the command's flag parsers, instrumented. The SIMD tiles use GCC target
# pragmas; the fuzz build swaps them for stubs (fuzz/simd_stubs.c).
lib_src=($(make -s print-lib-src | tr ' ' '\n' | grep -v -E '^src/kernels/gemm_avx')
         fuzz/simd_stubs.c "$out/gen/onnx/onnx.pb-c.c")
cli_src=($(ls cli/*.c | grep -v -E '^cli/main\.c$'))
headers=(include/fmnist.h src/*.h src/*/*.h cli/cli.h fuzz/fuzz_common.h "$out/gen/stb/stb_image.h")
objs=()
pids=()
for src in "${lib_src[@]}" "${cli_src[@]}"; do
    obj="$out/obj/$(echo "${src#"$out"/}" | tr '/' '_' | sed 's/\.c$/.o/')"
    objs+=("$obj")
    stale=0
    [ -f "$obj" ] || stale=1
    for dep in "$src" "${headers[@]}" scripts/fuzz.sh; do
        [ "$stale" -eq 1 ] || [ ! "$dep" -nt "$obj" ] || stale=1
    done
    [ "$stale" -eq 1 ] || continue
    # stb's integer arithmetic (signed overflow in header numbers and the like) is left to wrap,
    # as in the Makefile's builds; AddressSanitizer still checks every access it makes.
    own=()
    [ "$src" = src/data/stb_impl.c ] && own=(-w -fno-sanitize=undefined)
    clang "${flags[@]}" "${own[@]}" -fsanitize=fuzzer-no-link -c -o "$obj" "$src" &
    pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
for t in "${targets[@]}"; do
    clang "${flags[@]}" -fsanitize=fuzzer -o "$out/fuzz_$t" "fuzz/fuzz_$t.c" "${objs[@]}" "${libs[@]}"
done

status=0
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    extra=()
    # The flag parsers print their errors and help texts: keep the log to libFuzzer's own lines.
    [ "$t" = cli ] && extra=(-close_fd_mask=3)
    [ -f "fuzz/$t.dict" ] && extra+=(-dict="fuzz/$t.dict")
    echo "== fuzz_$t: ${seconds}s"
    if "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 "${extra[@]}" -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" "fuzz/corpus/$t" \
        >"$out/fuzz_$t.log" 2>&1; then
        echo "ok   fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$out/fuzz_$t.log" | awk '{print $2}') runs, no finding"
    else
        status=1
        echo "FAIL fuzz_$t: finding in $out/artifacts/$t/ (log: $out/fuzz_$t.log)"
        grep -E 'ERROR|SUMMARY|runtime error' "$out/fuzz_$t.log" | head -5
    fi
done
exit $status
