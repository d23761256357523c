#!/usr/bin/python3
"""load_in_pytorch.py — loads an fmnist model.safetensors into PyTorch with nothing but numpy,
and classifies the Fashion-MNIST test set with it.

    /usr/bin/python3 examples/load_in_pytorch.py runs/demo/model.safetensors
    /usr/bin/python3 examples/load_in_pytorch.py MODEL --data DIR --compare predictions.csv

The file is plain safetensors: an 8-byte little-endian header length, a JSON header giving each
tensor's dtype, shape and byte range, then the raw little-endian data (float32; batch norm's
num_batches_tracked is int64). Tensors carry PyTorch's names for a module whose `layers` is a
list of modules applied in turn to the [N, 1, H, W] image, one per item of the canonical spec
(and one for each residual block's close, which adds the block's input to its output):
dense weights are [out, in] (layers.0.weight is [128, 784]), conv weights [OC, C, KH, KW], batch
norm has weight, bias, running_mean, running_var and num_batches_tracked. __metadata__ holds
the spec, the input shape, the scaling, the class names and test-time flips ("tta"). With --compare (a CSV from `fmnist predict MODEL --all --csv`) it checks that
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


DTYPES = {"F32": "<f4", "I64": "<i8"}  # float32 tensors; batch norm's num_batches_tracked


def read_safetensors(path):
    """Returns ({name: array}, metadata dict), checking what it relies on."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] not in DTYPES:
            raise ValueError(f"{path}: {name} is {entry['dtype']}, expected F32 or I64")
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = array.copy()  # frombuffer's array is read-only; torch wants to own it
    return tensors, meta


class FlatLinear(nn.Linear):
    """nn.Linear that flattens an image input first, as fmnist's dense layer does (the first
    layer of an MLP takes the [N, 1, H, W] image; one after global average pooling [N, C, 1, 1])."""

    def forward(self, x):
        return super().forward(torch.flatten(x, 1))


class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d with fmnist's "same" padding, which may be one row or column larger after the
    input than before it (an even kernel, or a stride): PyTorch's padding="same" is stride 1
    only, so the padding is explicit. Same parameters and names as nn.Conv2d."""

    def __init__(self, c, oc, k, stride, pads):  # pads: (left, right, top, bottom), F.pad's order
        super().__init__(c, oc, k, stride=stride, padding=0)
        self.pads = pads

    def forward(self, x):
        return super().forward(nn.functional.pad(x, self.pads))


def conv_geometry(size, k, stride, same):
    """(output size, padding before, padding after) along one side, as fmnist computes them."""
    if not same:
        return (size - k) // stride + 1, 0, 0
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


class Add(nn.Module):
    """The ")" of a residual block res(...): the block's output plus the output of layer `source`,
    the block's input (-1: the network's input)."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def forward(self, x, outputs, net_input):
        return x + (net_input if self.source < 0 else outputs[self.source])


class FmnistNet(nn.Module):
    """The network an fmnist spec describes, one module of `layers` per item of the canonical spec
    (the one in the file's metadata, every setting spelt out), so the state_dict names match; a
    residual block's ")" is a module of its own (Add), as in fmnist."""

    def __init__(self, spec, height, width):
        super().__init__()
        modules = []
        shape = (1, height, width)  # (C, H, W) of one sample; (F,) once flat
        block_source = None
        for item in spec.split(","):
            if item.startswith("res("):
                block_source, item = len(modules) - 1, item[4:]
            closes = item.endswith(")")
            item = item.rstrip(")")
            kind, *args = item.split(":")
            features = int(np.prod(shape))
            if kind == "dense":
                modules.append(FlatLinear(features, int(args[0])))
                shape = (int(args[0]),)
            elif kind == "conv":
                (c, h, w), oc, k = shape, int(args[0]), int(args[1])
                stride = int(args[3][1:]) if len(args) > 3 else 1
                oh, top, bottom = conv_geometry(h, k, stride, args[2] == "same")
                ow, left, right = conv_geometry(w, k, stride, args[2] == "same")
                modules.append(PaddedConv2d(c, oc, k, stride, (left, right, top, bottom)))
                shape = (oc, oh, ow)
            elif kind in ("maxpool", "avgpool"):
                (c, h, w), k = shape, int(args[0])
                stride = int(args[1]) if len(args) > 1 else k
                pool = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
                modules.append(pool(k, stride))
                shape = (c, (h - k) // stride + 1, (w - k) // stride + 1)
            elif kind == "gap":  # [N, C, H, W] -> [N, C, 1, 1], as ONNX's GlobalAveragePool
                modules.append(nn.AdaptiveAvgPool2d(1))
                shape = (shape[0], 1, 1)
            elif kind == "bn":  # eps 1e-5 and momentum 0.1 are fmnist's and PyTorch's defaults
                modules.append(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))
            elif kind == "dropout":
                modules.append(nn.Dropout(float(args[0])))
            elif kind == "leakyrelu":
                modules.append(nn.LeakyReLU(float(args[0])))
            elif kind == "flatten":
                modules.append(nn.Flatten())
                shape = (features,)
            else:
                modules.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[kind]())
            if closes:  # the block keeps its input's shape (fmnist checked), so shape stands
                modules.append(Add(block_source))
        self.layers = nn.ModuleList(modules)

    def forward(self, x):  # x: [N, 1, H, W] scaled inputs -> logits [N, classes]
        net_input, outputs = x, []
        for module in self.layers:
            x = module(x, outputs, net_input) if isinstance(module, Add) else module(x)
            outputs.append(x)
        return torch.flatten(x, 1)


def load_model(path):
    tensors, meta = read_safetensors(path)
    _, height, width = (int(v) for v in meta["input_shape"].split(","))
    model = FmnistNet(meta["spec"], height, width)
    # strict=True: every parameter and buffer of the module (batch norm's running statistics and
    # num_batches_tracked too) is in the file, and every tensor in the file is used.
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return model.eval(), meta


def predict(model, x, meta):
    """Class probabilities; with test-time flips ("tta": "flip" in the metadata, e.g. cnn-best),
    the mean of the image's and its mirror image's, as fmnist computes them."""
    probs = torch.softmax(model(x), dim=1)
    if meta.get("tta") == "flip":
        probs = 0.5 * (probs + torch.softmax(model(torch.flip(x, dims=[3])), dim=1))
    return probs


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
        x = scale(images, meta)
        probs = torch.cat([predict(model, x[i:i + 1000], meta) for i in range(0, len(x), 1000)]).numpy()
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
