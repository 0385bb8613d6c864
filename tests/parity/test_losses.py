"""Every loss against PyTorch, with mean and sum reductions, with and without
sample weights: the value and the gradient of the prediction.

Conventions mapped here:
- Sample weights (one per row) scale each row's loss; the mean still divides by
  what the unweighted mean divides by (the rows, or every element for
  elementwise losses), as Keras does, not by the sum of the weights as PyTorch's
  class-weighted cross-entropy does. PyTorch has no per-sample weights, so the
  reference is ``(loss(reduction="none") * w).mean()`` or ``.sum()``; for binary
  cross-entropy it is PyTorch's own ``weight`` argument, which agrees.
- Losses of probabilities clip them to [1e-7, 1 - 1e-7] (cross-entropy to
  [1e-7, 1], kl_divergence both operands inside its logs) before the log, as Keras
  does; PyTorch clamps the log at -100 instead. The grid keeps probabilities in
  [0.05, 0.95], where neither acts; test_probability_clipping maps the clip.
- kl_divergence's "mean" is PyTorch's "batchmean" (rows averaged).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")
F = torch.nn.functional

from graphnn import Graph  # noqa: E402
from tests.parity.harness import check_against_torch, compare, graphnn_run, rng_for  # noqa: E402

N, K = 5, 4


def probs(rng, shape):
    p = rng.uniform(0.05, 0.95, size=shape)
    return p / p.sum(axis=-1, keepdims=True) if shape[-1] == K else p


def _reduce(rows, w, reduction):
    """Per-element or per-row PyTorch losses (reduction='none') weighted by row."""
    if w is not None:
        rows = rows * w.reshape((-1,) + (1,) * (rows.dim() - 1))
    return rows.mean() if reduction == "mean" else rows.sum()


def _softmax_ce(target_kind):
    def fn(p, t, reduction, w=None):
        return _reduce(F.cross_entropy(p, t, reduction="none"), w, reduction)
    return fn


# name: (graphnn op, attrs, prediction sampler, target sampler, target dtype, torch(p, t, reduction, w))
LOSSES = {
    "mse": ("mse", {}, "normal", "normal", "float64",
            lambda p, t, r, w=None: _reduce(F.mse_loss(p, t, reduction="none"), w, r)),
    "l1": ("l1", {}, "away", "zeros", "float64",
           lambda p, t, r, w=None: _reduce(F.l1_loss(p, t, reduction="none"), w, r)),
    "softmax_cross_entropy labels": ("softmax_cross_entropy", {}, "normal", "labels", "int64",
                                     _softmax_ce("labels")),
    "softmax_cross_entropy one-hot": ("softmax_cross_entropy", {}, "normal", "onehot", "float64",
                                      _softmax_ce("onehot")),
    "softmax_cross_entropy soft targets": ("softmax_cross_entropy", {}, "normal", "probs", "float64",
                                           _softmax_ce("probs")),
    "cross_entropy labels": ("cross_entropy", {}, "probs", "labels", "int64",
                             lambda p, t, r, w=None: _reduce(F.nll_loss(torch.log(p), t, reduction="none"), w, r)),
    "cross_entropy one-hot": ("cross_entropy", {}, "probs", "onehot", "float64",
                              lambda p, t, r, w=None: _reduce(-(t * torch.log(p)).sum(1), w, r)),
    "kl_divergence": ("kl_divergence", {}, "probs", "probs", "float64",
                      lambda p, t, r, w=None: _reduce(
                          F.kl_div(torch.log(p), t, reduction="none").sum(1), w, r)),
    "binary_cross_entropy": ("binary_cross_entropy", {}, "unit", "unit", "float64",
                             lambda p, t, r, w=None: F.binary_cross_entropy(
                                 p, t, weight=None if w is None else w[:, None], reduction=r)),
    "binary_cross_entropy logits": ("binary_cross_entropy", {"from_logits": True}, "normal", "unit",
                                    "float64",
                                    lambda p, t, r, w=None: F.binary_cross_entropy_with_logits(
                                        p, t, weight=None if w is None else w[:, None], reduction=r)),
}


def sample(kind, rng):
    if kind == "normal":
        return rng.normal(size=(N, K))
    if kind == "away":            # |x| >= 0.2: clear of l1's kink
        return rng.choice([-1.0, 1.0], size=(N, K)) * rng.uniform(0.2, 2.0, size=(N, K))
    if kind == "zeros":
        return np.zeros((N, K))
    if kind == "probs":
        return probs(rng, (N, K))
    if kind == "unit":
        return rng.uniform(0.05, 0.95, size=(N, K))
    if kind == "labels":
        return rng.integers(0, K, size=N)
    if kind == "onehot":
        return np.eye(K)[rng.integers(0, K, size=N)]
    raise ValueError(kind)


CASES = list(itertools.product(LOSSES, ["mean", "sum"], [False, True]))


@pytest.mark.parametrize("name, reduction, weighted", CASES,
                         ids=[f"{n}-{r}-{'weighted' if w else 'plain'}".replace(" ", "_") for n, r, w in CASES])
def test_loss(name, reduction, weighted):
    case = f"{name} {reduction}{' weighted' if weighted else ''}"
    rng = rng_for(case)
    op, attrs, p_kind, t_kind, t_dtype, torch_fn = LOSSES[name]
    p, t = sample(p_kind, rng), sample(t_kind, rng)
    values = {"p": p, "t": t}
    g = Graph(dtype="float64")
    inputs = [g.input("p", (None, K)), g.input("t", (None,) if t_kind == "labels" else (None, K), dtype=t_dtype)]
    if weighted:
        values["w"] = rng.uniform(0.0, 2.0, size=N)
        inputs.append(g.input("w", (None,)))
    y = g.op(op, inputs, reduction=reduction, **attrs)
    check_against_torch(case, g, y, lambda p, t, w=None: torch_fn(p, t, reduction, w), values,
                        wrt=("p",), rng=rng)


SOFTMAX_THEN_CE = list(itertools.product(["mean", "sum"], [False, True]))


@pytest.mark.parametrize("reduction, weighted", SOFTMAX_THEN_CE)
def test_softmax_then_cross_entropy(reduction, weighted):
    """softmax followed by cross_entropy (which the compiler rewrites into the
    stable fused form) is PyTorch's cross_entropy of the logits."""
    case = f"softmax + cross_entropy {reduction}{' weighted' if weighted else ''}"
    rng = rng_for(case)
    z, labels = rng.normal(scale=3.0, size=(N, K)), rng.integers(0, K, size=N)
    values = {"z": z, "y": labels}
    g = Graph(dtype="float64")
    inputs = [g.softmax(g.input("z", (None, K))), g.input("y", (None,), dtype="int64")]
    if weighted:
        values["w"] = rng.uniform(0.0, 2.0, size=N)
        inputs.append(g.input("w", (None,)))
    loss = g.op("cross_entropy", inputs, reduction=reduction)
    check_against_torch(case, g, loss, lambda z, y, w=None: _reduce(F.cross_entropy(z, y, reduction="none"),
                                                                    w, reduction),
                        values, wrt=("z",), rng=rng)


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_gaussian_kl(scale):
    """The VAE's KL term: KL(N(mean, exp(logvar)) || N(0, 1)) summed over latent
    axes, averaged over rows, against torch.distributions."""
    case = f"gaussian_kl scale={scale}"
    rng = rng_for(case)
    D = torch.distributions

    def torch_kl(m, lv):
        q = D.Normal(m, torch.exp(0.5 * lv))
        return scale * D.kl_divergence(q, D.Normal(torch.zeros_like(m), torch.ones_like(m))).sum(1).mean()

    g = Graph(dtype="float64")
    y = g.op("gaussian_kl", [g.input("m", (None, 3)), g.input("lv", (None, 3))], scale=scale)
    check_against_torch(case, g, y, torch_kl, {"m": rng.normal(size=(N, 3)), "lv": rng.normal(size=(N, 3))},
                        wrt=("m", "lv"), rng=rng)


