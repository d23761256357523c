# 30-checkpoint.sh — checkpoints and resuming on the real data (small subsets): a run killed
# mid-epoch by SIGINT or SIGTERM and resumed ends with a model bit-identical to an uninterrupted
# run (an MLP and a small conv net, both with dropout and augmentation, so every draw of the
# generator matters); so does a run extended after a clean end of epoch. Bad resumes, a folder
# that cannot be written, a full disk (ulimit -f) and a diverging run give one clear error and
# leave the last good checkpoint loadable. Sourced by tests/run.sh ($FMNIST, $FIXTURES, $DATA, $T).

# shellcheck disable=SC2016 # single quotes are meant: regexes with \$
CK=$T/checkpoint
mkdir -p "$CK/mlp-data" "$CK/conv-data" "$CK/small"
"$FIXTURES" subset "$DATA" "$CK/mlp-data" 20000 200 || fail "checkpoint setup" "fixtures subset failed"
"$FIXTURES" subset "$DATA" "$CK/conv-data" 8000 200 || fail "checkpoint setup" "fixtures subset failed"
"$FIXTURES" subset "$DATA" "$CK/small" 2000 200 || fail "checkpoint setup" "fixtures subset failed"
# 512 hidden units: an epoch long enough (~0.4 s on one thread) that the interruption below,
# 0.1 s after the first checkpoint appears, lands inside the second epoch, not after it.
CK_MLP=(--data "$CK/mlp-data" --model "dense:512:relu,dropout:0.2,dense:10" --augment shift=1,flip
        --epochs 3 --val 1000 --threads 1 --no-report --no-test --quiet)
CK_CONV=(--data "$CK/conv-data" --model "conv:4:3:same,relu,maxpool:2,dropout:0.25,dense:10"
         --augment shift=1,flip,erase=0.2 --optimizer sgd --momentum 0.9 --epochs 3 --val 500
         --threads 1 --no-report --no-test --quiet)
CK_SMALL=(--data "$CK/small" --model "dense:32:relu,dense:10" --val 200 --threads 1 --no-report
          --no-test --quiet)

# ck_interrupt NAME SIGNAL DIR FLAGS...: starts `fmnist train FLAGS --out DIR`, waits until its
# first checkpoint exists (the end of epoch 1) and a little more, so that epoch 2 is under way,
# sends SIGNAL (INT or TERM), and checks the exit status (128 + signal) and the message: stopped
# mid-epoch, checkpoint saved, how to resume.
ck_interrupt() {
    local name=$1 sig=$2 dir=$3 want
    shift 3
    rm -rf "$dir"
    mkdir -p "$dir"
    # A script's background job starts with SIGINT ignored (and fmnist leaves an ignored signal
    # ignored): give it the default disposition back, as an interactive shell would.
    env --default-signal=INT "$FMNIST" train "$@" --out "$dir" >/dev/null 2>"$dir.err" &
    local pid=$! i=0
    while [ ! -f "$dir/checkpoint.fmck" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 3000 ]; do
        sleep 0.02
        i=$((i + 1))
    done
    sleep 0.1
    kill -s "$sig" "$pid"
    wait "$pid"
    local rc=$?
    [ "$sig" = INT ] && want=130 || want=143
    if [ $rc -ne $want ]; then
        fail "$name" "exit $rc, wanted $want: $(cat "$dir.err")"
    elif ! grep -qE "^fmnist train: interrupted by SIG$sig: training stopped at epoch [0-9]+, batch [0-9]+ of [0-9]+; checkpoint saved to $dir/checkpoint\.fmck; resume with: fmnist train --resume $dir\$" "$dir.err"; then
        fail "$name" "no mid-epoch stop message: $(cat "$dir.err")"
    else
        pass "$name"
    fi
}

# ck_same NAME A B: the two files are byte for byte the same.
ck_same() {
    if cmp -s "$2" "$3"; then pass "$1"; else fail "$1" "$2 and $3 differ"; fi
}

# --- uninterrupted references
expect_ok "checkpoint: mlp reference run" "$FMNIST" train "${CK_MLP[@]}" --out "$CK/mlp-ref"
check "checkpoint: written at the end of the run" test -s "$CK/mlp-ref/checkpoint.fmck"
expect_ok "checkpoint: conv reference run" "$FMNIST" train "${CK_CONV[@]}" --out "$CK/conv-ref"

# --- SIGINT mid-epoch, resume, same bits
ck_interrupt "checkpoint: SIGINT stops the mlp mid-epoch" INT "$CK/mlp-int" "${CK_MLP[@]}"
expect_ok "checkpoint: resume the mlp after SIGINT" "$FMNIST" train --resume "$CK/mlp-int" --quiet
ck_same "checkpoint: mlp resumed after SIGINT is bit-identical" "$CK/mlp-ref/model.safetensors" "$CK/mlp-int/model.safetensors"
ck_same "checkpoint: same best.safetensors too" "$CK/mlp-ref/best.safetensors" "$CK/mlp-int/best.safetensors"

