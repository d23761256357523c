#!/usr/bin/env bash
# setup.sh — installs what fmnist needs on Debian (as root, or with sudo) when it is missing, then
# builds. Safe to run again: packages already present are not reinstalled.
#   scripts/setup.sh            build/ (optimised)
#   scripts/setup.sh --san      also the test suite's tools and build-san/ (AddressSanitizer + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."

# To build: cairo draws the pictures (its text in DejaVu Sans, found through fontconfig via
# pkg-config); ONNX export uses protobuf-c code generated from Debian's onnx.proto; stb decodes and
# writes pictures.
packages=(build-essential pkg-config zlib1g-dev libcjson-dev libcairo2-dev libfontconfig-dev
          fonts-dejavu-core dataset-fashion-mnist libprotobuf-c-dev protobuf-c-compiler libonnx-dev
          libstb-dev)
# For the tests only (--san): chromium opens the report pages; Debian's onnx checker, PyTorch and
# numpy check the exports; node runs onnxruntime-node (unless a node and npm are already there);
# valgrind checks a training run for leaks and invalid accesses (tests/cli/80-memcheck.sh).
testing=0
[ "${1:-}" = "--san" ] && testing=1
if [ $testing -eq 1 ]; then
    packages+=(python3 chromium python3-onnx python3-numpy python3-torch valgrind)
    command -v node >/dev/null || packages+=(nodejs)
    command -v npm >/dev/null || packages+=(npm)
fi
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

# onnxruntime-node for the ONNX runtime tests, pinned by tests/onnx/package-lock.json: fetched
# from the npm registry once; --ignore-scripts because the package ships its binaries.
if [ $testing -eq 1 ] && [ ! -d tests/onnx/node_modules/onnxruntime-node ]; then
    echo "setup: npm ci in tests/onnx (onnxruntime-node)"
    (cd tests/onnx && npm ci --ignore-scripts --no-audit --no-fund >/dev/null) ||
        echo "setup: could not install onnxruntime-node (offline?); the ONNX runtime tests will fail" >&2
fi

jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" >/dev/null
echo "setup: built build/fmnist"
if [ "${1:-}" = "--san" ]; then
    make -j"$jobs" SAN=1 >/dev/null
    echo "setup: built build-san/ (sanitizers)"
fi