@pytest.mark.parametrize("penalty", ["l2_penalty", "l1_penalty"])
def test_weight_penalties(penalty):
    case = f"{penalty}"
    rng = rng_for(case)
    w = rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(0.2, 2.0, size=(3, 4))
    g = Graph(dtype="float64")
    y = g.op(penalty, [g.param("w", (3, 4))], scale=0.3)
    fn = (lambda w: 0.3 * (w ** 2).sum()) if penalty == "l2_penalty" else (lambda w: 0.3 * w.abs().sum())
    check_against_torch(case, g, y, fn, {"w": w}, wrt=("w",), rng=rng)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "cross_entropy", "kl_divergence"])
def test_probability_clipping(name):
    """Probabilities beyond [1e-7, 1 - 1e-7] are clipped before the log (Keras's
    epsilon): graphnn's loss equals PyTorch's on the clipped probabilities."""
    case = f"{name} clipped"
    rng = rng_for(case)
    p = probs(rng, (N, K)) if name != "binary_cross_entropy" else rng.uniform(0.05, 0.95, (N, K))
    p[0, 0], p[1, 1] = 1e-12, 0.0                    # far below the clip (0: log would be -inf)
    if name == "binary_cross_entropy":
        p[2, 2] = 1.0                                # above 1 - 1e-7
    t = np.eye(K)[[0, 1, 2, 3, 0]] if name != "kl_divergence" else probs(rng, (N, K))
    if name == "kl_divergence":
        t[3, 3] = 0.0                                # t log t at t = 0 is 0 in both
    g = Graph(dtype="float64")
    y = g.op(name, [g.input("p", (None, K)), g.input("t", (None, K))], reduction="sum")
    got, _, _ = graphnn_run(g, y, {"p": p, "t": t})
    hi = 1 - 1e-7 if name == "binary_cross_entropy" else 1.0
    pc, tc = torch.tensor(np.clip(p, 1e-7, hi)), torch.tensor(t)
    want = {"binary_cross_entropy": lambda: F.binary_cross_entropy(pc, tc, reduction="sum"),
            "cross_entropy": lambda: -(tc * torch.log(pc)).sum(),
            "kl_divergence": lambda: F.kl_div(torch.log(pc), tc, reduction="sum")}[name]()
    compare(case, {"loss": (got, want.numpy())})