# --- SIGTERM mid-epoch on the conv net, resume, same bits
ck_interrupt "checkpoint: SIGTERM stops the conv net mid-epoch" TERM "$CK/conv-term" "${CK_CONV[@]}"
expect_ok "checkpoint: resume the conv net after SIGTERM" "$FMNIST" train --resume "$CK/conv-term"
grep -qE '^Resuming .*/checkpoint\.fmck at epoch [0-9]+, batch [0-9]+ of [0-9]+$' <<<"$OUT_TEXT" &&
    pass "checkpoint: resume says where it starts" || fail "checkpoint: resume says where it starts" "$OUT_TEXT"
ck_same "checkpoint: conv net resumed after SIGTERM is bit-identical" "$CK/conv-ref/model.safetensors" "$CK/conv-term/model.safetensors"

# --- a clean stop at an epoch boundary: 2 epochs, then --resume --epochs 3 (constant rate)
expect_ok "checkpoint: 2-epoch run" "$FMNIST" train "${CK_MLP[@]}" --epochs 2 --out "$CK/mlp-2"
expect_ok "checkpoint: extend it to 3 epochs" "$FMNIST" train --resume "$CK/mlp-2" --epochs 3 --quiet
ck_same "checkpoint: extended run is bit-identical to the 3-epoch run" "$CK/mlp-ref/model.safetensors" "$CK/mlp-2/model.safetensors"
check "checkpoint: extended history has 3 epochs" test "$(wc -l <"$CK/mlp-2/history.csv")" -eq 4
# train_seconds covers all three epochs, not just the one trained after the resume
check "checkpoint: a resumed run's train_seconds counts every epoch" python3 -c "
import json, sys
run = json.load(open('$CK/mlp-2/run.json'))
secs = json.load(open('$CK/mlp-2/history.json'))['seconds']
# history.json keeps each epoch's seconds in full
ok = run.get('resumed') is True and len(secs) == 3 and abs(run['train_seconds'] - sum(secs)) <= 0.002
ok = ok and run['seconds_since_resume'] < run['train_seconds']
sys.exit(0 if ok else 1)"

# ============================================================ bad resumes
expect_ok "checkpoint: a 1-epoch run to resume" "$FMNIST" train "${CK_SMALL[@]}" --epochs 1 --out "$CK/one"
cp "$CK/one/checkpoint.fmck" "$CK/one.fmck"
expect_fail "resume: missing run folder" \
    '^fmnist train: --resume: checkpoint .*/nowhere/checkpoint\.fmck: cannot open: No such file or directory$' \
    "$FMNIST" train --resume "$CK/nowhere"
expect_fail "resume: a finished run" \
    '^fmnist train: --resume: run .*/one has finished its 1 epochs; add --epochs N \(above 1\) to train further$' \
    "$FMNIST" train --resume "$CK/one"
expect_fail "resume: --epochs below the epochs done" \
    '^fmnist train: --epochs 2: run .*/mlp-2 has already trained 3 epochs$' \
    "$FMNIST" train --resume "$CK/mlp-2" --epochs 2
expect_ok "checkpoint: a run that early stopping ends" \
    "$FMNIST" train "${CK_SMALL[@]}" --epochs 30 --patience 1 --lr 0.05 --out "$CK/early"
expect_fail "resume: a run early stopping ended" \
    '^fmnist train: --resume: run .*/early stopped early at epoch [0-9]+ \(no better validation figure for 1 epochs\): nothing to resume$' \
    "$FMNIST" train --resume "$CK/early" --epochs 40
expect_fail "resume: a setting other than --epochs" \
    '^fmnist train: --resume continues with the checkpoint.s settings: only --epochs, --data, --quiet and --json may go with it, not --lr$' \
    "$FMNIST" train --resume "$CK/one" --epochs 2 --lr 0.1
expect_fail "resume: --model with it" 'only --epochs, --data, --quiet and --json may go with it, not --model$' \
    "$FMNIST" train --resume "$CK/one" --model mlp
expect_fail "resume: other training data" \
    '^fmnist train: the training data differs from the checkpoint.s \(1800 training images, CRC-32 [0-9a-f]{8}; now 19800, [0-9a-f]{8}\)$' \
    "$FMNIST" train --resume "$CK/one" --epochs 2 --data "$CK/mlp-data" --quiet
mkdir -p "$CK/bad"
ck_bad() { # ck_bad NAME: a run folder holding a checkpoint to break, printed as its path
    rm -rf "${CK:?}/bad/$1"
    mkdir -p "$CK/bad/$1"
    cp "$CK/one.fmck" "$CK/bad/$1/checkpoint.fmck"
    echo "$CK/bad/$1"
}
d=$(ck_bad empty)
: >"$d/checkpoint.fmck"
expect_fail "resume: empty checkpoint" 'checkpoint .*/empty/checkpoint\.fmck: not an fmnist checkpoint \(no FMNISTCK magic\)$' \
    "$FMNIST" train --resume "$d" --epochs 2
