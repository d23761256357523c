# 50-end-to-end.sh — train, save, evaluate and predict on the real Fashion-MNIST, and check that
# every command agrees with the others. With FMNIST_TEST_FAST=1 (sanitizer builds) it uses a
# 3,000/1,000-image subset; otherwise the full set, plus the accuracy bars of the notebooks.

if [ -n "${FMNIST_TEST_FAST:-}" ]; then
    mkdir -p "$T/e2e-data" && $FIXTURES subset "$DATA" "$T/e2e-data" 3000 1000 || fail "e2e subset" "fixtures failed"
    E2E_DATA=$T/e2e-data
    E2E_VAL=500
else
    E2E_DATA=$DATA
    E2E_VAL=5000
fi
E2E=$T/e2e
mkdir -p "$E2E"

# One epoch: the epoch line, the files, and figures that evaluate/predict must reproduce.
if expect_ok "e2e train 1 epoch" $FMNIST train --data "$E2E_DATA" --epochs 1 --val $E2E_VAL --out "$E2E/run1"; then
    check "e2e epoch line printed" grep -qE '^Epoch 1/1 - [0-9.]+s - loss: [0-9.]+ - accuracy: [0-9.]+ - val_loss: [0-9.]+ - val_accuracy: [0-9.]+$' <<<"$OUT_TEXT"
    check "e2e test line printed" grep -qE '^Test: loss: [0-9.]+ - accuracy: [0-9.]+' <<<"$OUT_TEXT"
    check "e2e no progress bar when stdout is not a terminal" bash -c '! grep -q ETA <<<"$1"' _ "$OUT_TEXT"
fi

# On a terminal (script(1) gives it one) the epoch shows a progress bar with an ETA; --name
# puts the run in runs/NAME.
if command -v script >/dev/null; then
    (cd "$E2E" && script -qec "$FMNIST train --data $E2E_DATA --epochs 1 --val $E2E_VAL --name tty --no-test" /dev/null) >"$E2E/tty.txt" 2>&1
    check "e2e progress bar with ETA on a terminal" grep -qE '\[=*>?\.*\] ETA +[0-9.]+s' "$E2E/tty.txt"
    check "e2e --name writes runs/NAME" test -s "$E2E/runs/tty/model.safetensors"
fi
for f in model.safetensors history.csv history.json run.json; do
    check "e2e wrote $f" test -s "$E2E/run1/$f"
done
check "e2e history.csv has header and one epoch" bash -c "[ \$(wc -l <'$E2E/run1/history.csv') -eq 2 ] && head -1 '$E2E/run1/history.csv' | grep -q '^epoch,loss,accuracy,val_loss,val_accuracy,seconds,lr$'"
check "e2e history.json is Keras-style" python3 -c "
import json; h = json.load(open('$E2E/run1/history.json'))
assert all(len(h[k]) == 1 for k in ('loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr')), h"

if expect_ok "e2e evaluate --json" $FMNIST evaluate "$E2E/run1/model.safetensors" --data "$E2E_DATA" --json; then
    EVAL_JSON=$OUT_TEXT
    check "e2e evaluate agrees with train's test figures" python3 -c "
import json, sys
ev = json.loads(sys.argv[1]); run = json.load(open('$E2E/run1/run.json'))
assert ev['accuracy'] == run['test']['accuracy'], (ev['accuracy'], run['test']['accuracy'])
assert abs(ev['loss'] - run['test']['loss']) < 1e-12, (ev['loss'], run['test']['loss'])
pc = ev['per_class']
assert len(pc) == 10 and sum(c['n'] for c in pc) == ev['n']
assert abs(sum(c['accuracy'] * c['n'] for c in pc) / ev['n'] - ev['accuracy']) < 1e-9
assert pc[9]['class'] == 'Ankle boot'" "$EVAL_JSON"
fi

if expect_ok "e2e predict --all --csv" $FMNIST predict "$E2E/run1/model.safetensors" --data "$E2E_DATA" --all --csv "$E2E/pred.csv"; then
    check "e2e predictions agree with evaluate" python3 -c "
import csv, json, sys
ev = json.loads(sys.argv[1])
rows = list(csv.DictReader(open('$E2E/pred.csv')))
assert len(rows) == ev['n'], len(rows)
right = sum(r['label'] == r['predicted'] for r in rows)
assert right / len(rows) == ev['accuracy'], (right, ev['accuracy'])
for r in rows[:50]:
    p = [float(r['p%d' % k]) for k in range(10)]
    assert abs(sum(p) - 1) < 1e-5 and max(range(10), key=p.__getitem__) == int(r['predicted'])
assert rows[0]['label_name'] == 'Ankle boot'" "$EVAL_JSON"
fi

if expect_ok "e2e predict --index 0 --json" $FMNIST predict "$E2E/run1/model.safetensors" --data "$E2E_DATA" --json; then
    check "e2e first test image is an Ankle boot, predicted as in the CSV" python3 -c "
import csv, json, sys
p = json.loads(sys.argv[1]); row = next(csv.DictReader(open('$E2E/pred.csv')))
assert p['label_name'] == 'Ankle boot' and p['label'] == 9, p
assert p['predicted'] == int(row['predicted'])
assert abs(sum(p['probabilities']) - 1) < 1e-5
assert all(abs(a - float(row['p%d' % k])) < 1e-6 for k, a in enumerate(p['probabilities']))" "$OUT_TEXT"
fi
expect_ok "e2e predict --index 0 text" $FMNIST predict "$E2E/run1/model.safetensors" --data "$E2E_DATA" --show &&
    check "e2e predict text names both labels" grep -qE '^Predicted: .* True: Ankle boot' <<<"$OUT_TEXT"

