# lib.sh — helpers for the shell tests: each check prints "ok"/"FAIL" and counts. Sourced by
# tests/run.sh together with every tests/cli/*.sh file.
#   $FMNIST    the binary under test        $FIXTURES  the fixture writer
#   $DATA      the real Fashion-MNIST dir   $T         a scratch folder for this run

# expect_fail NAME REGEX CMD...: CMD must exit non-zero (not by a signal), print one stderr line
# matching REGEX (grep -E), and not hang (60 s limit).
expect_fail() {
    local name=$1 regex=$2
    shift 2
    local out rc
    out=$(timeout 60 "$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -eq 0 ]; then
        fail "$name" "exited 0"
    elif [ $rc -ge 124 ]; then
        fail "$name" "exit $rc (timeout or signal): $out"
    elif ! grep -qE -- "$regex" <<<"$out"; then
        fail "$name" "stderr does not match /$regex/: $out"
    elif [ "$(grep -c . <<<"$out")" -ne 1 ]; then
        fail "$name" "expected exactly one error line, got: $out"
    else
        pass "$name"
        # scripts/bad-input-table.sh collects every case and its message into docs/bad-input.md.
        if [ -n "${FMNIST_BAD_INPUT_TABLE:-}" ]; then
            local msg=${out//|/\\|}
            printf '| %s | `%s` | %s |\n' "${name//|/\\|}" "$rc" "${msg//$T\//}" >>"$FMNIST_BAD_INPUT_TABLE"
        fi
    fi
}

# expect_ok NAME CMD...: CMD must exit 0 within 10 minutes; its stdout is left in $OUT_TEXT.
expect_ok() {
    local name=$1
    shift
    local errf=$T/.stderr
    OUT_TEXT=$(timeout 600 "$@" 2>"$errf")
    local rc=$?
    if [ $rc -ne 0 ]; then
        fail "$name" "exit $rc: $(tail -3 "$errf")"
        return 1
    fi
    pass "$name"
}

# check NAME CONDITION-CMD... : passes when the command succeeds.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "condition failed: $*"; fi
}

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1: $2"
}

# json_get FILE-OR-TEXT KEY: a top-level number or string from a JSON object, via python3 when
# present, else a grep fallback adequate for the flat objects fmnist prints.
json_get() {
    python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(v[sys.argv[2]])' "$1" "$2"
}

# float_ge A B: A >= B
float_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
