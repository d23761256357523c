#!/usr/bin/env bash
# test.sh — set up, then run the whole test suite twice: the optimised build in full (including
# end-to-end training on the real data), and the unit and command-line tests under
# AddressSanitizer + UndefinedBehaviorSanitizer. Ends with the combined "N passed, N failed".
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

passed=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s += $3} END {print s + 0}')
echo "=== total (both builds)"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
