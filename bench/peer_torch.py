#!/usr/bin/env python3
# peer_torch.py — PyTorch's side of the benchmark: the same measurements as bench.c, printed as
# the same JSON keys. Debian's python3-torch; run it with OPENBLAS_CORETYPE=SkylakeX (run.sh does)
# so that its OpenBLAS uses its AVX-512 kernels rather than the generic ones it picks on this CPU.
#   peer_torch.py train PRESET | infer [PRESET] | peak [N]  [--data DIR] [--threads N]
#                 [--epochs N] [--reps N] [--images N]
# The model is nn.Sequential(Flatten, Linear, ReLU, ..., Linear) with PyTorch's default init
# (for cnn: Conv2d(1,32,3) ReLU Conv2d(32,64,3) ReLU MaxPool2d(2) Dropout(.25) Flatten
# Linear(9216,128) ReLU Dropout(.5) Linear(128,10), on 1x28x28 inputs),
# CrossEntropyLoss on logits, Adam(lr 1e-3, betas 0.9/0.999, eps 1e-7 as Keras), batch 32, all
# 60,000 training images shuffled every epoch, inputs x/255 converted to float once, up front:
# PyTorch at its best, not a copy of fmnist's uint8 path.
import argparse
import gzip
import json
import os
import resource
import statistics
import time

import numpy as np
import torch
from torch import nn

PRESETS = {"mlp": [128], "mlp64": [64], "mlp256": [256], "mlp2": [128, 128], "mlp300-100": [300, 100]}


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load(data_dir, split):
    stem = "train" if split == "train" else "t10k"
    def find(kind):
        for name in (f"{stem}-{kind}-ubyte.gz", f"{stem}-{kind}-ubyte"):
            if os.path.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        raise SystemExit(f"peer_torch: no {stem}-{kind}-ubyte[.gz] in {data_dir}")
    images = read_idx(find("images-idx3"))
    labels = read_idx(find("labels-idx1"))
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def make_model(preset, inputs=784, classes=10):
    if preset == "cnn":
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3), nn.ReLU(),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                             nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(128, classes))
    layers, width = [nn.Flatten()], inputs
    for units in PRESETS[preset]:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def train_flops_per_image(preset, inputs=784, classes=10):
    if preset == "cnn":  # multiply-adds per pass, as bench.c counts them; the first layer has no dinp
        macs = [32 * 1 * 9 * 26 * 26, 64 * 32 * 9 * 24 * 24, 9216 * 128, 128 * classes]
        return sum(2.0 * m * (2 if k == 0 else 3) for k, m in enumerate(macs))
    widths = [inputs] + PRESETS[preset] + [classes]
    flops = 0.0
    for k in range(len(widths) - 1):
        io = widths[k] * widths[k + 1]
        flops += 2.0 * io * (2 if k == 0 else 3)  # forward, dW, and dinp after the first layer
    return flops


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_train(o, preset):
    x, y = load(o.data, "train")
    full = len(x)
    if 0 < o.images < full:  # a slow network is timed on fewer images, reported per full epoch
        x, y = x[: o.images], y[: o.images]
    torch.manual_seed(1)
    model = make_model(preset)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    n, batch = len(x), 32
    seconds, cpu = [], []
    for epoch in range(o.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        order = torch.randperm(n)
        total, right = 0.0, 0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            right += (logits.argmax(1) == yb).sum().item()
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    scale = full / n
    s = statistics.median(seconds[1:]) * scale  # epoch 1 warms up
    gflop = train_flops_per_image(preset) * full / 1e9
    print(json.dumps({"impl": "pytorch", "mode": "train", "preset": preset, "threads": torch.get_num_threads(),
                      "images": full, "images_timed": n, "epochs_timed": o.epochs, "epoch_s": round(s, 4),
                      "epoch_cpu_s": round(statistics.median(cpu[1:]) * scale, 4),
                      "images_per_s": round(full / s), "gflop_per_epoch": round(gflop, 3),
                      "gflops": round(gflop / s, 2), "last_loss": round(total / n, 4),
                      "last_accuracy": round(right / n, 4), "peak_rss_mib": round(peak_rss_mib(), 1),
                      "torch": torch.__version__}))


def bench_infer(o, preset):
    x, y = load(o.data, "train")
    xt, yt = load(o.data, "test")
    torch.manual_seed(1)
    model = make_model(preset)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(x))
    for start in range(0, len(x), 32):  # one epoch, as bench.c does
        idx = order[start : start + 32]
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    n = len(xt)
    one, batch, one_cpu, batch_cpu = [], [], [], []
    with torch.inference_mode():
        for r in range(o.reps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(n):
                probs = torch.softmax(model(xt[i : i + 1]), 1)
            t1, c1 = time.perf_counter(), time.process_time()
            preds = []
            for i in range(0, n, 1000):
                preds.append(torch.softmax(model(xt[i : i + 1000]), 1))
            t2, c2 = time.perf_counter(), time.process_time()
            if r > 0:  # pass 0 warms up
                one.append(t1 - t0)
                batch.append(t2 - t1)
                one_cpu.append(c1 - c0)
                batch_cpu.append(c2 - c1)
        acc = (torch.cat(preds).argmax(1) == yt).float().mean().item()
    s1, sb = statistics.median(one), statistics.median(batch)
    print(json.dumps({"impl": "pytorch", "mode": "infer", "preset": preset, "threads": torch.get_num_threads(),
                      "images": n, "batch1_images_per_s": round(n / s1), "batch1_us": round(1e6 * s1 / n, 2),
                      "batch1000_images_per_s": round(n / sb),
                      "batch1_cpu_images_per_s": round(n / statistics.median(one_cpu)),
                      "batch1000_cpu_images_per_s": round(n / statistics.median(batch_cpu)),
                      "accuracy": round(acc, 4),
                      "peak_rss_mib": round(peak_rss_mib(), 1)}))


def bench_peak(o, n):
    torch.manual_seed(1)
    a, b = torch.rand(n, n) - 0.5, torch.rand(n, n) - 0.5
    torch.matmul(a, b)
    times = []
    for _ in range(o.reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"impl": "pytorch", "mode": "peak", "n": n, "threads": torch.get_num_threads(),
                      "torch_gflops": round(2.0 * n ** 3 / statistics.median(times) / 1e9, 1)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "infer", "peak"])
    ap.add_argument("arg", nargs="?")
    ap.add_argument("--data", default=os.environ.get("FMNIST_DATA", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--images", type=int, default=0)
    o = ap.parse_args()
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    if o.mode == "train":
        bench_train(o, o.arg or "mlp")
    elif o.mode == "infer":
        bench_infer(o, o.arg or "mlp")
    else:
        bench_peak(o, int(o.arg or 2048))


if __name__ == "__main__":
    main()
