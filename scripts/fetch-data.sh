#!/usr/bin/env bash
# fetch-data.sh — downloads Fashion-MNIST into a folder, for machines without Debian's
# dataset-fashion-mnist package, and verifies every file's SHA-256. fmnist itself never downloads.
#   scripts/fetch-data.sh [DIR]     (default ./data, which fmnist searches automatically)
set -euo pipefail
dir=${1:-data}
base=${FMNIST_DATA_URL:-http://fashion-mnist.s3-website.eu-central-1.amazonaws.com}
mkdir -p "$dir"
trap 'rm -f "$dir"/*.part' EXIT
# name, then the SHA-256 of its *decompressed* contents: gzip files of the same data differ from
# one compressor to another (Debian's are recompressed), the IDX bytes inside do not.
sums="
train-images-idx3-ubyte.gz c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
train-labels-idx1-ubyte.gz bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
t10k-images-idx3-ubyte.gz 5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
t10k-labels-idx1-ubyte.gz 0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
"
verify() { [ "$(gzip -dc "$1" 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$2" ]; }
fetch() {
    if command -v curl >/dev/null; then curl -fsSL -o "$2" "$1"; else wget -q -O "$2" "$1"; fi
}
while read -r name sum; do
    [ -n "$name" ] || continue
    if [ -f "$dir/$name" ] && verify "$dir/$name" "$sum"; then
        echo "ok      $dir/$name"
        continue
    fi
    echo "fetch   $base/$name"
    fetch "$base/$name" "$dir/$name.part"
    if ! verify "$dir/$name.part" "$sum"; then
        rm -f "$dir/$name.part"
        echo "fetch-data: $name: checksum mismatch, file discarded" >&2
        exit 1
    fi
    mv "$dir/$name.part" "$dir/$name"
    echo "ok      $dir/$name"
done <<<"$sums"
echo "Fashion-MNIST is in $dir; fmnist finds ./data by itself, or pass --data $dir"
