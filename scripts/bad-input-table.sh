#!/usr/bin/env bash
# bad-input-table.sh — regenerates docs/bad-input.md: every bad-input case the command-line tests
# try, with the exit status and the one-line message the user sees (taken from a real run).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -j"$(nproc)" >/dev/null
table=$(mktemp)
trap 'rm -f "$table"' EXIT
# Every command-line test file (fast mode: the long trainings have no bad-input cases).
FMNIST_BAD_INPUT_TABLE=$table FMNIST_TEST_FAST=1 BUILD=build bash tests/run.sh >/dev/null
{
    echo "# Bad input and what fmnist says"
    echo
    echo "Every case below is a test in \`tests/cli/\` (\`10-bad-input.sh\` data, models and flags,"
    echo "\`20-conv-bad-input.sh\` convolutional specs, \`30-checkpoint.sh\` checkpoints, resuming, disk"
    echo "failures and divergence, \`60-report.sh\` pictures, reports and experiments, \`70-interop.sh\`"
    echo "ONNX export and pictures to classify, and the rest): the command must exit non-zero"
    echo "(not by a signal), print exactly one line on stderr matching a specific pattern, and leave"
    echo "existing files untouched. Regenerate with \`scripts/bad-input-table.sh\`. Paths are relative"
    echo "to the test's scratch folder."
    echo
    echo "| case | exit | message |"
    echo "| --- | --- | --- |"
    cat "$table"
} >docs/bad-input.md
echo "docs/bad-input.md: $(wc -l <"$table") cases"