# Reproducibility: the same seed gives a bit-identical model, whatever the thread count.
expect_ok "e2e retrain same seed, 1 thread" $FMNIST train --data "$E2E_DATA" --epochs 1 --val $E2E_VAL --threads 1 --out "$E2E/run2" --quiet --no-test &&
    check "e2e same seed -> identical model (2 threads vs 1)" cmp -s "$E2E/run1/model.safetensors" "$E2E/run2/model.safetensors"
expect_ok "e2e retrain other seed" $FMNIST train --data "$E2E_DATA" --epochs 1 --val $E2E_VAL --seed 7 --out "$E2E/run3" --quiet --no-test &&
    check "e2e other seed -> different model" bash -c "! cmp -s '$E2E/run1/model.safetensors' '$E2E/run3/model.safetensors'"

# Any H x W IDX set with other class names trains: 14x14 synthetic images, digits names.
mkdir -p "$E2E/other"
$FIXTURES images "$E2E/other/train-images-idx3-ubyte" 600 14 14 &&
    $FIXTURES labels "$E2E/other/train-labels-idx1-ubyte" 600 3 &&
    $FIXTURES images "$E2E/other/t10k-images-idx3-ubyte.gz" 100 14 14 &&
    $FIXTURES labels "$E2E/other/t10k-labels-idx1-ubyte.gz" 100 3
expect_ok "e2e 14x14 IDX set trains" $FMNIST train --data "$E2E/other" --classes digits --epochs 1 --val 100 --out "$E2E/other-run" --quiet &&
    expect_ok "e2e 14x14 model summary" $FMNIST summary "$E2E/other-run/model.safetensors" &&
    check "e2e 14x14 model takes 196 inputs" grep -q '(None, 196)' <<<"$OUT_TEXT"
expect_ok "e2e 14x14 model summary --json" $FMNIST summary "$E2E/other-run/model.safetensors" --json &&
    check "e2e summary --json: the table's rows (--classes digits: 10 outputs)" python3 -c "
import json, sys; s = json.loads(sys.argv[1])
assert s['input_shape'] == [None, 14, 14], s['input_shape']
assert [l['name'] for l in s['layers']] == ['flatten', 'layers.0', 'layers.1', 'layers.2'], s['layers']
assert s['layers'][0]['output_shape'] == [None, 196] and s['layers'][-1]['output_shape'] == [None, 10]
assert sum(l['params'] for l in s['layers']) == s['params'] == 196 * 128 + 128 + 128 * 10 + 10" "$OUT_TEXT"
expect_ok "e2e cnn-best summary --json" $FMNIST summary cnn-best --json &&
    check "e2e summary --json: cnn-best's blocks, shapes and counts" python3 -c "
import json, sys; s = json.loads(sys.argv[1]); L = s['layers']
adds = [(l['name'], l['adds'], l['output_shape']) for l in L if l['type'] == 'Add']
assert adds == [('layers.15', 'layers.9', [None, 64, 14, 14]), ('layers.26', 'layers.20', [None, 128, 7, 7])], adds
assert sum(l['params'] for l in L) == s['params'] == 473514, s['params']
assert sum(l['non_trainable'] for l in L) == s['non_trainable'] == 1280
assert L[0]['output_shape'] == [None, 32, 28, 28] and L[-1] == {'name': 'layers.29', 'type': 'Dense',
    'output_shape': [None, 10], 'params': 1290, 'non_trainable': 0}, L[-1]" "$OUT_TEXT"

# Standardised inputs are stored with the model and give the same figures after loading.
expect_ok "e2e standard scaling" $FMNIST train --data "$E2E_DATA" --scale standard --epochs 1 --val $E2E_VAL --out "$E2E/std" --json &&
    STD_TRAIN=$OUT_TEXT &&
    expect_ok "e2e standard scaling evaluate" $FMNIST evaluate "$E2E/std/model.safetensors" --data "$E2E_DATA" --json &&
    check "e2e standard scaling survives save/load" python3 -c "
import json, sys
a = json.loads(sys.argv[1]); b = json.loads(sys.argv[2])
assert a['scale'] == 'standard' and a['test']['accuracy'] == b['accuracy'], (a, b)" "$STD_TRAIN" "$OUT_TEXT"

# The notebooks' figures (slow: full training runs; skipped in fast mode).
if [ -z "${FMNIST_TEST_FAST:-}" ]; then
    expect_ok "e2e notebook set-up: mlp, adam, batch 32, 10 epochs, --val 0" $FMNIST train --val 0 --out "$E2E/nb" --json &&
        check "e2e notebook set-up test accuracy >= 88%" python3 -c "
import json, sys; a = json.loads(sys.argv[1])['test']['accuracy']; print('  test accuracy', a); assert a >= 0.88" "$OUT_TEXT"
    expect_ok "e2e default hold-out: --val 5000" $FMNIST train --out "$E2E/nbval" --json &&
        check "e2e default hold-out test accuracy >= 87.5%" python3 -c "
import json, sys; a = json.loads(sys.argv[1])['test']['accuracy']; print('  test accuracy', a); assert a >= 0.875" "$OUT_TEXT"
    expect_ok "e2e mlp300-100 sgd lr 0.01 30 epochs" $FMNIST train --model mlp300-100 --optimizer sgd --lr 0.01 --epochs 30 --out "$E2E/sgd" --json &&
        check "e2e mlp300-100 sgd: val >= 88.5%, test >= 87.5%" python3 -c "
import json, sys
t = json.loads(sys.argv[1])['test']['accuracy']; v = json.load(open('$E2E/sgd/history.json'))['val_accuracy'][-1]
print('  validation', v, 'test', t); assert v >= 0.885 and t >= 0.875" "$OUT_TEXT"
fi
