#!/usr/bin/python3
"""PyTorch reference for `selfsup bench`: one SSL training step, timed.

The step is the one apps/bench.cpp times: forward of the encoder + projection head on K*N views
[K*N, C, H, W] (random normal input held in memory), InfoNCE / NT-Xent (view-major rows), its
diagnostics (q_mean, pos_cos, neg_cos, align, unif, under no_grad as selfsup computes them),
backward, SGD (lr 0.1, momentum 0.9, weight decay 5e-4 on conv and linear weights only; BN
parameters and biases excluded).

The model mirrors models/resnet.cpp and models/head.cpp module by module (same state_dict
names): CIFAR stem (3x3 stride-1 conv, no bias, BN, ReLU, no max-pool), BasicBlock stages with
a 1x1 conv + BN shortcut where the stride or the width changes, global average pool, then
Linear(feat, hidden) [-> BN1d] -> ReLU -> Linear(hidden, out).

FLOPs follow selfsup's convention: forward = 2 x multiply-adds of the convs and linears
(BN, ReLU, pool, loss not counted), a step = 3 x forward.

Peak memory is the process's ru_maxrss (as selfsup reports it), so every memory format is run
in its own fresh process: with --memory-format both this script re-runs itself once per format
and reports both, marking the faster. The RSS after `import torch` and before the model is
built is reported too (baseline_rss_mib), since the interpreter and libtorch account for a few
hundred MiB that selfsup does not carry.

  /usr/bin/python3 scripts/bench_step.py --model resnet-tiny --batch 64 --json out.jsonl
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

MODELS = {
    "resnet18": ([2, 2, 2, 2], [64, 128, 256, 512]),
    "resnet34": ([3, 4, 6, 3], [64, 128, 256, 512]),
    "resnet-small": ([1, 1, 1, 1], [32, 64, 128, 256]),
    "resnet-tiny": ([1, 1, 1, 1], [16, 32, 64, 128]),
    "resnet-mini": ([1, 1, 1], [32, 64, 128]),
}


def rss_now_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def allocator_name():
    pre = os.environ.get("LD_PRELOAD", "")
    for lib in ("jemalloc", "tcmalloc", "mimalloc"):
        if lib in pre:
            return lib
    tun = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc" in tun:
        return "glibc-tuned(" + tun + ")"
    return "glibc-default"


def openblas_core():
    """The OpenBLAS kernel set in use ("Prescott" where OpenBLAS did not recognise the CPU)."""
    import ctypes

    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "n/a"


def load_config(path):
    """[model] encoder/head_hidden/head_out/head_bn, [loss] name, [loss.infonce] temperature."""
    try:
        import tomllib

        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except ImportError:
        import toml

        with open(path) as f:
            cfg = toml.load(f)
    model = cfg.get("model", {})
    loss = cfg.get("loss", {})
    out = {}
    for key in ("encoder", "stem_stride", "head_hidden", "head_out", "head_bn"):
        if key in model:
            out[key] = model[key]
    # The config's input: its dataset's images (as selfsup bench --config takes them).
    gray28 = cfg.get("data", {}).get("dataset") in ("fashion-mnist", "mnist")
    out["channels"], out["image_size"] = (1, 28) if gray28 else (3, 32)
    out["loss_name"] = loss.get("name", "infonce")
    inf = loss.get("infonce", {})
    if "temperature" in inf:
        out["temperature"] = float(inf["temperature"])
    return out


def build(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def init_conv(conv):
        # Kaiming normal, fan_out, ReLU gain (torchvision's ResNet and models/resnet.cpp)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            init_conv(self.conv1)
            init_conv(self.conv2)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
                )
                init_conv(self.shortcut[0])

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            skip = self.shortcut(x) if self.shortcut is not None else x
            return F.relu(h + skip)

    class ResNet(nn.Module):
        def __init__(self, in_channels, depths, widths, stem_stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False)
            init_conv(self.conv1)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU()
            ch = widths[0]
            for i, (d, w) in enumerate(zip(depths, widths)):
                blocks = []
                for j in range(d):
                    blocks.append(BasicBlock(ch, w, 2 if (i > 0 and j == 0) else 1))
                    ch = w
                self.add_module("layer%d" % (i + 1), nn.Sequential(*blocks))
            self.num_stages = len(depths)
            self.feature_dim = widths[-1]

        def forward(self, x):
            h = self.relu(self.bn1(self.conv1(x)))
            for i in range(self.num_stages):
                h = getattr(self, "layer%d" % (i + 1))(h)
            return h.mean(dim=(2, 3))  # global average pool

    class SslModel(nn.Module):
        def __init__(self, encoder, head):
            super().__init__()
            self.encoder = encoder
            self.head = head

        def forward(self, x):
            return self.head(self.encoder(x))

    depths, widths = MODELS[args.model]
    enc = ResNet(args.channels, depths, widths, args.stem_stride)
    layers = [nn.Linear(enc.feature_dim, args.head_hidden)]
    if args.head_bn:
        layers.append(nn.BatchNorm1d(args.head_hidden))
    layers += [nn.ReLU(), nn.Linear(args.head_hidden, args.head_out)]
    return SslModel(enc, nn.Sequential(*layers))


def forward_flops(model, shape):
    """2 x multiply-adds of every Conv2d and Linear for an input of `shape` (selfsup's count)."""
    import torch

    total = [0.0]

    def conv_hook(m, inp, out):
        cin_k = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2.0 * out.numel() * cin_k

    def lin_hook(m, inp, out):
        total[0] += 2.0 * out.shape[0] * m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1,) + tuple(shape[1:])))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total[0] * shape[0]  # every counted op is linear in the number of rows


