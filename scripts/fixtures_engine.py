#!/usr/bin/env python3
"""PyTorch parity fixtures for the engine: ops, losses, optimizers, models.

    /usr/bin/python3 scripts/fixtures_engine.py [--out tests/fixtures]

Every reference is computed in torch.float64. Inputs (x, parameters, upstream gradients) are
drawn as float32 and widened, so they are stored exactly as F32 and the float32 and float64
parity tests see the same values; everything computed (outputs, gradients, running statistics,
optimizer states) is stored as F64. Unless a file says otherwise, gradients are those of
L = sum(out * dout) for the stored random `dout`. tests/fixtures/README.md lists every tensor.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

F64 = torch.float64
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.int64: "I64"}


# ---- safetensors writer (the published layout, written here rather than imported) ----------


def write_safetensors(path, tensors, metadata=None):
    """Header: 8-byte little-endian length N, N bytes of JSON padded with spaces to a multiple
    of 8, then the little-endian data of the tensors in sorted-name order."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {t.dtype}")
        arr = t.numpy()
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


# ---- helpers --------------------------------------------------------------------------------


def rand(*shape, scale=1.0):
    """A float32 normal sample widened to float64 (so it is exactly representable as F32)."""
    return (torch.randn(*shape, dtype=torch.float32) * scale).to(F64)


def rand_uniform(lo, hi, *shape):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).to(F64)


def exact(t):
    """Rounds to the nearest float32 value, kept in float64."""
    return t.to(torch.float32).to(F64)


def leaf(t):
    return t.clone().requires_grad_(True)


def f32(t):
    """An input for storage: float32 holds it exactly (checked)."""
    s = t.detach().to(torch.float32)
    assert torch.equal(s.to(F64), t.detach()), "input is not exactly representable in float32"
    return s


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.written = []

    def save(self, name, inputs, computed, metadata):
        """inputs are stored as F32 (exact), computed tensors as F64, integer tensors as I64."""
        tensors = {}
        for k, v in inputs.items():
            tensors[k] = v if v.dtype == torch.int64 else f32(v)
        for k, v in computed.items():
            assert k not in tensors, k
            tensors[k] = v.detach().to(F64)
        path = os.path.join(self.out_dir, name + ".safetensors")
        write_safetensors(path, tensors, metadata)
        self.written.append((path, os.path.getsize(path)))


# ---- ops ------------------------------------------------------------------------------------


def conv2d_cases(w):
    cases = [  # name, N, Cin, H, W, Cout, k, stride, pad, bias
        ("conv2d_k3_s1_p1", 2, 3, 6, 6, 4, 3, 1, 1, True),
        ("conv2d_k3_s2_p1", 2, 3, 7, 7, 4, 3, 2, 1, True),
        ("conv2d_k1_s2_p0", 2, 4, 6, 6, 5, 1, 2, 0, False),
        ("conv2d_k5_s1_p2_7x9", 2, 2, 7, 9, 3, 5, 1, 2, True),
        ("conv2d_k3_s1_p1_n1_nobias", 1, 3, 5, 5, 2, 3, 1, 1, False),
    ]
    for i, (name, n, cin, h, wd, cout, k, stride, pad, has_bias) in enumerate(cases):
        torch.manual_seed(100 + i)
        x = leaf(rand(n, cin, h, wd))
        weight = leaf(rand(cout, cin, k, k, scale=1.0 / math.sqrt(cin * k * k)))
        bias = leaf(rand(cout, scale=0.1)) if has_bias else None
        out = F.conv2d(x, weight, bias, stride=stride, padding=pad)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        inputs = {"x": x, "weight": weight, "dout": dout}
        computed = {"out": out, "dx": x.grad, "dweight": weight.grad}
        if has_bias:
            inputs["bias"] = bias
            computed["dbias"] = bias.grad
        w.save(name, inputs, computed, {"op": "conv2d", "stride": stride, "pad": pad,
                                        "bias": str(has_bias).lower()})


