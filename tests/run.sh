#!/usr/bin/env bash
# run.sh — the whole test suite: unit tests, then the command-line tests in tests/cli/ (bad input
# of every kind, save/load, end to end on the real data). Ends with "N passed, N failed".
#   BUILD=build            which build folder to test
#   FMNIST_TEST_FAST=1     skip the tests marked slow (full training runs), e.g. under sanitizers
#   FMNIST_TEST_ONLY=GLOB  run only the tests/cli files matching GLOB (and no unit tests)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export FMNIST=$PWD/$BUILD/fmnist FIXTURES=$PWD/$BUILD/fixtures
export DATA=${FMNIST_TEST_DATA:-/usr/share/datasets/fashion-mnist}
export T
T=$(mktemp -d "${TMPDIR:-/tmp}/fmnist-test-XXXXXX")
trap 'rm -rf "$T"' EXIT
PASSED=0
FAILED=0
. tests/lib.sh

if [ -z "${FMNIST_TEST_ONLY:-}" ]; then
    echo "== unit tests ($BUILD/unit_tests)"
    unit_out=$("$BUILD/unit_tests" 2>&1)
    unit_rc=$?
    echo "$unit_out"
    line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed' <<<"$unit_out" | tail -1)
    if [ -n "$line" ]; then
        PASSED=$((PASSED + $(sed -E 's/^unit: ([0-9]+) passed.*/\1/' <<<"$line")))
        FAILED=$((FAILED + $(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$line")))
    fi
    [ $unit_rc -eq 0 ] || [ -n "$line" ] || fail "unit_tests" "crashed with exit $unit_rc"
fi

if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -f "$DATA/train-images-idx3-ubyte" ]; then
    fail "real data" "no Fashion-MNIST in $DATA (apt-get install dataset-fashion-mnist)"
fi
for f in tests/cli/${FMNIST_TEST_ONLY:-*}.sh; do
    [ -f "$f" ] || continue
    echo "== $f"
    . "$f"
done

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
