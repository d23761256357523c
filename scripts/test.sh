#!/usr/bin/env bash
# test.sh — set up, then run the whole test suite twice: the optimised build in full (including
# end-to-end training on the real data), and the unit and command-line tests under
# AddressSanitizer + UndefinedBehaviorSanitizer; then every fuzz target for a bounded time
# (FMNIST_FUZZ_SECONDS each, default 30; 0 skips). Ends with the combined "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --san || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
echo "=== optimised build: full suite"
BUILD=build bash tests/run.sh 2>&1 | tee -a "$log" || status=1
echo "=== sanitizer build (ASan + UBSan): unit and command-line tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    BUILD=build-san FMNIST_TEST_FAST=1 bash tests/run.sh 2>&1 | tee -a "$log" || status=1

fuzz_seconds=${FMNIST_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
    echo "=== fuzz targets (libFuzzer, ASan + UBSan), ${fuzz_seconds}s each"
    fuzz_out=$(bash scripts/fuzz.sh "$fuzz_seconds" 2>&1)
    fuzz_rc=$?
    echo "$fuzz_out"
    fp=$(grep -c '^ok   fuzz_' <<<"$fuzz_out")
    ff=$(grep -c '^FAIL fuzz_' <<<"$fuzz_out")
    [ "$fuzz_rc" -eq 0 ] || [ "$ff" -gt 0 ] || ff=1
    echo "$fp passed, $ff failed" | tee -a "$log"
    [ "$ff" -eq 0 ] || status=1
fi

passed=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s += $3} END {print s + 0}')
echo "=== total (both builds and the fuzz targets)"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