def batch_norm_cases(w):
    momentum, eps = 0.1, 1e-5
    for i, (tag, shape) in enumerate([("nc", (6, 4)), ("nchw", (3, 4, 3, 5))]):
        c = shape[1]

        # Training: out and gradients for x0; running stats after steps on x0, x1, x2.
        torch.manual_seed(200 + i)
        xs = [exact(rand(*shape, scale=2.0) + 0.5) for _ in range(3)]
        weight = leaf(rand_uniform(0.5, 1.5, c))
        bias = leaf(rand(c, scale=0.1))
        running_mean = torch.zeros(c, dtype=F64)
        running_var = torch.ones(c, dtype=F64)
        x0 = leaf(xs[0])
        out = F.batch_norm(x0, running_mean, running_var, weight, bias, training=True,
                           momentum=momentum, eps=eps)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        with torch.no_grad():
            for x in xs[1:]:
                F.batch_norm(x, running_mean, running_var, weight, bias, training=True,
                             momentum=momentum, eps=eps)
        w.save(f"batch_norm_{tag}_train",
               {"x0": xs[0], "x1": xs[1], "x2": xs[2], "weight": weight, "bias": bias,
                "dout": dout},
               {"out": out, "dx": x0.grad, "dweight": weight.grad, "dbias": bias.grad,
                "running_mean": running_mean, "running_var": running_var},
               {"op": "batch_norm", "training": "true", "momentum": momentum, "eps": eps,
                "steps": 3})

        # Evaluation with given running statistics.
        torch.manual_seed(210 + i)
        x = leaf(rand(*shape, scale=2.0))
        weight = leaf(rand_uniform(0.5, 1.5, c))
        bias = leaf(rand(c, scale=0.1))
        running_mean = rand(c, scale=0.5)
        running_var = rand_uniform(0.5, 2.0, c)
        out = F.batch_norm(x, running_mean, running_var, weight, bias, training=False,
                           momentum=momentum, eps=eps)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        w.save(f"batch_norm_{tag}_eval",
               {"x": x, "weight": weight, "bias": bias, "running_mean": running_mean,
                "running_var": running_var, "dout": dout},
               {"out": out, "dx": x.grad, "dweight": weight.grad, "dbias": bias.grad},
               {"op": "batch_norm", "training": "false", "momentum": momentum, "eps": eps})


def pool_cases(w):
    cases = [  # name, function, kernel, stride, pad
        ("max_pool2d_k2_s2", "max_pool2d", 2, 2, 0),
        ("max_pool2d_k3_s2_p1", "max_pool2d", 3, 2, 1),
        ("avg_pool2d_k2_s2", "avg_pool2d", 2, 2, 0),
        ("avg_pool2d_k3_s2_p1", "avg_pool2d", 3, 2, 1),
    ]
    for i, (name, fn, k, stride, pad) in enumerate(cases):
        torch.manual_seed(300 + i)
        x = leaf(rand(2, 3, 6, 7))
        if fn == "max_pool2d":
            out = F.max_pool2d(x, k, stride, pad)
        else:
            out = F.avg_pool2d(x, k, stride, pad, count_include_pad=True)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        meta = {"op": fn, "kernel": k, "stride": stride, "pad": pad}
        if fn == "avg_pool2d":
            meta["count_include_pad"] = "true"
        w.save(name, {"x": x, "dout": dout}, {"out": out, "dx": x.grad}, meta)

    torch.manual_seed(310)
    x = leaf(rand(3, 4, 5, 6))
    out = F.adaptive_avg_pool2d(x, 1).flatten(1)
    dout = rand(*out.shape)
    (out * dout).sum().backward()
    w.save("global_avg_pool", {"x": x, "dout": dout}, {"out": out, "dx": x.grad},
           {"op": "global_avg_pool"})


def linear_algebra_cases(w):
    torch.manual_seed(400)
    x = leaf(rand(5, 7))
    weight = leaf(rand(4, 7, scale=0.4))
    bias = leaf(rand(4, scale=0.1))
    out = F.linear(x, weight, bias)
    dout = rand(*out.shape)
    (out * dout).sum().backward()
    w.save("linear", {"x": x, "weight": weight, "bias": bias, "dout": dout},
           {"out": out, "dx": x.grad, "dweight": weight.grad, "dbias": bias.grad},
           {"op": "linear"})

    m, k, n = 3, 4, 5
    for i, (ta, tb) in enumerate([(False, False), (False, True), (True, False), (True, True)]):
        torch.manual_seed(410 + i)
        a = leaf(rand(k, m) if ta else rand(m, k))
        b = leaf(rand(n, k) if tb else rand(k, n))
        out = (a.t() if ta else a) @ (b.t() if tb else b)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        name = "matmul_" + ("t" if ta else "n") + ("t" if tb else "n")
        w.save(name, {"a": a, "b": b, "dout": dout}, {"out": out, "da": a.grad, "db": b.grad},
               {"op": "matmul", "trans_a": str(ta).lower(), "trans_b": str(tb).lower()})


