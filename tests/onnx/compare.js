// compare.js — runs an ONNX model exported by `fmnist export` in onnxruntime-node on the test set
// and compares every probability with the CSV from `fmnist predict MODEL --all --csv`.
//   node compare.js MODEL.onnx DATA_DIR PREDICTIONS.csv [TOLERANCE]
// Reads t10k-images-idx3-ubyte[.gz] itself (node's zlib), feeds pixel/255 as the export's input
// contract says, and prints one JSON line: {"n", "class_mismatches", "max_abs_diff", ...}. Exits 1
// when a class differs or a probability is further than TOLERANCE (default 1e-5) from fmnist's.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

function die(msg) {
  console.error(`compare.js: ${msg}`);
  process.exit(2);
}

// The IDX image file: magic 0x00000803, then N, H, W as big-endian uint32, then N*H*W bytes.
function readImages(dir) {
  let file = path.join(dir, 't10k-images-idx3-ubyte');
  let buf;
  if (fs.existsSync(file + '.gz')) buf = zlib.gunzipSync(fs.readFileSync(file + '.gz'));
  else if (fs.existsSync(file)) buf = fs.readFileSync(file);
  else die(`no ${file}[.gz]`);
  if (buf.length < 16 || buf.readUInt32BE(0) !== 0x803) die(`${file}: not an IDX image file`);
  const n = buf.readUInt32BE(4), h = buf.readUInt32BE(8), w = buf.readUInt32BE(12);
  if (buf.length !== 16 + n * h * w) die(`${file}: ${buf.length} bytes, header says ${16 + n * h * w}`);
  return {n, h, w, pixels: buf.subarray(16)};
}

// fmnist's CSV: index,label,predicted,label_name,predicted_name,confidence,p0..pK-1 (names quoted).
function readPredictions(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  const header = lines[0].split(',');
  const first = header.indexOf('p0');
  if (first < 0) die(`${file}: no p0 column`);
  const classes = header.length - first;
  return lines.slice(1).map((line) => {
    // Names are the only quoted fields and sit before the numbers: take the numbers from the end.
    const fields = line.split(',');
    const probs = fields.slice(fields.length - classes).map(Number);
    return {index: Number(fields[0]), predicted: Number(fields[2]), probs};
  });
}

function argmax(a, off, n) {
  let best = 0;
  for (let k = 1; k < n; k++) if (a[off + k] > a[off + best]) best = k;
  return best;
}

async function main() {
  const [modelPath, dataDir, csvPath, tolText] = process.argv.slice(2);
  if (!csvPath) die('usage: node compare.js MODEL.onnx DATA_DIR PREDICTIONS.csv [TOLERANCE]');
  const tol = tolText ? Number(tolText) : 1e-5;
  const images = readImages(dataDir);
  const expected = readPredictions(csvPath);
  if (expected.length !== images.n) die(`${csvPath} holds ${expected.length} rows, the test set ${images.n}`);

  const session = await ort.InferenceSession.create(modelPath);
  if (session.inputNames[0] !== 'input' || session.outputNames[0] !== 'probabilities') {
    die(`unexpected names: inputs ${session.inputNames}, outputs ${session.outputNames}`);
  }
  const D = images.h * images.w, batch = 1000;
  let mismatches = 0, maxDiff = 0, worst = -1, classes = 0;
  for (let start = 0; start < images.n; start += batch) {
    const B = Math.min(batch, images.n - start);
    const x = new Float32Array(B * D);
    for (let i = 0; i < B * D; i++) x[i] = images.pixels[start * D + i] / 255;
    const feeds = {input: new ort.Tensor('float32', x, [B, 1, images.h, images.w])};
    const out = (await session.run(feeds)).probabilities;
    classes = out.dims[1];
    if (out.dims[0] !== B || classes !== expected[0].probs.length) die(`output dims ${out.dims}`);
    for (let b = 0; b < B; b++) {
      const row = expected[start + b];
      if (argmax(out.data, b * classes, classes) !== row.predicted) mismatches++;
      for (let k = 0; k < classes; k++) {
        const d = Math.abs(out.data[b * classes + k] - row.probs[k]);
        if (d > maxDiff) maxDiff = d, worst = start + b;
      }
    }
  }
  const ok = mismatches === 0 && maxDiff <= tol;
  console.log(JSON.stringify({n: images.n, classes, class_mismatches: mismatches, max_abs_diff: maxDiff,
                              worst_image: worst, tolerance: tol, ok}));
  process.exit(ok ? 0 : 1);
}

main().catch((e) => die(e && e.message ? e.message : String(e)));
