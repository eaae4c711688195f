#!/usr/bin/python3
"""Loader speed against torchvision: the simclr-cifar pipeline, two 32x32 views per image.

    /usr/bin/python3 scripts/bench_loader.py [--file data_batch_1.bin] [--images 2000]
                                             [--bench build/bench_loader]

Runs bench/bench_loader (C++, one thread) and torchvision 0.14 with one thread on the same images,
and prints both images/s figures and their ratio. torchvision is timed on two input paths, float
tensors and PIL images; the faster of the two is the baseline. The transforms are the same as the
C++ preset: RandomResizedCrop(32, scale=(0.08, 1)), RandomHorizontalFlip(0.5),
RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(0.2), Normalize(CIFAR-10).
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def read_cifar(path, limit):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)[:limit]
    return raw[:, 1:].reshape(-1, 3, 32, 32)  # planar CHW, as stored


def augment_ops():
    return [T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(0.5),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2)]


def time_views(images, transform, views=2, repeats=2):
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for img in images:
            for _ in range(views):
                transform(img)
        best = max(best, len(images) / (time.perf_counter() - t0))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default="/work/shared/data/cifar10/data_batch_1.bin")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench_loader"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    out = subprocess.run([args.bench, args.file, "--workers", "1"], check=True,
                         capture_output=True, text=True).stdout
    print(out.strip())
    ours = float(re.search(r"per-thread images/s: ([0-9.]+)", out).group(1))

    chw = read_cifar(args.file, args.images)
    # Tensor path: uint8 -> float in [0, 1] (x / 255) is part of the pipeline, as in the C++.
    tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in chw]
    tensor_tf = T.Compose([T.ConvertImageDtype(torch.float32)] + augment_ops() +
                          [T.Normalize(MEAN, STD)])
    tv_tensor = time_views(tensors, tensor_tf)
    # PIL path: HWC uint8 images, ToTensor after the colour ops.
    pils = [Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0))) for x in chw]
    pil_tf = T.Compose(augment_ops() + [T.ToTensor(), T.Normalize(MEAN, STD)])
    tv_pil = time_views(pils, pil_tf)
    base = max(tv_tensor, tv_pil)

    print(f"torchvision {torchvision.__version__}, 1 thread, {len(chw)} images x 2 views:")
    print(f"  tensor path: {tv_tensor:.0f} images/s")
    print(f"  PIL path:    {tv_pil:.0f} images/s")
    print(f"selfsup: {ours:.0f} images/s per thread; torchvision (faster path): {base:.0f} "
          f"images/s; ratio {ours / base:.1f}x (target >= 3x)")
    return 0 if ours >= 3 * base else 1


if __name__ == "__main__":
    sys.exit(main())