def reduction_cases(w):
    torch.manual_seed(500)
    logits = leaf(rand(6, 5, scale=2.0))
    labels = torch.tensor([0, 4, 2, 2, 1, 3], dtype=torch.int64)
    out = F.cross_entropy(logits, labels, reduction="mean")
    dout = rand(())
    (out * dout).sum().backward()
    w.save("cross_entropy", {"logits": logits, "labels": labels, "dout": dout},
           {"out": out, "dlogits": logits.grad}, {"op": "cross_entropy", "reduction": "mean"})

    # Row 2 is shifted by +1000 and row 3 by -1000: a max-shifted log-sum-exp stays finite.
    for i, (name, fn) in enumerate([("logsumexp", lambda t: torch.logsumexp(t, 1)),
                                    ("log_softmax", lambda t: F.log_softmax(t, 1))]):
        torch.manual_seed(510 + i)
        x0 = torch.randn(4, 6, dtype=torch.float32) * 3.0
        x0[2] += 1000.0
        x0[3] -= 1000.0
        x0 = x0.to(F64)
        x = leaf(x0)
        out = fn(x)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        w.save(name, {"x": x, "dout": dout}, {"out": out, "dx": x.grad}, {"op": name, "dim": 1})

    for i, (name, zero_row) in enumerate([("normalize", False), ("normalize_zero_row", True)]):
        torch.manual_seed(520 + i)
        x0 = rand(5, 4)
        if zero_row:
            x0[1] = 0.0
        x = leaf(x0)
        out = F.normalize(x, p=2.0, dim=1, eps=1e-12)
        dout = rand(*out.shape)
        (out * dout).sum().backward()
        w.save(name, {"x": x, "dout": dout}, {"out": out, "dx": x.grad},
               {"op": "normalize", "dim": 1, "eps": 1e-12})


# ---- losses (from docs/losses.md; z is [K*N, D], view-major: row k*N + n) --------------------


def unit_rows(z):
    return F.normalize(z, p=2.0, dim=1, eps=1e-12)


def infonce(z, k, tau, decoupled=False):
    u = unit_rows(z)
    rows = z.shape[0]
    n = rows // k
    s = u @ u.t() / tau
    image = torch.arange(rows) % n
    positive = (image[:, None] == image[None, :]) & ~torch.eye(rows, dtype=torch.bool)
    excluded = torch.eye(rows, dtype=torch.bool)  # the anchor itself
    if decoupled:
        excluded = excluded | positive
    lse = torch.logsumexp(s.masked_fill(excluded, float("-inf")), dim=1)
    # l_a = -(1/|P(a)|) sum_{p in P(a)} (s_ap - lse_a)
    per_anchor = -((s - lse[:, None]) * positive).sum(1) / positive.sum(1)
    return per_anchor.mean()


