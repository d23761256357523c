# 60-report.sh — the pictures and pages: `fmnist show`; the report every `fmnist train` run writes,
# its pictures checked against the CSV files they were drawn from, those against `predict --all`
# and `evaluate --json`, and report.html opened in headless Chromium; `fmnist report`; and
# `fmnist experiment`, interrupted and resumed. With FMNIST_TEST_FAST=1 the run trains on a
# 3,000/1,000-image subset instead of the full set. Sourced by tests/run.sh.

# shellcheck disable=SC2016 # single quotes are meant: regexes and python programs
RP=$T/report
mkdir -p "$RP/small"
"$FIXTURES" subset "$DATA" "$RP/small" 3000 1000 || fail "report setup" "fixtures subset failed"
if [ -n "${FMNIST_TEST_FAST:-}" ]; then
    RP_DATA=$RP/small RP_VAL=500 RP_N=1000
else
    RP_DATA=$DATA RP_VAL=5000 RP_N=10000
fi

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

# A PNG reader for the checks below (8-bit RGB or RGBA, as cairo writes): rows of pixels.
RP_PNG_PY='
import struct, zlib
def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (w * bpp + 1)], bytearray(raw[y * (w * bpp + 1) + 1:(y + 1) * (w * bpp + 1)])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return rows
'

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

# ============================================================ the run report
RR=$RP/run
if expect_ok "report: train 1 epoch with its report" \
    "$FMNIST" train --data "$RP_DATA" --epochs 1 --val $RP_VAL --out "$RR"; then
    check "report: train names report.html" grep -q "^Report: $RR/report.html" <<<"$OUT_TEXT"
fi
for f in report.html curves.png confusion.png confusion.csv predictions.png predictions.csv \
    predictions-grid.csv mistakes.png mistakes-grid.csv; do
    check "report: wrote $f" test -s "$RR/$f"
done
rp_size_is "report: curves.png is 1100x460" "$RR/curves.png" 1100 460
check "report: confusion.png, predictions.png and mistakes.png have sensible sizes" python3 -c '
import struct, sys
def size(p):
    h = open(p, "rb").read(24); return struct.unpack(">II", h[16:24])
cw, ch = size(sys.argv[1] + "/confusion.png")
assert 600 <= cw <= 1000 and 600 <= ch <= 1000, (cw, ch)
for name in ("predictions.png", "mistakes.png"):
    w, h = size(sys.argv[1] + "/" + name)
    assert 1000 <= w <= 1500 and 500 <= h <= 900, (name, w, h)' "$RR"

RR_EVAL=
if expect_ok "report: evaluate --json" "$FMNIST" evaluate "$RR/model.safetensors" --data "$RP_DATA" --json; then
    RR_EVAL=$OUT_TEXT
fi
check "report: confusion matrix sums to the test set and its diagonal is evaluate's accuracy" python3 -c '
import csv, json, sys
ev = json.loads(sys.argv[1]); rows = list(csv.reader(open(sys.argv[2] + "/confusion.csv")))
names, body = rows[0][1:-2], rows[1:]
assert len(names) == 10 and len(body) == 10 and [r[0] for r in body] == names
counts = [[int(v) for v in r[1:11]] for r in body]
total = sum(map(sum, counts)); right = sum(counts[k][k] for k in range(10))
assert total == ev["n"] == int(sys.argv[3]), (total, ev["n"])
assert abs(right / total - ev["accuracy"]) < 1e-12, (right / total, ev["accuracy"])
for k, pc in enumerate(ev["per_class"]):
    assert sum(counts[k]) == pc["n"] and abs(counts[k][k] / pc["n"] - pc["accuracy"]) < 1e-12, (k, pc)
    assert int(body[k][11]) == pc["n"]
print("  ", right, "of", total)' "$RR_EVAL" "$RR" "$RP_N"

