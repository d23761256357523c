#!/usr/bin/python3
"""load_in_pytorch.py — loads an fmnist model.safetensors into PyTorch with nothing but numpy,
and classifies the Fashion-MNIST test set with it.

    /usr/bin/python3 examples/load_in_pytorch.py runs/demo/model.safetensors
    /usr/bin/python3 examples/load_in_pytorch.py MODEL --data DIR --compare predictions.csv

The file is plain safetensors: an 8-byte little-endian header length, a JSON header giving each
tensor's dtype, shape and byte range, then the raw little-endian float32 data. Tensors carry
PyTorch's names for a module whose `layers` is an nn.Sequential applied to the flattened image
(layers.0.weight is [128, 784]); __metadata__ holds the spec, the input shape, the scaling and
the class names. With --compare (a CSV from `fmnist predict MODEL --all --csv`) it checks that
PyTorch predicts the same class for every image and every probability within --tol.
(Debian: apt-get install python3-torch python3-numpy; run it with /usr/bin/python3.)
"""
import argparse
import csv
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn


def read_safetensors(path):
    """Returns ({name: float32 array}, metadata dict), checking what it relies on."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {entry['dtype']}, expected F32")
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
        tensors[name] = array.copy()  # frombuffer's array is read-only; torch wants to own it
    return tensors, meta


class FmnistNet(nn.Module):
    """The network an fmnist spec describes: flatten, then `layers`, one module per spec item."""

    def __init__(self, spec, height, width):
        super().__init__()
        modules, width_in = [], height * width
        for item in spec.split(","):
            if item.startswith("dense:"):
                units = int(item.split(":")[1])
                modules.append(nn.Linear(width_in, units))
                width_in = units
            else:
                modules.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                                "flatten": nn.Flatten}[item]())
        self.layers = nn.Sequential(*modules)

    def forward(self, x):  # x: [N, 1, H, W] scaled inputs -> logits [N, classes]
        return self.layers(torch.flatten(x, 1))


def load_model(path):
    tensors, meta = read_safetensors(path)
    _, height, width = (int(v) for v in meta["input_shape"].split(","))
    model = FmnistNet(meta["spec"], height, width)
    # strict=True: every parameter of the module is in the file and every tensor in the file is used.
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return model.eval(), meta


def scale(pixels, meta):
    """uint8 [N, H, W] -> float32 [N, 1, H, W]: (pixel/255 - mean) / std, in float32 as fmnist does."""
    mean, std = np.float32(meta["scaling_mean"]), np.float32(meta["scaling_std"])
    x = (pixels.astype(np.float32) / np.float32(255.0) - mean) / std
    return torch.from_numpy(x[:, None, :, :])


def read_idx_images(data_dir, name="t10k-images-idx3-ubyte"):
    path = os.path.join(data_dir, name)
    opener = (gzip.open, path + ".gz") if os.path.exists(path + ".gz") else (open, path)
    with opener[0](opener[1], "rb") as f:
        blob = f.read()
    magic, n, h, w = struct.unpack(">IIII", blob[:16])
    if magic != 0x803 or len(blob) != 16 + n * h * w:
        raise ValueError(f"{opener[1]}: not an IDX image file")
    return np.frombuffer(blob[16:], dtype=np.uint8).reshape(n, h, w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", default=os.environ.get("FMNIST_DATA", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--compare", help="CSV from `fmnist predict MODEL --all --csv FILE`")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    model, meta = load_model(args.model)
    classes = json.loads(meta["classes"])
    images = read_idx_images(args.data)
    with torch.no_grad():
        probs = torch.softmax(model(scale(images, meta)), dim=1).numpy()
    predicted = probs.argmax(axis=1)
    print(f"{args.model}: {meta['spec']}, scaling {meta['scaling']}; first test image: "
          f"{classes[predicted[0]]} ({100 * probs[0, predicted[0]]:.1f}%)")
    if not args.compare:
        return 0
    with open(args.compare, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(images):
        print(f"{args.compare} holds {len(rows)} rows, the test set {len(images)} images")
        return 1
    theirs = np.array([[float(r[f"p{k}"]) for k in range(len(classes))] for r in rows])
    their_class = np.array([int(r["predicted"]) for r in rows])
    mismatches = int((their_class != predicted).sum())
    max_diff = float(np.abs(theirs - probs).max())
    ok = len(rows) == len(images) and mismatches == 0 and max_diff <= args.tol
    print(json.dumps({"n": len(images), "class_mismatches": mismatches, "max_abs_diff": max_diff,
                      "tolerance": args.tol, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