def infonce(z, K, tau, diagnostics):
    """z [K*N, D] -> loss [], as losses/infonce.cpp (plus its diagnostics, under no_grad)."""
    import torch
    import torch.nn.functional as F

    rows = z.shape[0]
    N = rows // K
    u = F.normalize(z, dim=1, eps=1e-12)
    gram = u @ u.t()
    s = gram * (1.0 / tau)
    idx = torch.arange(rows, device=z.device)
    pos = (idx[:, None] % N == idx[None, :] % N) & (idx[:, None] != idx[None, :])
    eye = torch.eye(rows, dtype=torch.bool, device=z.device)
    lse = torch.logsumexp(s.masked_fill(eye, -math.inf), dim=1)
    pos_mean = s.masked_fill(~pos, 0.0).sum(dim=1) * (1.0 / (K - 1))
    loss = (lse - pos_mean).mean()
    diag = {}
    if diagnostics:
        with torch.no_grad():
            g = gram.detach().double()
            sd = (g / tau).masked_fill(eye, -math.inf)
            p = torch.softmax(sd, dim=1)
            diag["q_mean"] = (1.0 - (p * pos).sum(1)).mean().item()
            diag["pos_cos"] = g[pos].mean().item()
            neg = ~pos & ~eye
            if neg.any():
                diag["neg_cos"] = g[neg].mean().item()
            ud = u.detach().cpu().double()
            views = [ud[k * N:(k + 1) * N] for k in range(K)]
            align, pairs = 0.0, 0
            for k in range(K):
                for l in range(k + 1, K):
                    align += ((views[k] - views[l]) ** 2).sum().item()
                    pairs += N
            diag["align"] = align / pairs
            if N >= 2:
                iu = torch.triu_indices(N, N, 1)
                unif = 0.0
                for v in views:
                    d = torch.cdist(v, v).pow(2)[iu[0], iu[1]]
                    unif += (torch.logsumexp(-2.0 * d, 0) - math.log(d.numel())).item()
                diag["unif"] = unif / K
    return loss, diag


