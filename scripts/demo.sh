#!/usr/bin/env bash
# demo.sh — the main job: set up, train the notebook's model (784-128-10, Adam, batch 32, 10 epochs)
# on the real Fashion-MNIST, evaluate it on the test set and predict the first test image.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=runs/demo
build/fmnist summary mlp
build/fmnist train --model mlp --epochs 10 --out "$out"
echo
build/fmnist evaluate "$out/model.safetensors"
echo
build/fmnist predict "$out/model.safetensors" --index 0 --show
