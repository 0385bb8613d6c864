"""Convolutions against torch.nn.functional: forward, input, weight and bias
gradients over grids of kernel size, stride, padding and dilation.

Convention mapped here: graphnn's ``padding="same"`` is Keras/TensorFlow's, which
works for any stride and puts the odd pixel of padding after (bottom/right).
PyTorch's ``padding="same"`` exists for stride 1 only and places the odd pixel the
same way; at stride 1 the test uses it directly, at larger strides it pads
explicitly with TensorFlow's rule, total = max((ceil(n / s) - 1) s + d (k - 1) + 1 - n, 0).
"""
from __future__ import annotations

import itertools
from math import ceil

import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")
F = torch.nn.functional

from graphnn import Graph  # noqa: E402
from tests.parity.harness import check_against_torch, rng_for  # noqa: E402


def same_pads(size, k, s, d):
    """TensorFlow's 'same': (before, after) per axis, the odd pixel after."""
    pads = []
    for n in size:
        total = max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


CONV2D = list(itertools.product([1, 2, 3, (3, 2)], [1, 2, (2, 1)], ["valid", "same", 1, (2, 0)], [1, 2]))


@pytest.mark.filterwarnings("ignore:Using padding='same'")      # PyTorch's note on even kernels
@pytest.mark.parametrize("k, s, p, d", CONV2D, ids=[f"k{k}-s{s}-p{p}-d{d}".replace(" ", "") for k, s, p, d in CONV2D])
def test_conv2d(k, s, p, d):
    rng = rng_for(f"conv2d {k} {s} {p} {d}")
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (s, s) if isinstance(s, int) else s
    x = rng.normal(size=(2, 3, 7, 8))
    w, b = rng.normal(size=(4, 3, kh, kw)), rng.normal(size=4)

    def torch_conv(x, w, b):
        if p == "same" and (sh, sw) == (1, 1):
            return F.conv2d(x, w, b, 1, "same", d)
        if p == "same":
            (t, bo), (le, r) = same_pads((7, 8), kh, sh, d)[0], same_pads((7, 8), kw, sw, d)[1]
            return F.conv2d(F.pad(x, (le, r, t, bo)), w, b, (sh, sw), 0, d)
        return F.conv2d(x, w, b, (sh, sw), 0 if p == "valid" else p, d)

    g = Graph(dtype="float64")
    y = g.conv2d(g.input("x", (None, 3, 7, 8)), 4, k, strides=s, padding=p, dilation=d, name="c")
    check_against_torch(f"conv2d k={k} s={s} p={p} d={d}", g, y, torch_conv, {"x": x, "w": w, "b": b},
                        wrt=("x", "w", "b"), rng=rng, graph_names={"w": "c/W", "b": "c/b"})


CONV1D = list(itertools.product([1, 3, 4], [1, 2, 3], ["valid", "same", 2], [1, 2]))


@pytest.mark.parametrize("k, s, p, d", CONV1D, ids=[f"k{k}-s{s}-p{p}-d{d}" for k, s, p, d in CONV1D])
def test_conv1d(k, s, p, d):
    rng = rng_for(f"conv1d {k} {s} {p} {d}")
    x, w, b = rng.normal(size=(3, 2, 11)), rng.normal(size=(5, 2, k)), rng.normal(size=5)

    def torch_conv(x, w, b):
        if p == "same":
            before, after = same_pads((11,), k, s, d)[0]
            return F.conv1d(F.pad(x, (before, after)), w, b, s, 0, d)
        return F.conv1d(x, w, b, s, 0 if p == "valid" else p, d)

    g = Graph(dtype="float64")
    y = g.conv1d(g.input("x", (None, 2, 11)), 5, k, strides=s, padding=p, dilation=d, name="c")
    check_against_torch(f"conv1d k={k} s={s} p={p} d={d}", g, y, torch_conv, {"x": x, "w": w, "b": b},
                        wrt=("x", "w", "b"), rng=rng, graph_names={"w": "c/W", "b": "c/b"})


