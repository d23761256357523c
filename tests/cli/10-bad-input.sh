# 10-bad-input.sh — every kind of bad input (data files, model files, model specs, flags, output
# paths) must give exactly one clear error line naming the file or flag and what is wrong, a
# non-zero exit, and never a crash or a hang; and a failed run must leave no partial file behind
# nor touch the inputs. Sourced by tests/run.sh (uses $FMNIST, $FIXTURES, $DATA, $T).

# shellcheck disable=SC2016 # single quotes are meant: regexes with \$, and bash -c scripts
BI=$T/bad-input
mkdir -p "$BI/small"
# 2000 training and 500 test images: loads in a blink, and every broken folder is a copy of it.
"$FIXTURES" subset "$DATA" "$BI/small" 2000 500 || fail "bad-input setup" "fixtures subset failed"
BI_TRAIN=("$FMNIST" train --data "$BI/small" --epochs 1 --val 200 --quiet --no-test --out "$BI/out")

# bi_copy NAME: a fresh copy of the small data folder, printed as its path.
bi_copy() {
    rm -rf "${BI:?}/$1"
    cp -r "$BI/small" "$BI/$1"
    echo "$BI/$1"
}

# bi_raw DIR KIND: replaces DIR/KIND-ubyte.gz by its uncompressed DIR/KIND-ubyte.
bi_raw() {
    gzip -dc "$1/$2-ubyte.gz" >"$1/$2-ubyte" && rm -f "$1/$2-ubyte.gz"
}

# bi_st_edit IN OUT WHAT: rewrites a safetensors file's JSON header in one way (WHAT), fixing up
# the 8-byte little-endian header length unless the point is a wrong length.
bi_st_edit() {
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, what = sys.argv[1:4]
blob = open(src, "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
head, data = json.loads(blob[8:8 + n]), blob[8 + n:]
text = None
if what == "shape":
    head["layers.0.weight"]["shape"] = [128, 783]
elif what == "drop":
    del head["layers.2.bias"]
elif what == "format":
    head["__metadata__"]["format"] = "pytorch"
elif what == "nonjson":
    text = b'{"__metadata__": {"format": "fmnist", this is not JSON'
if text is None:
    text = json.dumps(head).encode()
text += b" " * (-len(text) % 8)
length = len(text)
if what == "hlen":
    length = len(blob) + 100  # the header claims more bytes than the whole file holds
open(dst, "wb").write(struct.pack("<Q", length) + text + data)
PY
}

# bi_no_tmp NAME DIR: passes when no *.tmp file (a half-written output) is left under DIR.
bi_no_tmp() {
    local left
    left=$(find "$2" -name '*.tmp' 2>/dev/null)
    if [ -z "$left" ]; then pass "$1"; else fail "$1" "left behind: $left"; fi
}

# --- a valid model to break, and checksums of everything that must survive the failures.
expect_ok "bad-input: train the tiny model" \
    "$FMNIST" train --data "$BI/small" --epochs 1 --val 200 --out "$BI/m" --quiet --no-test
BI_MODEL=$BI/m/model.safetensors
cp "$BI_MODEL" "$BI/model.orig"
BI_SUMS=$(cd "$BI/small" && cksum ./*)

# ============================================================ data
expect_fail "data: --data missing folder" \
    '--data .*/nowhere: No such file or directory' "${BI_TRAIN[@]}" --data "$BI/nowhere"
mkdir -p "$BI/empty" "$BI/emptycwd"
expect_fail "data: --data empty folder" \
    '--data .*/empty: no Fashion-MNIST files there \(need train-images-idx3-ubyte' \
    "${BI_TRAIN[@]}" --data "$BI/empty"
expect_fail "data: --data is a file" '--data .*/train-labels-idx1-ubyte\.gz: not a folder' \
    "${BI_TRAIN[@]}" --data "$BI/small/train-labels-idx1-ubyte.gz"
expect_fail "data: FMNIST_DATA empty folder, empty cwd" \
    'looked in \$FMNIST_DATA=.*/empty .*apt-get install dataset-fashion-mnist' \
    bash -c 'cd "$1" && shift && exec "$@"' _ "$BI/emptycwd" \
    env FMNIST_DATA="$BI/empty" "$FMNIST" train --epochs 1 --quiet --no-test --out "$BI/out"
expect_fail "data: FMNIST_DATA empty folder (evaluate)" \
    'no Fashion-MNIST data found: looked in \$FMNIST_DATA=.*apt-get install dataset-fashion-mnist' \
    bash -c 'cd "$1" && shift && exec "$@"' _ "$BI/emptycwd" \
    env FMNIST_DATA="$BI/empty" "$FMNIST" evaluate "$BI_MODEL"

echo "this is a text file, not an IDX file" >"$BI/text"
bi_d=$(bi_copy magic-gz)
cp "$BI/text" "$bi_d/train-images-idx3-ubyte.gz"
expect_fail "data: wrong magic (.gz name)" \
    'train-images-idx3-ubyte\.gz: wrong magic number 0x[0-9a-f]{8}, expected 0x00000803' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy magic-raw)
rm "$bi_d/train-images-idx3-ubyte.gz"
cp "$BI/text" "$bi_d/train-images-idx3-ubyte"
expect_fail "data: wrong magic (raw)" \
    'train-images-idx3-ubyte: wrong magic number 0x[0-9a-f]{8}, expected 0x00000803' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy magic-test)