def run_one(args, memory_format):
    import torch

    baseline = rss_now_mib()
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    dev = torch.device(args.device)
    V = args.views * args.batch
    shape = (V, args.channels, args.image_size, args.image_size)

    model = build(args)
    fwd_flops = forward_flops(model, shape)
    mf = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    model = model.to(dev, memory_format=mf)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # selfsup: conv / linear weights decay, BN weight and bias and linear biases do not
        (no_decay if (p.ndim <= 1) else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=0.1,
        momentum=0.9,
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g).to(dev).contiguous(memory_format=mf)
    nparams = sum(p.numel() for p in model.parameters())

    print(
        "torch bench: %s + head %d-%d%s, loss infonce (tau %g), batch %d x %d views = %d, "
        "%dx%dx%d, %s, %s, %s"
        % (args.model, args.head_hidden, args.head_out, "" if args.head_bn else " (no BN)",
           args.temperature, args.batch, args.views, V, args.channels, args.image_size,
           args.image_size, args.device, memory_format, allocator_name())
    )
    print("torch %s, %d threads (interop %d), mkldnn %s, OpenBLAS core %s%s"
          % (torch.__version__, torch.get_num_threads(), torch.get_num_interop_threads(),
             torch.backends.mkldnn.is_available(), openblas_core(),
             " (OPENBLAS_CORETYPE=%s)" % os.environ["OPENBLAS_CORETYPE"]
             if os.environ.get("OPENBLAS_CORETYPE") else ""))
    print("parameters %d, forward %.2f GFLOP per step (x3 for forward + backward)"
          % (nparams, fwd_flops / 1e9))

    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    def one_step():
        model.train()
        loss, _ = infonce(model(x), args.views, args.temperature, args.diagnostics)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return loss.item()  # forces completion on any device

    for _ in range(args.warmup):
        one_step()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    for _ in range(args.steps):
        sync()
        t0 = time.perf_counter()
        one_step()
        sync()
        times.append(time.perf_counter() - t0)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_util = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / (
        time.perf_counter() - w0)  # cores this process kept busy while timed
    med = sorted(times)[len(times) // 2]  # same convention as apps/bench.cpp
    views_s = V / med
    gflops = 3 * fwd_flops / med / 1e9
    rss = peak_rss_mib()
    print("step times (ms): " + " ".join("%.1f" % (t * 1e3) for t in times))
    print("median %.1f ms/step | %.1f views/s | %.1f GFLOP/s | peak RSS %.0f MiB "
          "(%.0f MiB after import) | %.2f cores busy" % (med * 1e3, views_s, gflops, rss, baseline,
                                                         cpu_util))
    rec = {
        "impl": "torch",
        "model": args.model,
        "batch": args.batch,
        "views": args.views,
        "ms_per_step": med * 1e3,
        "views_per_s": views_s,
        "gflops": gflops,
        "peak_rss_mib": rss,
        "step_ms": [t * 1e3 for t in times],
        "memory_format": memory_format,
        "allocator": allocator_name(),
        "baseline_rss_mib": baseline,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "torch_version": torch.__version__,
        "openblas_core": openblas_core(),
        "cpu_util": cpu_util,
    }
    if dev.type == "cuda":
        rec["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, choices=sorted(MODELS))
    ap.add_argument("--config", help="selfsup TOML config: [model] and [loss.infonce] from it")
    ap.add_argument("--batch", "-b", type=int, default=256, help="images per step (N)")
    ap.add_argument("--views", "-k", type=int, default=2, help="views per image (K)")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--stem-stride", type=int, default=None, choices=[1, 2, 3, 4],
                    help="stride of the stem convolution (selfsup's model.stem_stride)")
    ap.add_argument("--head-hidden", type=int, default=None)
    ap.add_argument("--head-out", type=int, default=None)
    ap.add_argument("--head-bn", choices=["true", "false"], default=None)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--diagnostics", choices=["true", "false"], default="true",
                    help="compute the loss diagnostics each step as selfsup does")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-format", default="both",
                    choices=["contiguous", "channels_last", "both"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", help="append one JSON line per memory format to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    # Precedence: explicit flag > config > selfsup's default.
    cfg = load_config(args.config) if args.config else {}
    if args.config and cfg.get("loss_name", "infonce") != "infonce":
        print("note: %s has [loss] name = %r; this script always times infonce "
              "(selfsup bench --config times the config's loss)"
              % (args.config, cfg["loss_name"]), file=sys.stderr)
    if args.model is None:
        args.model = cfg.get("encoder", "resnet18")
    if args.model not in MODELS:
        ap.error("unknown encoder %r; known: %s" % (args.model, ", ".join(MODELS)))
    if args.stem_stride is None:
        args.stem_stride = int(cfg.get("stem_stride", 1))
    if args.head_hidden is None:
        args.head_hidden = int(cfg.get("head_hidden", 512))
    if args.head_out is None:
        args.head_out = int(cfg.get("head_out", 128))
    if args.head_bn is None:
        args.head_bn = bool(cfg.get("head_bn", True))
    else:
        args.head_bn = args.head_bn == "true"
    if args.temperature is None:
        args.temperature = float(cfg.get("temperature", 0.5))
    if args.channels is None:
        args.channels = int(cfg.get("channels", 3))
    if args.image_size is None:
        args.image_size = int(cfg.get("image_size", 32))
    args.diagnostics = args.diagnostics == "true"
    if args.steps < 5 and not args.child:
        print("note: fewer than 5 timed steps", file=sys.stderr)

    if args.memory_format != "both":
        rec = run_one(args, args.memory_format)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return 0

    # One fresh process per memory format, so each peak RSS is its own.
    import tempfile

    recs = []
    base = [a for a in sys.argv[1:]]
    # drop any --memory-format / --json the user gave; the children get their own
    cleaned, skip = [], False
    for a in base:
        if skip:
            skip = False
            continue
        if a in ("--memory-format", "--json"):
            skip = True
            continue
        if a.startswith("--memory-format=") or a.startswith("--json="):
            continue
        cleaned.append(a)
    for mf in ("contiguous", "channels_last"):
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as tf:
            tmp = tf.name
        try:
            cmd = [sys.executable, os.path.abspath(__file__)] + cleaned + [
                "--memory-format", mf, "--json", tmp, "--child"]
            r = subprocess.run(cmd)
            if r.returncode != 0:
                print("bench_step: %s run failed (rc %d)" % (mf, r.returncode), file=sys.stderr)
                return r.returncode
            with open(tmp) as f:
                recs += [json.loads(l) for l in f if l.strip()]
        finally:
            os.unlink(tmp)
        print()
    best = min(recs, key=lambda r: r["ms_per_step"])
    for r in recs:
        r["best_format"] = r is best
        print("%-14s %8.1f ms/step %8.1f views/s %7.1f GFLOP/s  peak RSS %5.0f MiB%s"
              % (r["memory_format"], r["ms_per_step"], r["views_per_s"], r["gflops"],
                 r["peak_rss_mib"], "  <- faster" if r is best else ""))
    if args.json:
        with open(args.json, "a") as f:
            for r in recs:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