UPCONV = [c for c in itertools.product([2, 3, (3, 2)], [1, 2, 3], [0, 1, (1, 0)], [0, 1], [1, 2])
          if c[3] < max(c[1], c[4])]                        # output_padding < max(stride, dilation)


@pytest.mark.parametrize("k, s, p, op, d", UPCONV, ids=[f"k{k}-s{s}-p{p}-op{o}-d{d}".replace(" ", "")
                                                        for k, s, p, o, d in UPCONV])
def test_conv_transpose2d(k, s, p, op, d):
    rng = rng_for(f"upconv {k} {s} {p} {op} {d}")
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w, b = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(3, 2, kh, kw)), rng.normal(size=2)
    g = Graph(dtype="float64")
    y = g.conv_transpose2d(g.input("x", (None, 3, 4, 5)), 2, k, strides=s, padding=p,
                           output_padding=op, dilation=d, name="up")
    check_against_torch(
        f"conv_transpose2d k={k} s={s} p={p} op={op} d={d}", g, y,
        lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, 1, d), {"x": x, "w": w, "b": b},
        wrt=("x", "w", "b"), rng=rng, graph_names={"w": "up/W", "b": "up/b"})


GROUPED = [(4, 6, 2, 1, 1, 0), (4, 4, 4, 1, 1, 1), (4, 8, 4, 2, 1, 1), (6, 6, 3, 1, 2, 2),
           (4, 4, 4, 2, 2, 1)]   # (channels, filters, groups, stride, dilation, padding)


@pytest.mark.parametrize("c, f, groups, s, d, p", GROUPED, ids=[f"c{c}-f{f}-g{g}-s{s}-d{d}-p{p}"
                                                               for c, f, g, s, d, p in GROUPED])
def test_grouped_conv2d(c, f, groups, s, d, p):
    """Grouped and depthwise (groups = channels) convolution: PyTorch's groups."""
    case = f"conv2d groups={groups} c={c} f={f} s={s} d={d} p={p}"
    rng = rng_for(case)
    x, w, b = rng.normal(size=(2, c, 7, 6)), rng.normal(size=(f, c // groups, 3, 3)), rng.normal(size=f)
    g = Graph(dtype="float64")
    y = g.conv2d(g.input("x", (None, c, 7, 6)), f, 3, strides=s, padding=p, dilation=d, groups=groups,
                 name="c")
    check_against_torch(case, g, y, lambda x, w, b: F.conv2d(x, w, b, s, p, d, groups),
                        {"x": x, "w": w, "b": b}, wrt=("x", "w", "b"), rng=rng,
                        graph_names={"w": "c/W", "b": "c/b"})


@pytest.mark.parametrize("c, f, groups, s, d, p", GROUPED, ids=[f"c{c}-f{f}-g{g}-s{s}-d{d}-p{p}"
                                                               for c, f, g, s, d, p in GROUPED])
def test_grouped_conv_transpose2d(c, f, groups, s, d, p):
    op = 1 if max(s, d) > 1 else 0            # output_padding, beyond the stride when d > s
    case = f"conv_transpose2d groups={groups} c={c} f={f} s={s} d={d} p={p} op={op}"
    rng = rng_for(case)
    x, w, b = rng.normal(size=(2, c, 4, 5)), rng.normal(size=(c, f // groups, 3, 3)), rng.normal(size=f)
    g = Graph(dtype="float64")
    y = g.conv_transpose2d(g.input("x", (None, c, 4, 5)), f, 3, strides=s, padding=p, dilation=d,
                           output_padding=op, groups=groups, name="up")
    check_against_torch(case, g, y, lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, groups, d),
                        {"x": x, "w": w, "b": b}, wrt=("x", "w", "b"), rng=rng,
                        graph_names={"w": "up/W", "b": "up/b"})