def sq_dist(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def align_uniform(z, k, alpha, t, w_align=1.0, w_unif=1.0):
    u = unit_rows(z)
    n = z.shape[0] // k
    views = [u[i * n:(i + 1) * n] for i in range(k)]
    align = [((views[a] - views[b]) ** 2).sum(1) ** (alpha / 2)
             for a in range(k) for b in range(a + 1, k)]
    l_align = torch.cat(align).mean()
    iu = torch.triu_indices(n, n, offset=1)
    unif = []
    for v in views:
        d2 = sq_dist(v, v)[iu[0], iu[1]]  # pairs n < m
        unif.append(torch.logsumexp(-t * d2, 0) - math.log(d2.numel()))
    l_unif = torch.stack(unif).mean()
    return w_align * l_align + w_unif * l_unif


def du_from_mu(mu, t):
    n = mu.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    d2 = sq_dist(mu, mu)[off]  # ordered pairs n != m
    return torch.logsumexp(-t * d2, 0) - math.log(n * (n - 1))


def du_mu(z, k):
    u = unit_rows(z)
    n = z.shape[0] // k
    return u.reshape(k, n, -1).mean(0)  # mu_n = (1/K) sum_k u_n^(k), not re-normalised


def du(z, k, t):
    return du_from_mu(du_mu(z, k), t)


def check_losses_against_docs():
    """The hand-computed values of docs/losses.md, as a check of the implementations above."""
    def close(a, b, tol=5e-5):
        assert abs(float(a) - b) <= tol * max(1.0, abs(b)), (float(a), b)

    nt = torch.tensor([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], dtype=F64)
    for tau, ref in [(0.5, 1.27071), (0.1, 2.96680), (0.07, 4.07900), (0.01, 28.0000)]:
        close(infonce(nt, 2, tau), ref)
    close(infonce(torch.tensor([[1.0, 0], [0.3, 0.4]], dtype=F64), 2, 0.5), 0.0)

    def angles(degrees):
        r = torch.tensor(degrees, dtype=F64) * math.pi / 180
        return torch.stack([r.cos(), r.sin()], 1)
    v1, v2 = angles([0, 90, 180, 270]), angles([10, 100, 190, 280])
    close(infonce(torch.cat([v1, v2]), 2, 0.5), 0.478333)
    halves = [infonce(torch.cat([v1[i:i + 2], v2[i:i + 2]]), 2, 0.5) for i in (0, 2)]
    close(sum(halves) / 2, 0.251980)

    three = torch.tensor([[1.0, 0], [0, 1], [-1, 0]], dtype=F64)
    for t, ref in [(2, -4.39635), (1, -2.33999)]:
        for scale in (1.0, 10.0):
            close(align_uniform(torch.cat([three, three]) * scale, 2, 2, t, w_align=0.0), ref)

    view2 = torch.tensor([[0.6, 0.8], [0, 1], [-0.8, -0.6]], dtype=F64)
    z = torch.cat([three, view2])
    mu = du_mu(z, 2)
    assert torch.allclose(mu, torch.tensor([[0.8, 0.4], [0, 1], [-0.9, -0.3]], dtype=F64))
    close(du(z, 2, 1), -1.82426)
    close(du(z, 2, 2), -3.04190)
    mu = mu.clone().requires_grad_(True)
    du_from_mu(mu, 2).backward()
    ref = [[-3.07860, 2.24501], [2.85422, -2.51229], [0.224386, 0.267280]]
    for got, want in zip(mu.grad.reshape(-1).tolist(), sum(ref, [])):
        close(got, want)


LOSSES = [  # file stem, function of (z, K), metadata
    ("infonce_tau0.5", lambda z, k: infonce(z, k, 0.5),
     {"loss": "infonce", "tau": 0.5, "decoupled": "false"}),
    ("infonce_tau0.1", lambda z, k: infonce(z, k, 0.1),
     {"loss": "infonce", "tau": 0.1, "decoupled": "false"}),
    ("infonce_decoupled_tau0.5", lambda z, k: infonce(z, k, 0.5, decoupled=True),
     {"loss": "infonce", "tau": 0.5, "decoupled": "true"}),
    ("align_uniform_a2_t2", lambda z, k: align_uniform(z, k, 2.0, 2.0),
     {"loss": "align_uniform", "alpha": 2.0, "t": 2.0, "w_align": 1.0, "w_unif": 1.0}),
    ("du_t2", lambda z, k: du(z, k, 2.0), {"loss": "du", "t": 2.0}),
    ("du_t1", lambda z, k: du(z, k, 1.0), {"loss": "du", "t": 1.0}),
]
LOSS_SHAPES = [(8, 16, 2), (8, 128, 2), (64, 16, 2), (8, 16, 3)]  # N, D, K


def loss_cases(w):
    check_losses_against_docs()
    for i, (stem, fn, meta) in enumerate(LOSSES):
        for j, (n, d, k) in enumerate(LOSS_SHAPES):
            torch.manual_seed(600 + 10 * j)  # the same z for every loss at one shape
            z = leaf(rand(k * n, d, scale=0.7))
            loss = fn(z, k)
            loss.backward()
            w.save(f"loss_{stem}_n{n}_d{d}_k{k}", {"z": z}, {"loss": loss, "dz": z.grad},
                   dict(meta, N=n, D=d, K=k))

    # dL/dmu for DU (t = 2) at one case: mu computed from z, then differentiated as a leaf.
    torch.manual_seed(600)
    n, d, k = LOSS_SHAPES[0]
    z = rand(k * n, d, scale=0.7)
    mu = du_mu(z, k).detach().requires_grad_(True)
    loss = du_from_mu(mu, 2.0)
    loss.backward()
    w.save("loss_du_t2_dmu_n8_d16_k2", {"z": z}, {"mu": mu, "loss": loss, "dmu": mu.grad},
           {"loss": "du", "t": 2.0, "N": n, "D": d, "K": k})


# ---- optimizers -----------------------------------------------------------------------------


def lars_steps(p0, grads, lr, momentum, weight_decay, eta):
    """SimCLR's LARS: g += wd * w; trust = eta * ||w|| / ||g|| when both norms are > 0, else 1;
    v = momentum * v + lr * trust * g; w -= v (no dampening, no Nesterov)."""
    w = p0.clone()
    v = torch.zeros_like(w)
    out = []
    for g in grads:
        g = g + weight_decay * w
        wn, gn = w.norm(), g.norm()
        trust = eta * wn / gn if wn > 0 and gn > 0 else torch.tensor(1.0, dtype=F64)
        v = momentum * v + lr * trust * g
        w = w - v
        out.append((w.clone(), v.clone(), trust.clone()))
    return out


def optimizer_cases(w):
    torch.manual_seed(700)
    p0, g0, g1 = rand(4, 5), rand(4, 5, scale=0.5), rand(4, 5, scale=0.5)

    for nesterov in (False, True):
        p = p0.clone().requires_grad_(True)
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4)
        computed = {}
        for step, g in enumerate((g0, g1), start=1):
            p.grad = g.clone()
            opt.step()
            computed[f"p{step}"] = p.detach().clone()
            computed[f"momentum_buffer{step}"] = opt.state[p]["momentum_buffer"].clone()
        w.save("optim_sgd_nesterov" if nesterov else "optim_sgd_momentum",
               {"p0": p0, "g0": g0, "g1": g1}, computed,
               {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                "nesterov": str(nesterov).lower(), "weight_decay": 5e-4})

    p = p0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    computed = {}
    for step, g in enumerate((g0, g1), start=1):
        p.grad = g.clone()
        opt.step()
        computed[f"p{step}"] = p.detach().clone()
        computed[f"exp_avg{step}"] = opt.state[p]["exp_avg"].clone()
        computed[f"exp_avg_sq{step}"] = opt.state[p]["exp_avg_sq"].clone()
    w.save("optim_adamw", {"p0": p0, "g0": g0, "g1": g1}, computed,
           {"optimizer": "adamw", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.05})

    lr, momentum, wd, eta = 0.1, 0.9, 1e-4, 0.02
    computed = {}
    for step, (pk, vk, trust) in enumerate(lars_steps(p0, (g0, g1), lr, momentum, wd, eta), 1):
        computed[f"p{step}"] = pk
        computed[f"momentum_buffer{step}"] = vk
        computed[f"trust{step}"] = trust
    w.save("optim_lars", {"p0": p0, "g0": g0, "g1": g1}, computed,
           {"optimizer": "lars", "lr": lr, "momentum": momentum, "weight_decay": wd, "eta": eta,
            "variant": "simclr"})


