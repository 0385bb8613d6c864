"""Pooling against torch.nn.functional, forward and input gradient: max and average,
2-D and 1-D, overlapping windows (stride < pool size), padding, and ties.

Conventions mapped here:
- 'same' padding is TensorFlow's (the odd pixel after); PyTorch has no 'same' for
  pooling, so the test pads explicitly (-inf for max, zeros for average).
- Average pooling counts the zero padding in the mean: PyTorch's default
  (count_include_pad=True); Keras leaves padding out of the count.
- With ties, the gradient of max pooling goes to the first maximum of each window
  in row-major order, as PyTorch's CPU kernel does; overlapping windows that pick
  the same pixel add their gradients there.
"""
from __future__ import annotations

import itertools
from math import ceil

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")
F = torch.nn.functional

from graphnn import Graph  # noqa: E402
from tests.parity.harness import check_against_torch, rng_for  # noqa: E402


def same_pads(n, k, s):
    total = max((ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def values(rng, shape, ties):
    """Normal values, or small integers so that windows hold equal maxima."""
    return rng.integers(0, 3, size=shape).astype(np.float64) if ties else rng.normal(size=shape)


POOL2D = [c for c in itertools.product(["max", "avg"], [2, 3, (3, 2)], [None, 1, 2], ["valid", "same", 1],
                                       [False, True])
          if not (c[0] == "avg" and c[4])]     # ties matter for max only


@pytest.mark.parametrize("kind, k, s, p, ties", POOL2D,
                         ids=[f"{a}-k{k}-s{s}-p{p}-{'ties' if t else 'distinct'}".replace(" ", "")
                              for a, k, s, p, t in POOL2D])
def test_pool2d(kind, k, s, p, ties):
    case = f"{kind}_pool2d k={k} s={s} p={p}{' ties' if ties else ''}"
    rng = rng_for(case)
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (kh, kw) if s is None else (s, s)
    x = values(rng, (2, 3, 7, 6), ties)
    fill = -np.inf if kind == "max" else 0.0
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d

    def torch_pool(x):
        if p == "same":
            (t, b), (le, r) = same_pads(7, kh, sh), same_pads(6, kw, sw)
            x = F.pad(x, (le, r, t, b), value=fill)
        elif p == 1:
            x = F.pad(x, (1, 1, 1, 1), value=fill)   # explicit: the same as PyTorch's padding=1
        return pool(x, (kh, kw), (sh, sw))

    g = Graph(dtype="float64")
    method = g.max_pool2d if kind == "max" else g.avg_pool2d
    y = method(g.input("x", (None, 3, 7, 6)), k, s, p)
    check_against_torch(case, g, y, torch_pool, {"x": x}, wrt=("x",), rng=rng)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("p", [0, 1])
def test_pool2d_padding_as_pytorch_writes_it(kind, p):
    """PyTorch's own padding argument (count_include_pad=True for the average)."""
    case = f"{kind}_pool2d k=3 s=2 torch padding={p}"
    rng = rng_for(case)
    x = rng.normal(size=(2, 2, 7, 7))
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    g = Graph(dtype="float64")
    method = g.max_pool2d if kind == "max" else g.avg_pool2d
    y = method(g.input("x", (None, 2, 7, 7)), 3, 2, p)
    check_against_torch(case, g, y, lambda x: pool(x, 3, 2, p), {"x": x}, wrt=("x",), rng=rng)


POOL1D = [c for c in itertools.product(["max", "avg"], [2, 3], [None, 1, 2], ["valid", "same", 1],
                                       [False, True])
          if not (c[0] == "avg" and c[4])]


@pytest.mark.parametrize("kind, k, s, p, ties", POOL1D,
                         ids=[f"{a}-k{k}-s{s}-p{p}-{'ties' if t else 'distinct'}" for a, k, s, p, t in POOL1D])
def test_pool1d(kind, k, s, p, ties):
    case = f"{kind}_pool1d k={k} s={s} p={p}{' ties' if ties else ''}"
    rng = rng_for(case)
    stride = s or k
    x = values(rng, (3, 2, 11), ties)
    fill = -np.inf if kind == "max" else 0.0
    pool = F.max_pool1d if kind == "max" else F.avg_pool1d

    def torch_pool(x):
        if p == "same":
            x = F.pad(x, same_pads(11, k, stride), value=fill)
        elif p == 1:
            x = F.pad(x, (1, 1), value=fill)
        return pool(x, k, stride)

    g = Graph(dtype="float64")
    method = g.max_pool1d if kind == "max" else g.avg_pool1d
    y = method(g.input("x", (None, 2, 11)), k, s, p)
    check_against_torch(case, g, y, torch_pool, {"x": x}, wrt=("x",), rng=rng)


def test_global_avg_pool():
    rng = rng_for("global_avg_pool")
    g = Graph(dtype="float64")
    y = g.global_avg_pool(g.input("x", (None, 3, 5, 4)))
    check_against_torch("global_avg_pool", g, y, lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1),
                        {"x": rng.normal(size=(2, 3, 5, 4))}, wrt=("x",), rng=rng)


CEIL = [c for c in itertools.product(["max", "avg"], [2, 3], [2, 3], [0, 1], [False, True], [True, False])
        if c[3] <= c[1] // 2 and not (c[0] == "max" and not c[5])]
# (kind, pool size, stride, padding, ceil_mode, count_include_pad)


@pytest.mark.parametrize("kind, k, s, p, ceil, counted", CEIL,
                         ids=[f"{a}-k{k}-s{s}-p{p}-ceil{c}-count{n}" for a, k, s, p, c, n in CEIL])
def test_pool2d_ceil_mode_and_uncounted_padding(kind, k, s, p, ceil, counted):
    """PyTorch's ceil_mode (a last partial window, which must start inside the input
    or its left padding) and count_include_pad=False."""
    case = f"{kind}_pool2d k={k} s={s} p={p} ceil_mode={ceil} count_include_pad={counted}"
    rng = rng_for(case)
    x = rng.normal(size=(2, 2, 8, 7))
    g = Graph(dtype="float64")
    if kind == "max":
        y = g.max_pool2d(g.input("x", (None, 2, 8, 7)), k, s, p, ceil_mode=ceil)
        fn = lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil)
    else:
        y = g.avg_pool2d(g.input("x", (None, 2, 8, 7)), k, s, p, ceil_mode=ceil, count_include_pad=counted)
        fn = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=counted)
    check_against_torch(case, g, y, fn, {"x": x}, wrt=("x",), rng=rng)