cp "$BI/text" "$bi_d/t10k-labels-idx1-ubyte.gz"
expect_fail "data: wrong magic in test labels (evaluate)" \
    't10k-labels-idx1-ubyte\.gz: wrong magic number .*expected 0x00000801' \
    "$FMNIST" evaluate "$BI_MODEL" --data "$bi_d"
bi_d=$(bi_copy labels-as-images)
cp "$bi_d/train-labels-idx1-ubyte.gz" "$bi_d/train-images-idx3-ubyte.gz"
expect_fail "data: labels file in place of images" \
    'train-images-idx3-ubyte\.gz: IDX file has 1 dimension and.*images need magic 0x00000803' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy images-as-labels)
cp "$bi_d/t10k-images-idx3-ubyte.gz" "$bi_d/t10k-labels-idx1-ubyte.gz"
expect_fail "data: images file in place of labels (predict)" \
    't10k-labels-idx1-ubyte\.gz: IDX file has 3 dimensions.*labels need magic 0x00000801' \
    "$FMNIST" predict "$BI_MODEL" --data "$bi_d"

bi_d=$(bi_copy trunc-gz)
head -c 300000 "$BI/small/train-images-idx3-ubyte.gz" >"$bi_d/train-images-idx3-ubyte.gz"
expect_fail "data: truncated gzip" \
    'train-images-idx3-ubyte\.gz: truncated: header declares 2000 images but the file holds [0-9]+' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy trunc-gz-header)
head -c 15 "$BI/small/train-images-idx3-ubyte.gz" >"$bi_d/train-images-idx3-ubyte.gz"
expect_fail "data: gzip cut inside its own header" \
    'train-images-idx3-ubyte\.gz: (file too short for an IDX header|truncated|corrupt data)' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy corrupt-gz)
dd if=/dev/zero of="$bi_d/train-images-idx3-ubyte.gz" bs=1 seek=1000 count=64 conv=notrunc status=none
expect_fail "data: corrupt gzip (zeros mid-stream)" \
    'train-images-idx3-ubyte\.gz: corrupt data: ' "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy corrupt-gz2)
printf 'GARBAGEGARBAGEGARBAGEGARBAGEGARBAGEGARBAGEGARBAGEGARBAGE' |
    dd of="$bi_d/train-images-idx3-ubyte.gz" bs=1 seek=400000 conv=notrunc status=none
expect_fail "data: corrupt gzip (text mid-stream)" \
    'train-images-idx3-ubyte\.gz: corrupt data: ' "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy trunc-raw)
bi_raw "$bi_d" train-images-idx3
head -c 100000 "$bi_d/train-images-idx3-ubyte" >"$bi_d/cut" && mv "$bi_d/cut" "$bi_d/train-images-idx3-ubyte"
expect_fail "data: truncated raw IDX" \
    'train-images-idx3-ubyte: truncated: header declares 2000 images but the file holds 127' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy trunc-raw-header)
bi_raw "$bi_d" train-images-idx3
head -c 10 "$bi_d/train-images-idx3-ubyte" >"$bi_d/cut" && mv "$bi_d/cut" "$bi_d/train-images-idx3-ubyte"
expect_fail "data: raw IDX cut inside its header" \
    'train-images-idx3-ubyte: truncated IDX header \(10 of 16 bytes\)' "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy trailing)
