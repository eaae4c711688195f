#!/usr/bin/python3
"""PyTorch reference for the fmnist-small comparison: the same recipe, trained in PyTorch.

It answers one question: does selfsup's k-NN gain over the random-initialisation row match what
PyTorch gets from the same model, data, augmentations, objective and budget? Every setting is
read from the preset (configs/fmnist-small.toml by default), and the pieces mirror selfsup's:

- data: the first data.train_limit training images of Debian's Fashion-MNIST, the first
  data.eval_limit test images held out; Normalize(0.2860, 0.3530);
- augmentations (torchvision, PIL path): RandomResizedCrop(28, scale=(0.7, 1)),
  RandomHorizontalFlip, ColorJitter(0.4, 0.4) at p = 0.8 (the "fmnist" preset);
- model: scripts/bench_step.py's mirror of models/resnet.cpp + models/head.cpp;
- objective: InfoNCE (NT-Xent) at [loss.infonce] temperature;
- SGD with momentum and weight decay on conv/linear weights only, lr x batch / 256 (selfsup's
  optim.scale_lr), linear warmup then cosine decay to 0, per step;
- k-NN: cosine similarity, k = 200, temperature 0.1 weighted votes, bank = the un-augmented
  training images, batch norm in evaluation mode, backbone features.

  /usr/bin/python3 scripts/reference_fmnist.py [--config configs/fmnist-small.toml] [--epochs 2]
"""
import argparse
import gzip
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_step  # noqa: E402


def read_idx(path):
    import numpy as np

    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_toml(path):
    try:
        import tomllib

        with open(path, "rb") as f:
            return tomllib.load(f)
    except ImportError:
        import toml

        with open(path) as f:
            return toml.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/fmnist-small.toml")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=float, default=None, help="override optim.epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a preset value, e.g. --set optim.lr=0.1 (TOML syntax)")
    ap.add_argument("--crop-lo", type=float, default=0.7, help="RandomResizedCrop scale low end")
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms as T

    cfg = load_toml(args.config)
    for item in args.set:
        key, _, value = item.partition("=")
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            node = node.setdefault(part, {})
        try:
            node[leaf] = int(value)
        except ValueError:
            try:
                node[leaf] = float(value)
            except ValueError:
                node[leaf] = {"true": True, "false": False}.get(value, value.strip('"'))
    data, model_cfg, optim = cfg["data"], cfg["model"], cfg["optim"]
    tau = float(cfg.get("loss", {}).get("infonce", {}).get("temperature", 0.5))
    epochs = args.epochs if args.epochs is not None else float(optim["epochs"])
    batch, K = int(data["batch_size"]), int(data.get("views", 2))
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    xtr = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    ytr = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    yte = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    ntr, nte = int(data.get("train_limit", 0)) or len(xtr), int(data.get("eval_limit", 0)) or len(xte)
    xtr, ytr, xte, yte = xtr[:ntr], ytr[:ntr], xte[:nte], yte[:nte]
    mean, std = 0.2860, 0.3530

    aug = T.Compose([
        T.RandomResizedCrop(28, scale=(args.crop_lo, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4)], p=0.8),
        T.ToTensor(),
        T.Normalize((mean,), (std,)),
    ])

    class Views(torch.utils.data.Dataset):
        def __len__(self):
            return len(xtr)

        def __getitem__(self, i):
            img = Image.fromarray(xtr[i], mode="L")
            return torch.stack([aug(img) for _ in range(K)])

    loader = torch.utils.data.DataLoader(Views(), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=1, persistent_workers=True)

    ns = argparse.Namespace(model=model_cfg["encoder"], channels=1,
                            head_hidden=int(model_cfg.get("head_hidden", 512)),
                            head_out=int(model_cfg.get("head_out", 128)),
                            head_bn=bool(model_cfg.get("head_bn", True)))
    model = bench_step.build(ns)
    stem_stride = int(model_cfg.get("stem_stride", 1))
    model.encoder.conv1.stride = (stem_stride, stem_stride)  # models/resnet.cpp's stem_stride

    def features(xs):
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(xs), 512):
                x = torch.from_numpy(xs[i:i + 512].astype(np.float32) / 255.0)[:, None]
                out.append(F.normalize(model.encoder((x - mean) / std), dim=1))
        model.train()
        return torch.cat(out)

    def knn(k=200, t=0.1, classes=10):
        nb = int(cfg.get("eval", {}).get("bank_limit", 0)) or len(xtr)
        bank, query = features(xtr[:nb]), features(xte)
        sim = query @ bank.t()
        w, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(query), classes)
        votes.scatter_add_(1, torch.from_numpy(ytr[:nb])[idx], (w / t).exp())
        return 100.0 * (votes.argmax(1).numpy() == yte).mean()

    print("random init: k-NN top-1 %.2f" % knn(), flush=True)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": float(optim["weight_decay"])},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.0, momentum=float(optim["momentum"]))
    steps_per_epoch = len(loader)
    total = int(round(epochs * steps_per_epoch))
    warm = int(round(float(optim.get("warmup_epochs", 0)) * steps_per_epoch))
    base = float(optim["lr"])
    if optim.get("scale_lr", True):  # selfsup's optim.scale_lr: lr x batch / 256
        base *= batch / 256.0

    def lr_at(s):
        if s < warm:
            return base * (s + 1) / warm
        return 0.5 * base * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))

    step, t0 = 0, time.time()
    while step < total:
        for views in loader:
            if step >= total:
                break
            x = views.transpose(0, 1).reshape(-1, 1, 28, 28)  # view-major rows
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss, _ = bench_step.infonce(model(x), K, tau, False)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 20 == 0 or step == total:
                el = time.time() - t0
                print("step %d/%d loss %.4f lr %.4f %.0f views/s" %
                      (step, total, loss.item(), lr_at(step - 1), step * batch * K / el), flush=True)
        print("epoch done: k-NN top-1 %.2f (%.0f s)" % (knn(), time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