# ---- models ---------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """conv3x3(stride) - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU. The shortcut is
    a 1x1 conv (stride) + BN when the shape changes, else the identity."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                                          nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallEncoder(nn.Module):
    """CIFAR stem (conv3x3 3->8, BN, ReLU, no max-pool), one BasicBlock per stage with widths
    8, 16, 32, 64 and strides 1, 2, 2, 2, global average pool, then the projection head
    Linear(64, 64) - BN1d - ReLU - Linear(64, 32)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        widths, strides = [8, 16, 32, 64], [1, 2, 2, 2]
        cin = 8
        for i, (cout, s) in enumerate(zip(widths, strides), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, s)))
            cin = cout
        self.head = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                  nn.Linear(64, 32))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def randomise(model):
    """Random float32-exact parameters (BN affine too, so that it is exercised)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(rand(*p.shape, scale=math.sqrt(2.0 / fan_in)))
            elif name.endswith("weight"):  # BN scale
                p.copy_(rand_uniform(0.5, 1.5, *p.shape))
            else:
                p.copy_(rand(*p.shape, scale=0.1))


def model_case(w, name, model, input_shape, seed):
    torch.manual_seed(seed)
    model = model.to(F64)
    randomise(model)
    model.train()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    x = leaf(rand(*input_shape))
    out = model(x)
    dout = rand(*out.shape)
    (out * dout).sum().backward()

    inputs = dict(state)
    inputs.update({"input": x, "dout": dout})
    computed = {"output": out, "dinput": x.grad}
    for k, v in model.state_dict().items():
        if "running_" in k:
            computed["after." + k] = v
    for k, p in model.named_parameters():
        computed["grad." + k] = p.grad
    w.save(name, inputs, computed,
           {"model": name, "mode": "train", "bn_eps": 1e-5, "bn_momentum": 0.1})


def model_cases(w):
    model_case(w, "model_basic_block", BasicBlock(16, 32, 2), (4, 16, 8, 8), 800)
    model_case(w, "model_small_encoder", SmallEncoder(), (4, 3, 16, 16), 810)


# ---- main -----------------------------------------------------------------------------------


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description="Writes the engine's PyTorch parity fixtures.")
    parser.add_argument("--out", default=os.path.join(root, "tests", "fixtures"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    w = Writer(args.out)
    for make in (conv2d_cases, batch_norm_cases, pool_cases, linear_algebra_cases,
                 reduction_cases, loss_cases, optimizer_cases, model_cases):
        make(w)
    total = sum(size for _, size in w.written)
    for path, size in w.written:
        print(f"{size:8d}  {os.path.relpath(path, root)}")
    print(f"{total:8d}  bytes in {len(w.written)} files (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
