#!/usr/bin/env bash
# setup.sh — installs what fmnist needs on Debian (as root, or with sudo) when it is missing, then
# builds. Safe to run again: packages already present are not reinstalled.
#   scripts/setup.sh            build/ (optimised)
#   scripts/setup.sh --san      also build-san/ (AddressSanitizer + UBSan) for the test suite
set -euo pipefail
cd "$(dirname "$0")/.."

# cairo draws the pictures (its text in DejaVu Sans, found through fontconfig via pkg-config);
# chromium opens the report pages in the tests.
packages=(build-essential pkg-config zlib1g-dev libcjson-dev libcairo2-dev libfontconfig-dev
          fonts-dejavu-core dataset-fashion-mnist python3 chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" >/dev/null
echo "setup: built build/fmnist"
if [ "${1:-}" = "--san" ]; then
    make -j"$jobs" SAN=1 >/dev/null
    echo "setup: built build-san/ (sanitizers)"
fi
