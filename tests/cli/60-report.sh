# 60-report.sh — the pictures: `fmnist show`, its sizes and its errors. Sourced by tests/run.sh.

# shellcheck disable=SC2016 # single quotes are meant: regexes and python programs
RP=$T/report
mkdir -p "$RP/small"
"$FIXTURES" subset "$DATA" "$RP/small" 3000 1000 || fail "report setup" "fixtures subset failed"
RP_DATA=$RP/small

# rp_png_size FILE: prints "W H" from the PNG's IHDR chunk (and fails on anything else).
rp_png_size() {
    python3 -c '
import struct, sys
head = open(sys.argv[1], "rb").read(24)
assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", "not a PNG"
print(*struct.unpack(">II", head[16:24]))' "$1"
}

# rp_size_is NAME FILE W H: the PNG is exactly W x H pixels.
rp_size_is() {
    local got
    got=$(rp_png_size "$2" 2>&1)
    if [ "$got" = "$3 $4" ]; then pass "$1"; else fail "$1" "$2 is $got, expected $3 $4"; fi
}

# ============================================================ fmnist show
RS=$RP/show
mkdir -p "$RS"
# 8 columns of 112-pixel images in 120-pixel tiles (10-pixel gaps, 20-pixel margins), rows of
# 143 pixels under a 33-pixel title band.
if expect_ok "show: 24 training images" "$FMNIST" show --data "$RP_DATA" --out "$RS/train.png"; then
    check "show: says what it wrote" grep -q "^Wrote $RS/train.png: 24 training images" <<<"$OUT_TEXT"
    rp_size_is "show: 24 images make 8 x 3 tiles (1070x522)" "$RS/train.png" 1070 522
fi
if expect_ok "show: --split test --class sandal --count 10" \
    "$FMNIST" show --data "$RP_DATA" --split test --class sandal --count 10 --out "$RS/sandals.png"; then
    check "show: --class is matched in any case" grep -q "10 test images of class Sandal" <<<"$OUT_TEXT"
    rp_size_is "show: 10 images make 8 + 2 tiles (1070x369)" "$RS/sandals.png" 1070 369
fi
if expect_ok "show: --class 9 --count 4 --columns 2 --scale 2" \
    "$FMNIST" show --data "$RP_DATA" --class 9 --count 4 --columns 2 --scale 2 --out "$RS/boots.PNG"; then
    check "show: --class by number" grep -q "4 training images of class Ankle boot" <<<"$OUT_TEXT"
    "$FMNIST" show --data "$RP_DATA" --class 9 --count 4 --columns 4 --scale 2 --out "$RS/boots4.png" >/dev/null
    # Two rows instead of one: one more row of 4+56+8+13+6 pixels and a 10-pixel gap.
    check "show: --columns 2 makes two rows of 56-pixel images" python3 -c '
import sys; (w2, h2), (w4, h4) = (map(int, a.split()) for a in sys.argv[1:3]); assert h2 - h4 == 97, (h2, h4)' \
        "$(rp_png_size "$RS/boots.PNG")" "$(rp_png_size "$RS/boots4.png")"
fi
mkdir -p "$RS/one-class" "$RS/dir.png"
"$FIXTURES" images "$RS/one-class/train-images-idx3-ubyte.gz" 50 28 28 &&
    "$FIXTURES" labels "$RS/one-class/train-labels-idx1-ubyte.gz" 50 0 &&
    cp "$RP/small/t10k-"* "$RS/one-class/"
RS_SHOW=("$FMNIST" show --data "$RP_DATA")
expect_fail "show: --count 0" '^fmnist show: --count must be an integer in 1\.\.1000, got "0"$' "${RS_SHOW[@]}" --count 0 --out "$RS/x.png"
expect_fail "show: --count 1001" '^fmnist show: --count must be an integer in 1\.\.1000, got "1001"$' "${RS_SHOW[@]}" --count 1001 --out "$RS/x.png"
expect_fail "show: --count abc" '^fmnist show: --count must be an integer' "${RS_SHOW[@]}" --count abc --out "$RS/x.png"
expect_fail "show: unknown --class lists the classes" \
    '^fmnist show: --class "Boot" is no class name; the classes are: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot \(or a number 0\.\.9\)$' \
    "${RS_SHOW[@]}" --class Boot --out "$RS/x.png"
expect_fail "show: --class 10" '^fmnist show: --class "10" is no class name' "${RS_SHOW[@]}" --class 10 --out "$RS/x.png"
expect_fail "show: a class with no images" '^fmnist show: the training set has no images of class Trouser$' \
    "$FMNIST" show --data "$RS/one-class" --class Trouser --out "$RS/x.png"
expect_fail "show: --split foo" '^fmnist show: --split must be train or test, got "foo"$' "${RS_SHOW[@]}" --split foo --out "$RS/x.png"
expect_fail "show: no --out" '^fmnist show: --out FILE\.png is required' "${RS_SHOW[@]}"
expect_fail "show: --out not a .png" '^fmnist show: --out must name a \.png file, got ".*/x\.jpg"$' "${RS_SHOW[@]}" --out "$RS/x.jpg"
expect_fail "show: --out in a missing folder" \
    '^fmnist show: --out .*/nowhere/x\.png: cannot create: No such file or directory$' "${RS_SHOW[@]}" --out "$RS/nowhere/x.png"
expect_fail "show: --out onto a folder" '^fmnist show: --out .*/dir\.png: write failed: Is a directory$' \
    "${RS_SHOW[@]}" --out "$RS/dir.png"
expect_fail "show: --columns 0" '^fmnist show: --columns must be an integer in 1\.\.100' "${RS_SHOW[@]}" --columns 0 --out "$RS/x.png"
expect_fail "show: --scale 17" '^fmnist show: --scale must be an integer in 1\.\.16' "${RS_SHOW[@]}" --scale 17 --out "$RS/x.png"
expect_fail "show: unknown option" '^fmnist show: unknown option --frobnicate' "${RS_SHOW[@]}" --frobnicate --out "$RS/x.png"
expect_fail "show: extra argument" '^fmnist show: unexpected argument "extra"' "${RS_SHOW[@]}" extra --out "$RS/x.png"
check "show: failures leave no file behind" test ! -e "$RS/x.png" -a ! -e "$RS/x.jpg" -a -z "$(find "$RS" -name '*.tmp')"