if expect_ok "report: predict --all --csv" "$FMNIST" predict "$RR/model.safetensors" --data "$RP_DATA" --all --csv "$RP/predict-all.csv"; then
    check "report: predictions.csv is byte for byte what predict --all writes" cmp -s "$RR/predictions.csv" "$RP/predict-all.csv"
fi
# The tiles of predictions.png: the CSV written from the same numbers as the picture, compared
# with predictions.csv, and the picture's frame colours read back from its pixels.
check "report: predictions.png tiles match predictions.csv, captions and frame colours" python3 -c "$RP_PNG_PY"'
import csv, sys
pred = list(csv.DictReader(open(sys.argv[1] + "/predictions.csv")))
tiles = list(csv.DictReader(open(sys.argv[1] + "/predictions-grid.csv")))
img = read_png(sys.argv[1] + "/predictions.png")
assert len(tiles) == 24, len(tiles)
blue, red = (31, 119, 180), (214, 39, 40)
wrong = 0
for k, t in enumerate(tiles):
    p = pred[int(t["index"])]
    assert int(t["index"]) == k, t
    for f in ("label", "predicted", "label_name", "predicted_name", "confidence"):
        assert t[f] == p[f], (k, f, t[f], p[f])
    assert t["caption_1"] == "%s %.1f%%" % (p["predicted_name"], 100 * float(p["confidence"])), t
    assert t["caption_2"] == "true: " + p["label_name"], t
    correct = p["label"] == p["predicted"]
    assert t["correct"] == str(int(correct)), t
    x, y, w, h = (int(t[f]) for f in "xywh")
    for px in (img[y][x + w // 2], img[y + h - 1][x + w // 2], img[y + h // 2][x]):
        assert max(abs(a - b) for a, b in zip(px, blue if correct else red)) <= 1, (k, px, correct)
    wrong += not correct
print("  ", wrong, "wrong of 24 (red frames)")' "$RR"
check "report: mistakes.png shows the most confident wrong predictions, in order" python3 -c "$RP_PNG_PY"'
import csv, sys
pred = list(csv.DictReader(open(sys.argv[1] + "/predictions.csv")))
tiles = list(csv.DictReader(open(sys.argv[1] + "/mistakes-grid.csv")))
img = read_png(sys.argv[1] + "/mistakes.png")
wrong = sorted((r for r in pred if r["label"] != r["predicted"]), key=lambda r: (-float(r["confidence"]), int(r["index"])))
assert [t["index"] for t in tiles] == [r["index"] for r in wrong[:24]], "not the top 24"
for t in tiles:
    x, y, w = int(t["x"]), int(t["y"]), int(t["w"])
    assert t["correct"] == "0" and max(abs(a - b) for a, b in zip(img[y][x + w // 2], (214, 39, 40))) <= 1, t' "$RR"

# Chromium opens report.html from disk with the network off, and the page's own script marks
# every picture loaded or broken; the figures on the page must be evaluate's.
RP_CHROMIUM=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync --virtual-time-budget=5000)
rp_dom() { # rp_dom HTML-FILE OUT-FILE: the DOM after the page's load event
    timeout 60 "${RP_CHROMIUM[@]}" --user-data-dir="$(mktemp -d "$T/chromium-XXXXXX")" --dump-dom "file://$1" >"$2" 2>/dev/null
}
RP_DOM_PY='
from html.parser import HTMLParser
class Dom(HTMLParser):
    def __init__(self):
        super().__init__(); self.images, self.ids, self.rows, self.body, self.open, self.text = [], {}, [], {}, None, {}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img": self.images.append(a)
        if tag == "body": self.body = a
        if tag == "tr" and "data-class" in a: self.rows.append(a)
        if "id" in a: self.ids[a["id"]] = a; self.open = a["id"]; self.text[a["id"]] = ""
    def handle_data(self, data):
        if self.open: self.text[self.open] += data
    def handle_endtag(self, tag): self.open = None
def dom(path):
    d = Dom(); d.feed(open(path).read()); return d
'
if ! command -v chromium >/dev/null; then
    fail "report: headless Chromium" "chromium is not installed (scripts/setup.sh installs it)"
else
    rp_dom "$RR/report.html" "$RP/report.dom"
    check "report: Chromium renders report.html with every picture loaded" python3 -c "$RP_DOM_PY"'
import struct, sys
d = dom(sys.argv[1])
assert d.body.get("data-images") == "4" and d.body.get("data-broken-images") == "0", d.body
for img, name in zip(d.images, ("curves", "confusion", "predictions", "mistakes")):
    w, h = struct.unpack(">II", open("%s/%s.png" % (sys.argv[2], name), "rb").read(24)[16:24])
    assert img["data-state"] == "loaded" and img["src"].startswith("data:image/png;base64,"), name
    assert (int(img["data-natural-width"]), int(img["data-natural-height"])) == (w, h), (name, w, h)' "$RP/report.dom" "$RR"
    check "report: the page's figures are evaluate --json's" python3 -c "$RP_DOM_PY"'
import json, sys
# evaluate --json prints 15 significant digits when they read back within an ulp, so the page and
# it agree to 1e-12; the text shown is compared exactly.
d = dom(sys.argv[1]); ev = json.loads(sys.argv[2])
assert abs(float(d.ids["test-accuracy"]["data-value"]) - ev["accuracy"]) < 1e-12, (d.ids["test-accuracy"], ev["accuracy"])
assert d.text["test-accuracy"] == "%.2f%%" % (100 * ev["accuracy"]), d.text["test-accuracy"]
assert abs(float(d.ids["test-loss"]["data-value"]) - ev["loss"]) < 1e-12 and d.text["test-loss"] == "%.4f" % ev["loss"]
assert int(d.ids["test-n"]["data-value"]) == ev["n"]
assert len(d.rows) == 10
for row, pc in zip(d.rows, ev["per_class"]):
    assert row["data-class"] == pc["class"] and int(row["data-n"]) == pc["n"], (row, pc)
    assert abs(float(row["data-accuracy"]) - pc["accuracy"]) < 1e-12, (row, pc)
assert "layers.0 (Dense)" in d.text["model-summary"]' "$RP/report.dom" "$RR_EVAL"
    # The check can fail: a page with one corrupted picture is reported broken.
    sed '0,/data:image\/png;base64,iVBOR/s//data:image\/png;base64,AAAAA/' "$RR/report.html" >"$RP/broken.html"
    rp_dom "$RP/broken.html" "$RP/broken.dom"
    check "report: a corrupted picture is caught as broken" python3 -c "$RP_DOM_PY"'
import sys
d = dom(sys.argv[1]); assert d.body.get("data-broken-images") == "1", d.body
assert [i["data-state"] for i in d.images] == ["broken", "loaded", "loaded", "loaded"]' "$RP/broken.dom"
fi

# --no-report; a --val 0 --no-test run gets curves without validation and a page without test figures.
expect_ok "report: train --no-report" "$FMNIST" train --data "$RP/small" --epochs 1 --val 500 --no-test --no-report --quiet --out "$RP/norep" &&
    check "report: --no-report writes no pictures or page" bash -c '! ls "$1"/*.png "$1"/report.html 2>/dev/null' _ "$RP/norep"
expect_ok "report: train --val 0 --no-test, 2 epochs" "$FMNIST" train --data "$RP/small" --epochs 2 --val 0 --no-test --quiet --out "$RP/noval" &&
    check "report: --val 0 --no-test gives curves.png and report.html only" bash -c '
        cd "$1" && test -s curves.png && test -s report.html && ! ls confusion.* predictions.* mistakes.* 2>/dev/null &&
        grep -q "trained with --no-test" report.html && ! grep -q best-val-accuracy report.html' _ "$RP/noval"

# fmnist report redraws the same pictures from the saved run.
mkdir -p "$RP/first"
cp "$RR"/*.png "$RR"/*.csv "$RR/report.html" "$RP/first/"
rm -f "$RR"/*.png "$RR/report.html" "$RR"/confusion.csv "$RR"/predictions*.csv "$RR"/mistakes-grid.csv
if expect_ok "report: fmnist report RUN_DIR" "$FMNIST" report "$RR" --data "$RP_DATA"; then
    check "report: says what it wrote" grep -q "^Wrote $RR/report.html" <<<"$OUT_TEXT"
    for f in curves.png confusion.png predictions.png mistakes.png confusion.csv predictions.csv report.html; do
        check "report: fmnist report redraws $f identically" cmp -s "$RR/$f" "$RP/first/$f"
    done
fi
expect_ok "report: fmnist report on a --no-test run" "$FMNIST" report "$RP/noval" --quiet &&
    check "report: --quiet prints nothing" test -z "$OUT_TEXT"
mkdir -p "$RP/notrun" "$RP/badhist"
cp "$RR/model.safetensors" "$RR/run.json" "$RP/badhist/"
echo '{"loss": [0.5], "accuracy": "high"}' >"$RP/badhist/history.json"
expect_fail "report: no RUN_DIR" '^fmnist report: expected one RUN_DIR' "$FMNIST" report
expect_fail "report: missing folder" '^fmnist report: .*/nowhere: no such run folder$' "$FMNIST" report "$RP/nowhere"
expect_fail "report: a file, not a folder" '^fmnist report: .*/predict-all\.csv: not a folder' "$FMNIST" report "$RP/predict-all.csv"
expect_fail "report: a folder without run.json" '^fmnist report: .*/notrun: no run\.json: not a finished run folder' "$FMNIST" report "$RP/notrun"
expect_fail "report: a malformed history.json" '^fmnist report: .*/badhist/history\.json: "accuracy" is missing or not a list$' \
    "$FMNIST" report "$RP/badhist" --data "$RP_DATA"
cp -r "$RP/badhist" "$RP/zerohist" && ln -sf /dev/zero "$RP/zerohist/history.json"
expect_fail "report: history.json is /dev/zero" '^fmnist report: .*/zerohist/history\.json: larger than 64 MiB$' \
    "$FMNIST" report "$RP/zerohist" --data "$RP_DATA"
expect_fail "report: --threads -1" '^fmnist report: --threads must be an integer' "$FMNIST" report "$RR" --threads -1
expect_fail "report: unknown option" '^fmnist report: unknown option --frobnicate' "$FMNIST" report "$RR" --frobnicate

# ============================================================ fmnist experiment
RX=$RP/experiment
if expect_ok "experiment: --list of the notebooks' tasks" "$FMNIST" experiment --data "$RP/small" --out "$RX/nb" --list; then
    check "experiment: 10 configurations, 8 distinct runs" grep -q "^Experiment: 10 configurations (the notebooks' tasks), 8 distinct runs (0 done, 8 to train)" <<<"$OUT_TEXT"
    check "experiment: the 10-epoch mlp is trained once for three tasks" \
        test "$(grep -c 'shares the run of hidden-128' <<<"$OUT_TEXT")" -eq 2
    check "experiment: the 300-100 network with SGD lr 0.01, 30 epochs" \
        grep -qE '^  sgd-300-100 +mlp300-100 +266610 params, +30 epochs, sgd lr 0.01 ' <<<"$OUT_TEXT"
    check "experiment: --list trains nothing" test ! -e "$RX/nb"
fi
expect_ok "experiment: --epochs-scale 0.1 --list" "$FMNIST" experiment --data "$RP/small" --out "$RX/nb" --list --epochs-scale 0.1 &&
    check "experiment: scaled epochs merge more runs" grep -q "7 distinct runs" <<<"$OUT_TEXT"
printf '# two configurations\nname=a epochs=1 val=500   # the first\n\nname=b model=mlp64 epochs=2 val=500\n' >"$RX-file.txt"
expect_ok "experiment: --file" "$FMNIST" experiment --data "$RP/small" --out "$RX/f" --file "$RX-file.txt" --list &&
    check "experiment: --file reads both configurations" grep -q "^Experiment: 2 configurations, 2 distinct runs" <<<"$OUT_TEXT"
RX_LIST=("$FMNIST" experiment --data "$RP/small" --out "$RX/bad" --list)
# Every training setting is a key, and each one that changes the result keeps runs apart: adamw
# from sgd at one rate, a preset's settings from its spec written out, flips from none.
RX_CNN="conv:32:3,relu,conv:64:3,relu,maxpool:2,dropout:0.25,dense:128,relu,dropout:0.5,dense:10"
if expect_ok "experiment: training settings as keys" "${RX_LIST[@]}" "name=sgd optimizer=sgd lr=0.01" \
    "name=adamw optimizer=adamw lr=0.01" "name=flips augment=flip" "name=flips-tta augment=flip tta" \
    "name=preset model=cnn epochs=15" "name=spelled model=$RX_CNN epochs=15" \
    "name=nesterov optimizer=sgd momentum=0.9 nesterov weight-decay=5e-4 schedule=onecycle warmup=1 label-smoothing=0.1 patience=3 reduce-lr-patience=2 reduce-lr-factor=0.5 min-lr=1e-5 monitor=val_loss" \
    "name=swa optimizer=sgd schedule=cosine swa=2 swa-lr=0.005" "name=step schedule=step step-epochs=3 step-gamma=0.5" \
    "name=plain" "name=plain-again no-tta" "name=bf16 precision=bf16" "name=float precision=float32"; then
    check "experiment: 13 configurations, 11 distinct runs" grep -q "^Experiment: 13 configurations, 11 distinct runs" <<<"$OUT_TEXT"
    check "experiment: float32 is the default precision" grep -q "^  float .* shares the run of plain$" <<<"$OUT_TEXT"
    check "experiment: no-tta is the default" grep -q "^  plain-again .* shares the run of plain$" <<<"$OUT_TEXT"
    check "experiment: the listing names each run's settings" python3 -c "
import sys
rows = {l.split()[0]: l for l in sys.argv[1].splitlines()[1:]}
want = {'sgd': ' sgd lr 0.01 ', 'adamw': ' adamw lr 0.01, weight decay 0.01 ', 'flips': ' adam lr 0.001, augment flip ',
        'flips-tta': ' adam lr 0.001, augment flip, test-time flips ', 'preset': ' adam lr 0.001, cosine schedule, augment flip ',
        'spelled': ' adam lr 0.001 ',
        'nesterov': ' sgd lr 0.01 nesterov 0.9, onecycle schedule (1 warm-up epochs), weight decay 0.0005, label smoothing 0.1, early stopping after 3, lr x0.5 after 2 on a plateau ',
        'swa': ' sgd lr 0.01, cosine schedule, weights averaged over the last 2 epochs at lr 0.005 ',
        'step': ' adam lr 0.001, step schedule (x0.5 every 3 epochs) ', 'bf16': ' adam lr 0.001, bf16 products '}
for k, v in want.items():
    assert v in rows[k], (k, rows[k])
assert all('shares the run' not in rows[k] for k in ('adamw', 'spelled', 'bf16')), rows" "$OUT_TEXT"
fi
expect_fail "experiment: a switch with a value" '^fmnist experiment: configuration "name=a tta=yes": tta takes no value \(write just tta\)$' "${RX_LIST[@]}" "name=a tta=yes"
expect_fail "experiment: bad augmentation" '^fmnist experiment: config a: --augment: augmentation "bogus": unknown' "${RX_LIST[@]}" "name=a augment=bogus"
expect_fail "experiment: swa with early stopping" '^fmnist experiment: config a: --swa and --patience exclude each other' "${RX_LIST[@]}" "name=a swa=2 patience=2"
expect_fail "experiment: unknown key" '^fmnist experiment: configuration "name=a hidden=64": unknown key "hidden" \(keys: name, model' "${RX_LIST[@]}" "name=a hidden=64"
expect_fail "experiment: key without a value" '^fmnist experiment: configuration "name=a epochs": epochs needs a value' "${RX_LIST[@]}" "name=a epochs"
expect_fail "experiment: bad value" '^fmnist experiment: config a: --epochs must be an integer in 1\.\.100000, got "0"$' "${RX_LIST[@]}" "name=a epochs=0"
expect_fail "experiment: bad model" '^fmnist experiment: config a: --model: .*unknown layer "bogus:3"' "${RX_LIST[@]}" "name=a model=bogus:3"
expect_fail "experiment: two configurations with one name" '^fmnist experiment: two configurations are named "a"' "${RX_LIST[@]}" "name=a" "name=a epochs=2"
expect_fail "experiment: a name with a slash" '^fmnist experiment: configuration "name=a/b": name "a/b" must be letters' "${RX_LIST[@]}" "name=a/b"
expect_fail "experiment: val=0" '^fmnist experiment: config a: val=0 leaves no validation set' "${RX_LIST[@]}" "name=a val=0"
expect_fail "experiment: --epochs-scale 0" '^fmnist experiment: --epochs-scale must be above 0' "${RX_LIST[@]}" --epochs-scale 0
expect_fail "experiment: missing --file" '^fmnist experiment: --file .*/nofile: cannot open: No such file or directory$' "${RX_LIST[@]}" --file "$RX/nofile"
: >"$RX-empty.txt"
expect_fail "experiment: empty --file" '^fmnist experiment: --file .*-empty\.txt holds no configurations$' "${RX_LIST[@]}" --file "$RX-empty.txt"
# Devices and binary files end with an error, not an endless stream of empty lines.
expect_fail "experiment: --file /dev/zero" '^fmnist experiment: --file /dev/zero: larger than 1048576 bytes$' "${RX_LIST[@]}" --file /dev/zero
printf 'name=a\n\0name=b\n' >"$RX-nul.txt"
expect_fail "experiment: --file with a NUL byte" '^fmnist experiment: --file .*-nul\.txt: not a text file \(NUL byte at offset 7\)$' "${RX_LIST[@]}" --file "$RX-nul.txt"
expect_fail "experiment: unknown option" '^fmnist experiment: unknown option --frobnicate' "${RX_LIST[@]}" --frobnicate

# Interrupted and resumed: a finishes, b is stopped by SIGTERM after its first epoch, c shares
# a's run. The same command then skips a and continues b from its checkpoint, to the weights an
# uninterrupted b has. (SIGTERM: a background job of a script ignores SIGINT.)
RX_B="name=b model=mlp64 epochs=25 val=500"
RX_RUN=("$FMNIST" experiment --data "$RP/small" --out "$RX/run" --quiet
    "name=a epochs=1 val=500" "$RX_B" "name=c model=dense:128:relu,dense:10 epochs=1 val=500")
"${RX_RUN[@]}" >"$RX-first.log" 2>&1 &
rx_pid=$!
for _ in $(seq 1200); do
    [ -e "$RX/run/a/experiment-config.txt" ] && [ -e "$RX/run/b/checkpoint.fmck" ] && break
    kill -0 $rx_pid 2>/dev/null || break
    sleep 0.05
done
kill -TERM $rx_pid 2>/dev/null
wait $rx_pid
rx_rc=$?
check "experiment: interrupted while b trains (exit $rx_rc)" test $rx_rc -eq 143 -a -e "$RX/run/a/experiment-config.txt" -a ! -e "$RX/run/b/experiment-config.txt"
# (mid-epoch, or at an epoch's end when the signal lands while the checkpoint is written)
check "experiment: the interruption says how to resume" grep -qE '^fmnist experiment: interrupted by SIGTERM: training stopped (at epoch [0-9]+, batch [0-9]+ of [0-9]+|after epoch [0-9]+ of [0-9]+); checkpoint saved to .*/run/b/checkpoint\.fmck; the same fmnist experiment command resumes it$' "$RX-first.log"
rx_sum=$(cksum <"$RX/run/a/model.safetensors" 2>/dev/null)
if expect_ok "experiment: resumed" "${RX_RUN[@]}"; then
    check "experiment: the finished run is skipped" grep -q '^\[1/3\] a: done earlier, skipped' <<<"$OUT_TEXT"
    check "experiment: the half-finished run continues" grep -q '^\[2/3\] b: name=b model=mlp64 epochs=25 val=500 (resuming its checkpoint)$' <<<"$OUT_TEXT"
    check "experiment: identical settings share a run" grep -q '^\[3/3\] c: same settings as a, shares its run' <<<"$OUT_TEXT"
    check "experiment: the skipped run's model is untouched" test "$rx_sum" = "$(cksum <"$RX/run/a/model.safetensors")"
fi
if expect_ok "experiment: b uninterrupted, for reference" "$FMNIST" experiment --data "$RP/small" --out "$RX/ref" --quiet "$RX_B"; then
    check "experiment: the resumed run ends with the uninterrupted run's weights" \
        cmp -s "$RX/run/b/model.safetensors" "$RX/ref/b/model.safetensors"
fi
check "experiment: results.csv agrees with the runs" python3 -c '
import csv, json, sys
d = sys.argv[1]; rows = list(csv.DictReader(open(d + "/results.csv")))
assert [r["name"] for r in rows] == ["a", "b", "c"] and [r["run"] for r in rows] == ["a", "b", "a"], rows
for r in rows:
    run = json.load(open("%s/%s/run.json" % (d, r["run"]))); hist = json.load(open("%s/%s/history.json" % (d, r["run"])))
    assert float(r["test_accuracy"]) == run["test"]["accuracy"], (r, run["test"])
    best = max(hist["val_accuracy"])
    assert float(r["best_val_accuracy"]) == best and int(r["best_val_epoch"]) == hist["val_accuracy"].index(best) + 1, r
    assert int(r["epochs"]) == len(hist["val_accuracy"]) and int(r["params"]) == run["params"], r
assert rows[0]["test_accuracy"] == rows[2]["test_accuracy"]
assert [r["training"] for r in rows] == ["adam lr 0.001"] * 3, [r["training"] for r in rows]' "$RX/run"
check "experiment: results.md is a table of the three" bash -c '[ "$(grep -c "^| [abc] |" "$1")" -eq 3 ]' _ "$RX/run/results.md"
check "experiment: val_accuracy.png" test -s "$RX/run/val_accuracy.png"
check "experiment: every run has its report" test -s "$RX/run/a/report.html" -a -s "$RX/run/b/report.html"
if command -v chromium >/dev/null; then
    rp_dom "$RX/run/index.html" "$RP/experiment.dom"
    check "experiment: Chromium renders index.html with its picture loaded" python3 -c "$RP_DOM_PY"'
import sys
d = dom(sys.argv[1]); assert d.body.get("data-images") == "1" and d.body.get("data-broken-images") == "0", d.body' "$RP/experiment.dom"
fi
# A changed configuration under an old name is trained again, not mistaken for the old run.
expect_ok "experiment: a changed configuration" "$FMNIST" experiment --data "$RP/small" --out "$RX/run" --quiet "name=a epochs=2 val=500" &&
    check "experiment: a changed configuration is trained again" grep -q '^\[1/1\] a: name=a epochs=2 val=500' <<<"$OUT_TEXT"