bi_raw "$bi_d" train-labels-idx1
printf 'xyz' >>"$bi_d/train-labels-idx1-ubyte"
expect_fail "data: trailing bytes after the labels" \
    'train-labels-idx1-ubyte: trailing bytes after the 2000 labels' "${BI_TRAIN[@]}" --data "$bi_d"

bi_d=$(bi_copy count)
"$FIXTURES" labels "$bi_d/train-labels-idx1-ubyte.gz" 1999 0
expect_fail "data: image/label count mismatch" \
    'train-labels-idx1-ubyte\.gz holds 1999 labels but .*train-images-idx3-ubyte\.gz holds 2000 images' \
    "${BI_TRAIN[@]}" --data "$bi_d"
for bi_v in 10 255; do
    bi_d=$(bi_copy label$bi_v)
    "$FIXTURES" labels "$bi_d/train-labels-idx1-ubyte.gz" 2000 $bi_v
    expect_fail "data: label $bi_v out of range" \
        "train-labels-idx1-ubyte\\.gz: label $bi_v of item 0 is out of range 0\\.\\.9" \
        "${BI_TRAIN[@]}" --data "$bi_d"
done
bi_d=$(bi_copy label10-test)
"$FIXTURES" labels "$bi_d/t10k-labels-idx1-ubyte.gz" 500 10
expect_fail "data: test label out of range (evaluate)" \
    't10k-labels-idx1-ubyte\.gz: label 10 of item 0 is out of range 0\.\.9' \
    "$FMNIST" evaluate "$BI_MODEL" --data "$bi_d"
bi_d=$(bi_copy zero)
"$FIXTURES" images "$bi_d/train-images-idx3-ubyte.gz" 0 28 28
"$FIXTURES" labels "$bi_d/train-labels-idx1-ubyte.gz" 0 0
expect_fail "data: zero images" 'train-images-idx3-ubyte\.gz: image count 0 is outside 1\.\.10000000' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy zero-labels)
"$FIXTURES" labels "$bi_d/train-labels-idx1-ubyte.gz" 0 0
expect_fail "data: zero labels" 'train-labels-idx1-ubyte\.gz: label count 0 is outside 1\.\.10000000' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy size0)
"$FIXTURES" images "$bi_d/train-images-idx3-ubyte.gz" 2000 0 0
expect_fail "data: 0x0 images" 'train-images-idx3-ubyte\.gz: image size 0x0 is outside 1\.\.4096 per side' \
    "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy size4)
"$FIXTURES" images "$bi_d/t10k-images-idx3-ubyte.gz" 500 4 4
expect_fail "data: 4x4 test images for a 28x28 model (evaluate)" \
    'model\.safetensors takes 28x28 images but the test set in .*/size4 has 4x4' \
    "$FMNIST" evaluate "$BI_MODEL" --data "$bi_d"
expect_fail "data: 4x4 test images for a 28x28 model (predict)" \
    'model\.safetensors takes 28x28 images but the test set in .*/size4 has 4x4' \
    "$FMNIST" predict "$BI_MODEL" --data "$bi_d"
bi_d=$(bi_copy size4-train)
"$FIXTURES" images "$bi_d/train-images-idx3-ubyte.gz" 2000 4 4
expect_fail "data: 4x4 training images, 28x28 test images (train)" \
    'the test set in .*/size4-train has 28x28 images but the training set 4x4' \
    "$FMNIST" train --data "$bi_d" --epochs 1 --val 1900 --quiet --out "$BI/out4"
check "data: train stops before training on unusable test data" test ! -e "$BI/out4"

