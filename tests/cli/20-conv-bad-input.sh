# 20-conv-bad-input.sh — bad input for what convolutional networks added: spec items (conv,
# pools, dropout, batch norm, leakyrelu, residual blocks) and shapes that do not fit, the training flags
# (optimizers, schedules, smoothing, augmentation, callbacks) and what they write, model files
# with batch norm tensors broken in one way each. Every case gives exactly one error line naming the item, flag
# or tensor, and a non-zero exit. Sourced by tests/run.sh (uses $FMNIST, $FIXTURES, $DATA, $T).

# shellcheck disable=SC2016 # single quotes are meant: regexes with \$
CB=$T/conv-bad-input
mkdir -p "$CB/small"
"$FIXTURES" subset "$DATA" "$CB/small" 600 200 || fail "conv bad-input setup" "fixtures subset failed"
CB_TRAIN=("$FMNIST" train --data "$CB/small" --epochs 1 --val 100 --quiet --no-test --out "$CB/out")

# ============================================================ spec items
cb_spec_cases=(
    'conv|"conv" needs filters and a kernel size, e.g\. conv:32:3'
    'conv:0:3,dense:10|"conv:0:3": filters must be an integer in 1\.\.4096'
    'conv:8:0,dense:10|"conv:8:0": kernel size must be an integer in 1\.\.64'
    'conv:8:3:full,dense:10|"conv:8:3:full": unknown or repeated option "full"'
    'conv:8:3:s0,dense:10|"conv:8:3:s0": stride "s0" must be s1\.\.s64'
    'conv:8:30,dense:10|"conv:8:30": a 30x30 kernel does not fit its 28x28 input without padding'
    'conv:8:3,maxpool:27,dense:10|"maxpool:27": a 27x27 pool is larger than its 26x26 input'
    'maxpool:0,dense:10|"maxpool:0": pool size must be an integer in 1\.\.64'
    'avgpool:2:0,dense:10|"avgpool:2:0": stride must be an integer in 1\.\.64'
    'dropout:1,dense:10|"dropout:1": dropout needs a probability in \[0, 1\)'
    'dense:10,leakyrelu:2|"leakyrelu:2": the slope must be a number in \[0, 1\)'
    'dense:128,conv:8:3,dense:10|"conv:8:3" needs an image .* follows a flat layer of 128 values'
    'gap:3,dense:10|unknown layer "gap:3" \(expected dense:UNITS'
    'bn:0.1,dense:10|unknown layer "bn:0\.1"'
    'conv:8:3,gap|ends with 8 outputs but there are 10 classes'
    'maxpool:2,bn,dropout:0.5|has no dense or conv layer to learn with'
    'res(conv:8:3:same),dense:10|the residual block opened at item 1 turns its input of \(1, 28, 28\) into \(8, 28, 28\)'
    'conv:4:3,res(relu,res(relu)),dense:10|"res\(relu\)\)" \(item 3\) opens a residual block inside the one opened at item 2; blocks do not nest'
    'conv:4:3,relu),dense:10|"relu\)" \(item 2\) closes a residual block that no "res\(" opened'
    'conv:4:3,res(relu,dense:10|the residual block opened at item 2 is never closed'
    'conv:1:28,res(dense:1),dense:10|the residual block opened at item 2 flattens its image input'
)
for cb_c in "${cb_spec_cases[@]}"; do
    cb_spec=${cb_c%%|*} cb_regex=${cb_c#*|}
    expect_fail "conv spec \"$cb_spec\": train" "^fmnist train: --model: .*$cb_regex" "${CB_TRAIN[@]}" --model "$cb_spec"
    expect_fail "conv spec \"$cb_spec\": summary" "^fmnist summary: .*$cb_regex" "$FMNIST" summary "$cb_spec"
done

# ============================================================ flags: optimizers, schedules, smoothing
cb_flag_cases=(
    '--optimizer adamx|--optimizer must be adam, adamw or sgd, got "adamx"'
    '--weight-decay -1|--weight-decay must be a number in \[0, 1\], got "-1"'
    '--weight-decay 0.1|--weight-decay is decoupled: use it with --optimizer adamw or sgd'
    '--schedule linear|--schedule must be constant, step, cosine or onecycle, got "linear"'
    '--warmup -1|--warmup must be a number in \[0, 100000\], got "-1"'
    '--warmup 1|--warmup 1 must be below --epochs 1'
    '--step-epochs 0|--step-epochs must be an integer in 1\.\.100000, got "0"'
    '--step-gamma 0|--step-gamma must be above 0, got "0"'
    '--step-gamma 2|--step-gamma must be a number in \[0, 1\], got "2"'
    '--label-smoothing 1|--label-smoothing must be a number in \[0, 0\.999999\], got "1"'
    '--label-smoothing x|--label-smoothing must be a number'
    '--augment shift=0|--augment: augmentation "shift=0": shift needs a whole number of pixels in 1\.\.16'
    '--augment rotate=200|--augment: augmentation "rotate=200": rotate needs degrees in \(0, 180\]'
    '--augment erase=2|--augment: augmentation "erase=2": erase needs a probability in \(0, 1\]'
    '--augment flip=1|--augment: augmentation "flip=1": flip takes no value'
    '--augment crop=4|--augment: augmentation "crop=4": unknown \(expected shift=N, flip, rotate=DEGREES or erase=P\)'
    '--augment flip,flip|--augment: augmentation "flip": flip given twice'
    '--augment=|--augment: augmentation list is empty'
    '--tta=yes|--tta takes no value'
    '--monitor accuracy|--monitor must be val_accuracy or val_loss, got "accuracy"'
    '--patience -1|--patience must be an integer in 0\.\.100000, got "-1"'
    '--reduce-lr-patience x|--reduce-lr-patience must be an integer in 0\.\.100000, got "x"'
    '--reduce-lr-factor 1|--reduce-lr-factor must be between 0 and 1, got "1"'
    '--min-lr -1|--min-lr must be a number in \[0, 10\], got "-1"'
    '--patience 2 --val 0|--patience and --reduce-lr-patience watch the validation split: give --val above 0'
    '--swa -1|--swa must be an integer in 0\.\.100000, got "-1"'
    '--swa 2|--swa 2 averages more epochs than --epochs 1'
    '--swa 1 --patience 1|--swa and --patience exclude each other'
    '--swa-lr 0.01|--swa-lr needs --swa N \(the epochs to average\)'
    '--swa 1 --swa-lr 0|--swa-lr must be above 0, got "0"'
    '--swa 1 --swa-lr 11|--swa-lr must be a number in \[0, 10\], got "11"'
    '--precision fp16|--precision must be float32 or bf16, got "fp16"'
    '--precision|--precision needs a value \(see fmnist train --help\)'
)
for cb_c in "${cb_flag_cases[@]}"; do
    cb_flags=${cb_c%%|*} cb_regex=${cb_c#*|}
    # shellcheck disable=SC2086 # the flags are meant to split into words
    expect_fail "conv flags: train $cb_flags" "^fmnist train: $cb_regex" "${CB_TRAIN[@]}" $cb_flags
done

# --patience 0 and --reduce-lr-patience 0 switch the callbacks off (a preset's too), so --val 0
# is allowed again.
expect_ok "conv flags: --patience 0 --reduce-lr-patience 0 with --val 0" "$FMNIST" train --data "$CB/small" \
    --model dense:10 --patience 0 --reduce-lr-patience 0 --val 0 --epochs 1 --no-test --no-report --out "$CB/nopatience"

# A schedule shows the rate on each epoch line and in the history; run.json records the settings.
if expect_ok "conv: adamw + cosine + warm-up + label smoothing" "$FMNIST" train --data "$CB/small" --val 100 \
    --epochs 2 --optimizer adamw --schedule cosine --warmup 0.5 --label-smoothing 0.1 --no-test --out "$CB/sched"; then
    check "conv: training line names the schedule" grep -q '^Training: adamw lr 0.001, cosine schedule (0.5 warm-up epochs), weight decay 0.01, label smoothing 0.1' <<<"$OUT_TEXT"
    check "conv: epoch lines show the rate" grep -qE '^Epoch 2/2 .* - lr: [0-9.e-]+$' <<<"$OUT_TEXT"
    check "conv: history and run.json record the schedule" python3 -c "
import json
h = json.load(open('$CB/sched/history.json')); r = json.load(open('$CB/sched/run.json'))
assert len(h['lr']) == 2 and h['lr'][1] < h['lr'][0] < 0.001, h['lr']
assert r['optimizer'] == 'adamw' and r['schedule'] == 'cosine' and r['weight_decay'] == 0.01, r
assert r['warmup'] == 0.5 and abs(r['label_smoothing'] - 0.1) < 1e-7, r"
fi

# Augmentation and test-time flips: the run records them, the model keeps TTA, and evaluate
# reproduces train's test figures with it (and differs without it).
if expect_ok "conv: train with --augment and --tta" "$FMNIST" train --data "$CB/small" --val 100 --epochs 1 \
    --model "conv:4:3:same,relu,maxpool:2,dense:10" --augment shift=2,flip,rotate=10,erase=0.5 --tta \
    --out "$CB/aug" --json; then
    CB_AUG=$OUT_TEXT
    check "conv: run.json records augmentation and TTA" python3 -c "
import json, sys; r = json.loads(sys.argv[1])
assert r['augment'] == 'shift=2,flip,rotate=10,erase=0.5' and r['tta'] == 'flip', r" "$CB_AUG"
    expect_ok "conv: evaluate a TTA model" "$FMNIST" evaluate "$CB/aug/model.safetensors" --data "$CB/small" --json &&
        check "conv: evaluate with the file's TTA agrees with train" python3 -c "
import json, sys; r = json.loads(sys.argv[1]); e = json.loads(sys.argv[2])
assert e['tta'] is True and e['accuracy'] == r['test']['accuracy'] and abs(e['loss'] - r['test']['loss']) < 1e-12, (r, e)" "$CB_AUG" "$OUT_TEXT"
    expect_ok "conv: evaluate --no-tta" "$FMNIST" evaluate "$CB/aug/model.safetensors" --data "$CB/small" --json --no-tta &&
        check "conv: --no-tta gives other figures" python3 -c "
import json, sys; r = json.loads(sys.argv[1]); e = json.loads(sys.argv[2])
assert e['tta'] is False and e['loss'] != r['test']['loss'], (r, e)" "$CB_AUG" "$OUT_TEXT"
    expect_ok "conv: predict --tta" "$FMNIST" predict "$CB/aug/model.safetensors" --data "$CB/small" --json
fi
expect_fail "conv: evaluate --tta=1" '^fmnist evaluate: --tta takes no value' "$FMNIST" evaluate "$CB/aug/model.safetensors" --tta=1

# Callbacks: the best epoch goes to best.safetensors; early stopping restores it, so the final
# model is that file byte for byte; run.json and the printed lines say what happened.
if expect_ok "conv: early stopping and plateaus" "$FMNIST" train --data "$CB/small" --val 100 --epochs 30 \
    --lr 0.02 --patience 2 --reduce-lr-patience 1 --reduce-lr-factor 0.5 --no-test --out "$CB/cbk"; then
    check "conv: early stopping line" grep -qE '^Early stopping after epoch [0-9]+: no better val_accuracy for 2 epochs$' <<<"$OUT_TEXT"
    check "conv: restored line" grep -qE '^Restored the weights of epoch [0-9]+ \(val_loss: [0-9.]+ - val_accuracy: [0-9.]+\)$' <<<"$OUT_TEXT"
    check "conv: best.safetensors is the restored model" cmp -s "$CB/cbk/best.safetensors" "$CB/cbk/model.safetensors"
    check "conv: run.json records the callbacks" python3 -c "
import json; r = json.load(open('$CB/cbk/run.json')); h = json.load(open('$CB/cbk/history.json'))
assert r['stopped_early'] and r['restored_best'] and r['epochs_run'] == r['best_epoch'] + 2 < 30, r
assert len(h['loss']) == r['epochs_run'] and min(h['lr']) < 0.02, h['lr']"
fi
expect_ok "conv: no early stopping keeps the last weights" "$FMNIST" train --data "$CB/small" --val 100 --epochs 2 \
    --no-test --out "$CB/nocbk" &&
    check "conv: best.safetensors written without callbacks" test -s "$CB/nocbk/best.safetensors"
expect_ok "conv: --val 0 writes no best.safetensors" "$FMNIST" train --data "$CB/small" --val 0 --epochs 1 \
    --no-test --out "$CB/noval" &&
    check "conv: no best.safetensors without validation" test ! -e "$CB/noval/best.safetensors"

# Weight averaging: the rate is held over the averaged epochs, the printed line gives the mean
# weights' validation figures beside the last epoch's, run.json records them, and the saved
# model is the averaged one (evaluate on the validation images gives those figures back).
if expect_ok "conv: --swa" "$FMNIST" train --data "$CB/small" --val 100 --epochs 3 --batch 50 \
    --model "conv:4:3:same,bn,relu,maxpool:2,dense:10" --optimizer sgd --lr 0.05 --momentum 0.9 \
    --schedule cosine --swa 2 --swa-lr 0.01 --no-test --out "$CB/swa"; then
    check "conv: training line names the averaging" grep -q '^Training: sgd lr 0.05 momentum 0.9, cosine schedule, weights averaged over the last 2 epochs at lr 0.01,' <<<"$OUT_TEXT"
    check "conv: the averaged epochs hold the rate" grep -qE '^Epoch 3/3 .* - lr: 0.01$' <<<"$OUT_TEXT"
    check "conv: averaging line" grep -qE "^Averaged the weights of epochs 2-3 and recomputed batch norm's statistics: val_loss: [0-9.]+ - val_accuracy: [0-9.]+ \(epoch 3's own: [0-9.]+ - [0-9.]+\)$" <<<"$OUT_TEXT"
    check "conv: run.json records the averaging" python3 -c "
import json; r = json.load(open('$CB/swa/run.json')); h = json.load(open('$CB/swa/history.json'))
assert r['swa'] == 2 and r['swa_lr'] == 0.01 and r['swa_first_epoch'] == 2, r
assert 0 < r['swa_val_accuracy'] <= 1 and r['swa_val_loss'] > 0, r
assert all(abs(x - 0.01) < 1e-9 for x in h['lr'][1:]) and h['lr'][0] > 0.011, h['lr']"
    # The first 100 images of the training file are the validation split.
    mkdir -p "$CB/swa-val"
    "$FIXTURES" subset "$CB/small" "$CB/swa-val" 100 100 || fail "conv: swa validation subset" "fixtures subset failed"
    expect_ok "conv: evaluate the averaged model" "$FMNIST" evaluate "$CB/swa/model.safetensors" \
        --data "$CB/swa-val" --split train --json &&
        check "conv: the saved model is the averaged one" python3 -c "
import json, sys; r = json.load(open('$CB/swa/run.json')); e = json.loads(sys.argv[1])
assert e['accuracy'] == r['swa_val_accuracy'] and abs(e['loss'] - r['swa_val_loss']) < 1e-12, (e, r)" "$OUT_TEXT"
fi

# Mixed precision: the training line and run.json say so, the run learns, and evaluating the
# saved (float) model on the same images gives the run's own test figures back.
if expect_ok "conv: --precision bf16" "$FMNIST" train --data "$CB/small" --val 100 --epochs 2 --batch 50 \
    --model "conv:8:3:same,relu,conv:8:3:same,bn,relu,maxpool:2,dense:10" --precision bf16 --json \
    --out "$CB/bf16"; then
    check "conv: bf16 run.json and figures" python3 -c "
import json, sys; r = json.load(open('$CB/bf16/run.json')); o = json.loads(sys.argv[1])
assert r['precision'] == 'bf16', r
assert o['test']['accuracy'] > 0.3, o" "$OUT_TEXT"
    expect_ok "conv: evaluate a bf16-trained model" "$FMNIST" evaluate "$CB/bf16/model.safetensors" \
        --data "$CB/small" --json &&
        check "conv: its evaluation is the run's test figure" python3 -c "
import json, sys; r = json.load(open('$CB/bf16/run.json')); e = json.loads(sys.argv[1])
assert e['accuracy'] == r['test']['accuracy'], (e, r['test'])" "$OUT_TEXT"
fi
if expect_ok "conv: --precision bf16 training line" "$FMNIST" train --data "$CB/small" --val 100 --epochs 1 \
    --model "conv:8:3:same,relu,conv:8:3:same,relu,gap,dense:10" --precision bf16 --no-test --no-report --out "$CB/bf16-line"; then
    check "conv: training line names the precision" grep -q '^Training: adam lr 0.001, bf16 products, batch 32' <<<"$OUT_TEXT"
fi

# Presets bring their training settings and flags override them.
mkdir -p "$CB/tiny"
"$FIXTURES" subset "$DATA" "$CB/tiny" 150 50 || fail "conv presets setup" "fixtures subset failed"
if expect_ok "conv: cnn-best preset, 1 epoch" "$FMNIST" train --data "$CB/tiny" --val 50 --model cnn-best \
    --epochs 1 --out "$CB/best" --json; then
    check "conv: cnn-best brings its settings" python3 -c "
import json, sys; r = json.loads(sys.argv[1])
assert r['optimizer'] == 'sgd' and r['nesterov'] and r['momentum'] == 0.9 and r['lr'] == 0.1, r
assert r['schedule'] == 'onecycle' and r['weight_decay'] == 0.0005 and r['label_smoothing'] == 0.1, r
assert r['augment'] == 'shift=2,flip,erase=0.25' and r['tta'] == 'flip' and r['batch'] == 128, r
assert r['epochs'] == 1 and r['params'] == 473514, r" "$OUT_TEXT"
fi
if expect_ok "conv: cnn preset with flags over its settings" "$FMNIST" train --data "$CB/tiny" --val 50 --model cnn \
    --epochs 1 --batch 16 --augment none --optimizer adamw --tta --out "$CB/cnnflags"; then
    check "conv: flags override the cnn preset" grep -q '^Training: adamw lr 0.001, cosine schedule, weight decay 0.01, test-time flips, batch 16, 1 epochs' <<<"$OUT_TEXT"
fi

# ============================================================ model files with conv and batch norm
expect_ok "conv: train a tiny conv model with batch norm" \
    "${CB_TRAIN[@]}" --model "conv:4:3:same,bn,relu,maxpool:2,dropout:0.25,dense:10" --out "$CB/m"
CB_MODEL=$CB/m/model.safetensors
# cb_st_edit IN OUT WHAT: rewrites one thing in a safetensors file's header or data.
cb_st_edit() {
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, what = sys.argv[1:4]
blob = open(src, "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
head, data = json.loads(blob[8:8 + n]), bytearray(blob[8 + n:])
if what == "conv-shape":
    head["layers.0.weight"]["shape"] = [4, 1, 9]
elif what == "nbt-dtype":
    head["layers.1.num_batches_tracked"]["dtype"] = "F32"
elif what == "no-running-var":
    del head["layers.1.running_var"]
elif what == "negative-var":
    b = head["layers.1.running_var"]["data_offsets"][0]
    data[b:b + 4] = struct.pack("<f", -1.0)
text = json.dumps(head).encode()
text += b" " * (-len(text) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
PY
}
cb_file_cases=(
    'conv-shape|tensor layers\.0\.weight has shape \[4,1,9\], the spec needs \[4, 1, 3, 3\]'
    'nbt-dtype|tensor layers\.1\.num_batches_tracked has dtype F32, expected I64'
    'no-running-var|tensor layers\.1\.running_var is missing'
    'negative-var|tensor layers\.1\.running_var holds a negative variance at index 0'
)
for cb_c in "${cb_file_cases[@]}"; do
    cb_what=${cb_c%%|*} cb_regex=${cb_c#*|}
    cb_st_edit "$CB_MODEL" "$CB/$cb_what.safetensors" "$cb_what"
    expect_fail "conv model file: $cb_what (evaluate)" "^fmnist evaluate: .*$cb_what\.safetensors: $cb_regex" \
        "$FMNIST" evaluate "$CB/$cb_what.safetensors" --data "$CB/small"
done

# The model files of the first release (MLPs, format_version 1) still load.
expect_ok "conv: a first-release MLP file still loads" "$FMNIST" summary fuzz/corpus/model/tiny-mlp &&
    check "conv: first-release MLP summary" grep -q 'Total params: 38' <<<"$OUT_TEXT"