d=$(ck_bad model-file)
cp "$CK/one/model.safetensors" "$d/checkpoint.fmck"
expect_fail "resume: a model file in place of the checkpoint" 'checkpoint .*/checkpoint\.fmck: not an fmnist checkpoint' \
    "$FMNIST" train --resume "$d" --epochs 2
d=$(ck_bad truncated)
head -c 100000 "$CK/one.fmck" >"$d/checkpoint.fmck"
expect_fail "resume: truncated checkpoint" \
    'checkpoint .*/truncated/checkpoint\.fmck: truncated or extended: 100000 bytes, and its trailer does not give that length$' \
    "$FMNIST" train --resume "$d" --epochs 2
d=$(ck_bad corrupt)
printf 'XXXX' | dd of="$d/checkpoint.fmck" bs=1 seek=50000 conv=notrunc status=none
expect_fail "resume: corrupt checkpoint (bytes changed)" \
    'checkpoint .*/corrupt/checkpoint\.fmck: corrupt: the CRC-32 of its contents does not match$' \
    "$FMNIST" train --resume "$d" --epochs 2
d=$(ck_bad version)
printf '\x07' | dd of="$d/checkpoint.fmck" bs=1 seek=8 conv=notrunc status=none
expect_fail "resume: checkpoint from a newer version" \
    'checkpoint .*/version/checkpoint\.fmck: version 7, this fmnist reads version 3$' \
    "$FMNIST" train --resume "$d" --epochs 2

# ============================================================ disk failures
# A folder where the checkpoint cannot be written: read-only for other users; as root (who writes
# anywhere) a folder squats on the temporary file's name. The old checkpoint must survive.
cp "$CK/one.fmck" "$CK/one/checkpoint.fmck"
if [ "$(id -u)" -ne 0 ]; then chmod a-w "$CK/one"; else mkdir "$CK/one/checkpoint.fmck.tmp"; fi
expect_fail "disk: checkpoint folder not writable" \
    '(folder is not writable|checkpoint .*/one/checkpoint\.fmck\.tmp: cannot create: (Permission denied|Is a directory) \(the previous checkpoint is kept\))$' \
    "$FMNIST" train --resume "$CK/one" --epochs 2 --quiet
chmod u+w "$CK/one"
rmdir "$CK/one/checkpoint.fmck.tmp" 2>/dev/null
ck_same "disk: the previous checkpoint is intact (unwritable folder)" "$CK/one.fmck" "$CK/one/checkpoint.fmck"
# A full disk: a 200 KiB file-size limit lets best.safetensors (100 KiB) through but not the
# checkpoint (300 KiB); SIGXFSZ ignored, so write() fails with EFBIG.
expect_fail "disk: full (file-size limit) while writing the checkpoint" \
    '^fmnist train: checkpoint .*/one/checkpoint\.fmck: write failed: File too large \(the previous checkpoint is kept\)$' \
    bash -c 'trap "" XFSZ; ulimit -f 200; exec "$@"' _ "$FMNIST" train --resume "$CK/one" --epochs 2 --quiet
ck_same "disk: the previous checkpoint is intact (full disk)" "$CK/one.fmck" "$CK/one/checkpoint.fmck"
check "disk: no temporary file left" test ! -e "$CK/one/checkpoint.fmck.tmp"
expect_ok "disk: resume from the kept checkpoint" "$FMNIST" train --resume "$CK/one" --epochs 2 --quiet
expect_ok "disk: the same 2 epochs uninterrupted" "$FMNIST" train "${CK_SMALL[@]}" --epochs 2 --out "$CK/two"
ck_same "disk: resumed after the failures, bit-identical" "$CK/two/model.safetensors" "$CK/one/model.safetensors"

# ============================================================ divergence
# SGD with a warm-up to lr 3 and an L2 factor of 1: finite through epoch 2, NaN in epoch 3. The
# checkpoint must stay the one of epoch 2, and resuming it diverges again at the same batch.
CK_NAN=("${CK_SMALL[@]}" --model dense:10 --optimizer sgd --lr 3 --warmup 3 --l2 1 --epochs 4 --out "$CK/nan")
expect_fail "diverge: NaN loss names the learning rate" \
    '^fmnist train: loss became NaN at epoch 3, batch [0-9]+; the learning rate \([0-9.]+\) is probably too high$' \
    "$FMNIST" train "${CK_NAN[@]}"
nan_first=$("$FMNIST" train "${CK_NAN[@]}" --out "$CK/nan-again" 2>&1)
nan_msg=$("$FMNIST" train --resume "$CK/nan" 2>&1 >"$CK/nan.out")
grep -q "^Resuming .*/nan/checkpoint\.fmck after epoch 2$" "$CK/nan.out" &&
    pass "diverge: the checkpoint loads and is from epoch 2, the last finite one" ||
    fail "diverge: the checkpoint loads and is from epoch 2, the last finite one" "$(cat "$CK/nan.out") $nan_msg"
[ -n "$nan_msg" ] && [ "$nan_msg" = "$nan_first" ] &&
    pass "diverge: resumed, it diverges at the same place" || fail "diverge: resumed, it diverges at the same place" "$nan_msg vs $nan_first"