# Headers that lie: nothing but 16 header bytes, declaring 10,000,000 images of 4096x4096 (over
# the size limit), or 100 of them (under it, but absent). Both must fail at once and cheaply:
# under a 1 GB address-space limit, except in sanitizer builds, whose shadow memory needs more.
BI_ULIMIT=(bash -c 'ulimit -v 1000000 && exec "$@"' _)
if ldd "$FMNIST" 2>/dev/null | grep -q 'libasan' || [[ $FMNIST == *-san/* ]]; then
    echo "     (sanitizer build: the lying-header cases run without the ulimit -v)"
    BI_ULIMIT=()
fi
bi_d=$(bi_copy absurd)
rm "$bi_d/train-images-idx3-ubyte.gz"
printf '\000\000\010\003\000\230\226\200\000\000\020\000\000\000\020\000' >"$bi_d/train-images-idx3-ubyte"
expect_fail "data: header declares 10,000,000 images of 4096x4096" \
    'train-images-idx3-ubyte: header declares 10000000 images of 4096x4096 .*over the [0-9]+-byte limit' \
    "${BI_ULIMIT[@]}" "${BI_TRAIN[@]}" --data "$bi_d"
bi_d=$(bi_copy lying)
rm "$bi_d/train-images-idx3-ubyte.gz"
printf '\000\000\010\003\000\000\000\144\000\000\020\000\000\000\020\000' >"$bi_d/train-images-idx3-ubyte"
expect_fail "data: header declares 100 images of 4096x4096, holds none" \
    'train-images-idx3-ubyte: truncated: header declares 100 images but the file holds 0' \
    "${BI_ULIMIT[@]}" "${BI_TRAIN[@]}" --data "$bi_d"

# ============================================================ model files
mkdir -p "$BI/models" "$BI/models/dir"
: >"$BI/models/empty.safetensors"
head -c 1000 /dev/urandom >"$BI/models/random.safetensors"
head -c 200000 "$BI_MODEL" >"$BI/models/truncated.safetensors"
bi_st_edit "$BI_MODEL" "$BI/models/hlen.safetensors" hlen
bi_st_edit "$BI_MODEL" "$BI/models/shape.safetensors" shape
bi_st_edit "$BI_MODEL" "$BI/models/drop.safetensors" drop
bi_st_edit "$BI_MODEL" "$BI/models/nonjson.safetensors" nonjson
bi_st_edit "$BI_MODEL" "$BI/models/format.safetensors" format
bi_model_cases=(
    "missing file|missing.safetensors|missing\\.safetensors: (cannot open: No such file or directory|no such model file)"
    "a folder|dir|/dir: not a regular file"
    "empty file|empty.safetensors|empty\\.safetensors: 0 bytes is too short for a safetensors file"
    "random bytes|random.safetensors|random\\.safetensors: header length [0-9]+ is impossible for a 1000-byte file"
    "truncated|truncated.safetensors|truncated\\.safetensors: tensor layers\\.0\\.weight: data_offsets .* fall outside the [0-9]+ data bytes \\(file truncated\\?\\)"
    "header length over the file size|hlen.safetensors|hlen\\.safetensors: header length [0-9]+ is impossible for a [0-9]+-byte file"
    "wrong shape|shape.safetensors|shape\\.safetensors: tensor layers\\.0\\.weight has shape \\[128,783\\], the spec needs \\[128, 784\\]"
    "missing tensor|drop.safetensors|drop\\.safetensors: tensor layers\\.2\\.bias is missing"
    "non-JSON header|nonjson.safetensors|nonjson\\.safetensors: header is not valid JSON"
    "wrong format name|format.safetensors|format\\.safetensors: metadata format is \"pytorch\", expected \"fmnist\""
)
for bi_c in "${bi_model_cases[@]}"; do
    IFS='|' read -r bi_what bi_file bi_regex <<<"$bi_c"
    expect_fail "model ($bi_what): evaluate" "$bi_regex" "$FMNIST" evaluate "$BI/models/$bi_file" --data "$BI/small"
    expect_fail "model ($bi_what): predict" "$bi_regex" "$FMNIST" predict "$BI/models/$bi_file" --data "$BI/small"
    expect_fail "model ($bi_what): summary" "$bi_regex" "$FMNIST" summary "$BI/models/$bi_file"
done
for bi_cmd in evaluate predict summary; do
    expect_fail "model (the .gz dataset file): $bi_cmd" \
        'train-images-idx3-ubyte\.gz: .*\(not a safetensors file' \
        "$FMNIST" $bi_cmd "$BI/small/train-images-idx3-ubyte.gz"
done

# ============================================================ model specs
bi_spec_cases=(
    'dense:0|"dense:0": width must be an integer in 1\.\.65536'
    'dense:abc|"dense:abc": width must be an integer in 1\.\.65536'
    'dense:128:foo|"dense:128:foo": unknown activation "foo"'
    'conv:3|"conv:3" needs filters and a kernel size'
    '|model spec is empty'
    'dense:128|"dense:128" ends with 128 outputs but there are 10 classes \(end with dense:10\)'
    'dense:10:softmax|"dense:10:softmax": the last layer gives logits.*write dense:10'
    'mlp999|unknown layer "mlp999" .*presets: mlp'
    'dense:128,,dense:10|empty layer at position 2'
)
for bi_c in "${bi_spec_cases[@]}"; do
    bi_spec=${bi_c%%|*} bi_regex=${bi_c#*|}
    expect_fail "spec \"$bi_spec\": train" "^fmnist train: --model: .*$bi_regex" "${BI_TRAIN[@]}" --model "$bi_spec"
    expect_fail "spec \"$bi_spec\": summary" "^fmnist summary: .*$bi_regex" "$FMNIST" summary "$bi_spec"
done

# ============================================================ flags
bi_flag_cases=(
    '--batch 0|--batch must be an integer in 1\.\.65536, got "0"'
    '--batch -1|--batch must be an integer in 1\.\.65536, got "-1"'
    '--batch abc|--batch must be an integer in 1\.\.65536, got "abc"'
    '--epochs 0|--epochs must be an integer in 1\.\.100000, got "0"'
    '--epochs 1.5|--epochs must be an integer in 1\.\.100000, got "1\.5"'
    '--lr -0.1|--lr must be a number in \[0, 10\], got "-0\.1"'
    '--lr 0|--lr must be above 0, got "0"'
    '--lr nan|--lr must be a number in \[0, 10\], got "nan"'
    '--lr 1e9|--lr must be a number in \[0, 10\], got "1e9"'
    '--optimizer rmsprop|--optimizer must be adam, adamw or sgd, got "rmsprop"'
    '--momentum 1|--momentum must be a number in \[0, 0\.999999\], got "1"'
    '--optimizer sgd --nesterov|--nesterov needs --momentum above 0'
    '--momentum 0.9 --nesterov|--nesterov applies to --optimizer sgd only'
    '--val -1|--val must be an integer in 0\.\.[0-9]+, got "-1"'
    '--threads -1|--threads must be an integer in 0\.\.1024, got "-1"'
    '--seed -5|--seed must be an integer in 0\.\.[0-9]+, got "-5"'
    '--init foo|--init must be glorot or he, got "foo"'
    '--scale foo|--scale must be unit or standard, got "foo"'
    '--classes a|--classes: class list "a": need at least 2 classes'
    '--frobnicate|unknown option --frobnicate \(see fmnist train --help\)'
    '--quiet=yes|--quiet takes no value'
    '-x|unknown option -x \(see fmnist train --help\)'
    '--epochs|--epochs needs a value \(see fmnist train --help\)'
    'extra|unexpected argument "extra"'
)
for bi_c in "${bi_flag_cases[@]}"; do
    bi_flags=${bi_c%%|*} bi_regex=${bi_c#*|}
    # shellcheck disable=SC2086 # the flags are meant to split into words
    expect_fail "flags: train $bi_flags" "^fmnist train: $bi_regex" "${BI_TRAIN[@]}" $bi_flags
done
for bi_v in 60000 2000; do
    expect_fail "flags: train --val $bi_v (>= the training set)" \
        "^fmnist train: --val $bi_v leaves no training images \\(the training set has 2000\\)" \
        "${BI_TRAIN[@]}" --val $bi_v
done
expect_fail "flags: unknown option after the positional MODEL" \
    '^fmnist evaluate: unknown option --frobnicate ' "$FMNIST" evaluate "$BI_MODEL" --frobnicate
expect_fail "flags: evaluate --threads -1" '^fmnist evaluate: --threads must be an integer' \
    "$FMNIST" evaluate "$BI_MODEL" --data "$BI/small" --threads -1
expect_fail "flags: evaluate --split foo" '^fmnist evaluate: --split must be train or test, got "foo"' \
    "$FMNIST" evaluate "$BI_MODEL" --data "$BI/small" --split foo
expect_fail "flags: evaluate with no MODEL" '^fmnist evaluate: expected one MODEL file' \
    "$FMNIST" evaluate --data "$BI/small"
expect_fail "flags: evaluate with two MODELs" '^fmnist evaluate: expected one MODEL file' \
    "$FMNIST" evaluate "$BI_MODEL" "$BI_MODEL" --data "$BI/small"
expect_fail "flags: evaluate --data at the end" '^fmnist evaluate: --data needs a value' \
    "$FMNIST" evaluate "$BI_MODEL" --data
expect_fail "flags: predict --index 10000" \
    '^fmnist predict: --index 10000 is out of range: the test set has 500 images \(0\.\.499\)' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --index 10000
expect_fail "flags: predict --index -1" '^fmnist predict: --index must be an integer in 0\.\.[0-9]+, got "-1"' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --index -1
expect_fail "flags: predict --index abc" '^fmnist predict: --index must be an integer' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --index abc
expect_fail "flags: predict --all without --csv" '^fmnist predict: --all needs --csv FILE' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --all
expect_fail "flags: predict --csv without --all" '^fmnist predict: --csv needs --all' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --csv "$BI/p.csv"
expect_fail "flags: predict --split foo" '^fmnist predict: --split must be train or test, got "foo"' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --split foo
expect_fail "flags: predict with no MODEL" '^fmnist predict: expected one MODEL file' "$FMNIST" predict
expect_fail "flags: summary with no argument" '^fmnist summary: expected one MODEL file or SPEC' \
    "$FMNIST" summary
expect_fail "flags: summary --json=1" '^fmnist summary: --json takes no value' "$FMNIST" summary mlp --json=1
expect_fail "flags: unknown subcommand" '^fmnist: unknown command "frobnicate" \(commands: train, ' \
    "$FMNIST" frobnicate

bi_out=$("$FMNIST" 2>"$BI/noargs.err")
bi_rc=$?
if [ $bi_rc -eq 2 ] && [ -z "$bi_out" ] && grep -q '^usage: fmnist COMMAND' "$BI/noargs.err"; then
    pass "flags: no arguments: exit 2 with usage on stderr"
else
    fail "flags: no arguments" "exit $bi_rc, stdout \"$bi_out\", stderr: $(head -3 "$BI/noargs.err")"
fi
for bi_c in "" train evaluate predict summary; do
    # shellcheck disable=SC2086 # "" means no subcommand
    if expect_ok "help: fmnist ${bi_c:+$bi_c }--help" "$FMNIST" $bi_c --help; then
        check "help: fmnist ${bi_c:+$bi_c }--help prints usage:" grep -q 'usage:' <<<"$OUT_TEXT"
    fi
done

# ============================================================ outputs
echo "a regular file" >"$BI/file"
expect_fail "output: train --out under a regular file" '^fmnist train: .*/file: exists and is not a folder' \
    "${BI_TRAIN[@]}" --out "$BI/file/sub"
check "output: no model under the regular file" test ! -e "$BI/file/sub/model.safetensors"
check "output: the regular file is untouched" grep -qx 'a regular file' "$BI/file"
mkdir -p "$BI/o2/model.safetensors"
expect_fail "output: train --out where model.safetensors is a folder" \
    '^fmnist train: .*/o2/model\.safetensors: cannot replace: Is a directory' \
    "${BI_TRAIN[@]}" --val 1900 --out "$BI/o2"
check "output: no history written after a failed save" test ! -e "$BI/o2/history.csv"
bi_no_tmp "output: no half-written model left after a failed save" "$BI/o2"
expect_fail "output: predict --csv into a missing folder" \
    '^fmnist predict: --csv .*/nodir/p\.csv: cannot create: No such file or directory' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --all --csv "$BI/nodir/p.csv"
check "output: no csv folder created" test ! -e "$BI/nodir"
mkdir -p "$BI/csvdir"
expect_fail "output: predict --csv onto a folder" '^fmnist predict: --csv .*/csvdir: write failed: Is a directory' \
    "$FMNIST" predict "$BI_MODEL" --data "$BI/small" --all --csv "$BI/csvdir"
bi_no_tmp "output: no half-written csv left" "$BI"

# ============================================================ nothing was damaged
check "bad input never damages the model" cmp -s "$BI_MODEL" "$BI/model.orig"
check "bad input never damages the data" test "$BI_SUMS" = "$(cd "$BI/small" && cksum ./*)"
expect_ok "the model still evaluates" "$FMNIST" evaluate "$BI_MODEL" --data "$BI/small" --json
