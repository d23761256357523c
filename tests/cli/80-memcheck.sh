# 80-memcheck.sh — no leak and no invalid memory access in a real run: training (an MLP with its
# report, and a small convolutional network) on a few hundred images, then evaluate, predict on
# photos, summary and export of what it wrote. In the ordinary build under Valgrind's memcheck
# (any error, or a definite or indirect leak, fails the command); in a SAN=1 build the same
# commands run under AddressSanitizer and LeakSanitizer instead, which Valgrind cannot run with.
# Valgrind 3.19 does not decode AVX-512, which -march=native uses everywhere on such a machine, so
# memcheck runs a PORTABLE=1 -O1 build of the same sources, made here into build-memcheck/ (about
# 40 s the first time; the kernels then pick AVX2 or plain C at run time, as valgrind reports).
# Sourced by tests/run.sh (uses $FMNIST, $FIXTURES, $DATA, $T).

MC=$T/memcheck
mkdir -p "$MC/data" "$MC/photos"
"$FIXTURES" subset "$DATA" "$MC/data" 300 100 || fail "memcheck setup" "fixtures subset failed"
"$FIXTURES" photos "$DATA" "$MC/photos" 2 1 || fail "memcheck setup" "fixtures photos failed"

if ldd "$FMNIST" 2>/dev/null | grep -q libasan; then
    MC_TOOL=LeakSanitizer
    MC_RUN=(env ASAN_OPTIONS=detect_leaks=1)
    MC_FMNIST=$FMNIST
elif command -v valgrind >/dev/null; then
    MC_TOOL=valgrind
    if make -s -j2 BUILD=build-memcheck PORTABLE=1 OPT='-O1 -g' build-memcheck/fmnist >"$MC/build.log" 2>&1; then
        MC_FMNIST=$PWD/build-memcheck/fmnist
    else
        fail "memcheck build" "make PORTABLE=1 BUILD=build-memcheck failed: $(tail -3 "$MC/build.log")"
        MC_TOOL=
    fi
    # --threads 1 below: memcheck runs one thread at a time, and the pool's spinning workers would
    # only slow it down. Reachable memory at exit (fontconfig's and cairo's caches) is no error.
    MC_RUN=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
            --show-leak-kinds=definite,indirect --num-callers=30)
else
    MC_TOOL=
    echo "skip memcheck: valgrind is not installed (apt-get install valgrind, or scripts/setup.sh --san)"
fi

# mc_check NAME ARGS...: runs fmnist ARGS under the checker; passes when it exits 0 and the
# checker reported nothing.
mc_check() {
    local name=$1
    shift
    local log=$MC/$(tr -c 'a-z0-9\n' '-' <<<"$name").log
    timeout 300 "${MC_RUN[@]}" "$MC_FMNIST" "$@" >"$log" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        fail "$MC_TOOL: $name" "exit $rc (log: $(grep -m3 -E 'ERROR|Invalid|definitely|indirectly|uninitialised|error' "$log" | tr '\n' ' '))"
    elif grep -qE '^==[0-9]+== |ERROR: (Address|Leak)Sanitizer' "$log"; then
        fail "$MC_TOOL: $name" "$(grep -m3 -E '^==[0-9]+== |Sanitizer' "$log" | tr '\n' ' ')"
    else
        pass "$MC_TOOL: $name"
    fi
}

if [ -n "$MC_TOOL" ]; then
    mc_check "train mlp (report)" train --data "$MC/data" --model dense:32:relu,dense:10 --epochs 1 \
        --val 100 --threads 1 --quiet --out "$MC/mlp"
    mc_check "train conv" train --data "$MC/data" --model conv:4:3:same,bn,relu,maxpool:2,dropout:0.25,dense:10 \
        --epochs 1 --batch 16 --val 100 --threads 1 --augment shift=2,flip --quiet --no-report --out "$MC/conv"
    mc_check "evaluate conv" evaluate "$MC/conv/model.safetensors" --data "$MC/data" --threads 1
    mc_check "predict photos" predict "$MC/mlp/model.safetensors" "$MC/photos" --threads 1 --json
    mc_check "summary" summary "$MC/conv/model.safetensors"
    mc_check "export" export "$MC/mlp/model.safetensors" --onnx "$MC/mlp.onnx"
fi
