"""Convolution and pooling attributes that ONNX models use: groups (grouped and
depthwise convolution, grouped up-convolution), asymmetric padding, dilation,
ceil_mode and count_include_pad.

Each case is checked against a NumPy reference written with plain loops over
output positions (values at batch 1 and 7) and, through the compiled backward
pass, against central finite differences in float64.
"""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler.infer import infer_node
from graphnn.compiler.ir import add_op, new_graph
from graphnn.compiler.ops import OPS, concrete
from graphnn.compiler.pipeline import check_graph

from tests.helpers import gradient_check, one_op_graph, run

F = "float64"


def conv_ref(x, w, strides=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Cross-correlation, one output pixel at a time, each group on its own channels."""
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    f, cg, kh, kw = w.shape
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    oh = (xp.shape[2] - span[0]) // strides[0] + 1
    ow = (xp.shape[3] - span[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], f, oh, ow))
    fg = f // groups
    for o in range(f):
        g = o // fg
        for i in range(oh):
            for j in range(ow):
                r, c = i * strides[0], j * strides[1]
                win = xp[:, g * cg:(g + 1) * cg, r:r + span[0]:dilation[0], c:c + span[1]:dilation[1]]
                out[:, o, i, j] = np.sum(win * w[o], axis=(1, 2, 3))
    return out


def conv_transpose_ref(x, w, strides=(1, 1), pads=(0, 0, 0, 0), groups=1):
    """Scatter-add of every input pixel times its group's kernel, then crop."""
    n, cin, h, wd = x.shape
    _, cout_g, kh, kw = w.shape
    cin_g = cin // groups
    full = np.zeros((n, cout_g * groups, (h - 1) * strides[0] + kh, (wd - 1) * strides[1] + kw))
    for c in range(cin):
        g = c // cin_g
        for i in range(h):
            for j in range(wd):
                r, s = i * strides[0], j * strides[1]
                full[:, g * cout_g:(g + 1) * cout_g, r:r + kh, s:s + kw] += \
                    x[:, c, i, j, None, None, None] * w[c]
    t, b, l, r = pads
    return full[:, :, t:full.shape[2] - b, l:full.shape[3] - r]


def pool_ref(x, kind, k, s, pads=(0, 0, 0, 0), ceil_mode=False, count_include_pad=True, d=(1, 1)):
    """PyTorch's definition, written out tap by tap: window taps start + i * dilation;
    those in the padded input count in the divisor (count_include_pad), those in
    the input give the values."""
    n, c, h, w = x.shape
    size = []
    for dim, (kk, ss, dd, pb, pe) in enumerate(zip(k, s, d, pads[0::2], pads[1::2])):
        full = (h, w)[dim] + pb + pe - dd * (kk - 1) - 1
        out = (-(-full // ss) if ceil_mode else full // ss) + 1
        if ceil_mode and (out - 1) * ss >= (h, w)[dim] + pb:
            out -= 1
        size.append(out)
    out = np.zeros((n, c, *size))
    for i in range(size[0]):
        for j in range(size[1]):
            rows = [i * s[0] - pads[0] + a * d[0] for a in range(k[0])]
            cols = [j * s[1] - pads[2] + b * d[1] for b in range(k[1])]
            padded = sum(1 for r in rows for q in cols if -pads[0] <= r < h + pads[1] and -pads[2] <= q < w + pads[3])
            taps = [x[:, :, r, q] for r in rows for q in cols if 0 <= r < h and 0 <= q < w]
            if kind == "max":
                out[:, :, i, j] = np.max(taps, axis=0)
            else:
                out[:, :, i, j] = np.sum(taps, axis=0) / (padded if count_include_pad else len(taps))
    return out


CASES = [
    # (op, attrs, operand shapes (first is the input), NumPy reference)
    ("conv2d", {"groups": 2}, [(None, 4, 5, 6), (6, 2, 3, 2)],
     lambda x, w: conv_ref(x, w, groups=2)),
    ("conv2d", {"groups": 3, "padding": 1}, [(None, 3, 5, 5), (3, 1, 3, 3)],     # depthwise
     lambda x, w: conv_ref(x, w, pads=(1, 1, 1, 1), groups=3)),
    ("conv2d", {"groups": 2, "strides": 2, "padding": (0, 1, 2, 0), "dilation": (1, 2)},
     [(None, 4, 7, 7), (4, 2, 2, 3)],
     lambda x, w: conv_ref(x, w, (2, 2), (0, 1, 2, 0), (1, 2), groups=2)),
    ("conv2d", {"padding": (1, 0, 0, 2)}, [(None, 2, 5, 5), (3, 2, 3, 3)],       # asymmetric pads
     lambda x, w: conv_ref(x, w, pads=(1, 0, 0, 2))),
    ("conv_transpose2d", {"groups": 2}, [(None, 4, 3, 3), (4, 3, 2, 3)],
     lambda x, w: conv_transpose_ref(x, w, groups=2)),
    ("conv_transpose2d", {"groups": 2, "strides": 2, "padding": (1, 0, 0, 1)},
     [(None, 2, 3, 4), (2, 1, 3, 3)],
     lambda x, w: conv_transpose_ref(x, w, (2, 2), (1, 0, 0, 1), groups=2)),
    ("max_pool2d", {"pool_size": 2, "ceil_mode": True}, [(None, 2, 5, 7)],
     lambda x: pool_ref(x, "max", (2, 2), (2, 2), ceil_mode=True)),
    ("max_pool2d", {"pool_size": 3, "strides": 2, "padding": (1, 0, 0, 1), "ceil_mode": True},
     [(None, 2, 6, 6)], lambda x: pool_ref(x, "max", (3, 3), (2, 2), (1, 0, 0, 1), ceil_mode=True)),
    ("avg_pool2d", {"pool_size": 3, "strides": 2, "padding": 1, "count_include_pad": False},
     [(None, 2, 5, 6)], lambda x: pool_ref(x, "avg", (3, 3), (2, 2), (1, 1, 1, 1),
                                           count_include_pad=False)),
    ("avg_pool2d", {"pool_size": 2, "ceil_mode": True}, [(None, 2, 5, 5)],
     lambda x: pool_ref(x, "avg", (2, 2), (2, 2), ceil_mode=True)),
    ("avg_pool2d", {"pool_size": 3, "strides": 2, "padding": (1, 1, 0, 1), "ceil_mode": True},
     [(None, 1, 6, 6)], lambda x: pool_ref(x, "avg", (3, 3), (2, 2), (1, 1, 0, 1), ceil_mode=True)),
    ("avg_pool2d", {"pool_size": 3, "strides": 2, "padding": 1, "ceil_mode": True,
                    "count_include_pad": False},
     [(None, 2, 6, 6)], lambda x: pool_ref(x, "avg", (3, 3), (2, 2), (1, 1, 1, 1), True, False)),
    ("max_pool2d", {"pool_size": 2, "strides": 1, "dilation": 2}, [(None, 2, 5, 6)],
     lambda x: pool_ref(x, "max", (2, 2), (1, 1), d=(2, 2))),
    ("max_pool2d", {"pool_size": (2, 3), "strides": 2, "dilation": (2, 1), "padding": 1, "ceil_mode": True},
     [(None, 1, 7, 6)], lambda x: pool_ref(x, "max", (2, 3), (2, 2), (1, 1, 1, 1), True, d=(2, 1))),
    ("avg_pool2d", {"pool_size": 2, "strides": 1, "dilation": 2, "padding": (1, 0, 0, 1),
                    "count_include_pad": False},
     [(None, 2, 5, 5)], lambda x: pool_ref(x, "avg", (2, 2), (1, 1), (1, 0, 0, 1), False, False, (2, 2))),
    ("avg_pool2d", {"pool_size": 3, "strides": 2, "dilation": 2, "padding": 1}, [(None, 1, 7, 7)],
     lambda x: pool_ref(x, "avg", (3, 3), (2, 2), (1, 1, 1, 1), d=(2, 2))),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("batch", [1, 7])
def test_values_and_shape_match_numpy(case, batch):
    op, attrs, shapes, reference = case
    g, names = one_op_graph(op, [(s, F) for s in shapes], attrs)
    rng = np.random.default_rng(batch)
    values = [rng.normal(size=concrete(s, batch)) for s in shapes]
    expected = reference(*values)
    assert concrete(g.nodes["y"]["shape"], batch) == expected.shape
    got = run(g, ["y"], batch, dict(zip(names, values)))["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_match_finite_differences(case):
    op, attrs, shapes, _ = case
    batch, rng = 2, np.random.default_rng(3)
    ports = tuple(range(len(shapes)))
    g, names = one_op_graph(op, [(s, F) for s in shapes], attrs, as_params=ports, batch=batch)
    add_op(g, "t", "input", [], shape=g.nodes["y"]["shape"], dtype=F)
    add_op(g, "loss", "mse", ["y", "t"], reduction="sum")
    for n in ("t", "loss"):
        infer_node(g, n)
    params = {n: rng.normal(size=concrete(s, batch)) for n, s in zip(names, shapes)}
    feeds = {"t": rng.normal(size=g.nodes["y"]["shape"])}
    assert gradient_check(g, "loss", params, feeds, batch) <= 1e-6


def test_grouped_convolution_with_fused_bias_and_relu_matches_numpy():
    """conv + bias + relu fuses into one kernel for groups=1; a grouped one runs
    its epilogue after the batched GEMM. Both give the reference's values."""
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 4, 6, 6), dtype=F)
    add_op(g, "w", "input", [], shape=(6, 2, 3, 3), dtype=F)
    add_op(g, "b", "input", [], shape=(6,), dtype=F)
    add_op(g, "c", "conv2d", ["x", "w"], groups=2, padding="same")
    add_op(g, "s", "bias_add", ["c", "b"], axis=1)
    add_op(g, "y", "relu", ["s"])
    g = check_graph(g, ["y"])
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 4, 6, 6)), rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6)
    got = run(g, ["y"], 3, {"x": x, "w": w, "b": b})["y"]
    expected = np.maximum(conv_ref(x, w, pads=(1, 1, 1, 1), groups=2) + b[:, None, None], 0)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_ceil_mode_shape_follows_the_documented_rule():
    """A 5x5 image pooled 2x2 by 2 gives 2x2 windows, 3x3 with ceil_mode; a
    window may not start in the bottom/right padding: 5x5, 3 by 3, pad 1 has
    a third window only in ceil((7 - 3) / 3) + 1 = 3; it would start in the padding."""
    infer = OPS["max_pool2d"].infer
    base = {"strides": None, "padding": "valid", "ceil_mode": False}
    assert infer([(None, 1, 5, 5)], [F], {**base, "pool_size": 2})[0] == (None, 1, 2, 2)
    assert infer([(None, 1, 5, 5)], [F], {**base, "pool_size": 2, "ceil_mode": True})[0] == (None, 1, 3, 3)
    assert infer([(None, 1, 5, 5)], [F], {**base, "pool_size": 3, "strides": 3, "padding": 1,
                                          "ceil_mode": True})[0] == (None, 1, 2, 2)
    assert infer([(None, 1, 4, 4)], [F], {**base, "pool_size": 3, "strides": 2, "padding": 1,
                                          "ceil_mode": True})[0] == (None, 1, 3, 3)


def test_bad_groups_are_named():
    from graphnn import Graph
    g = Graph()
    x = g.input("img", (None, 3, 8, 8))
    with pytest.raises(ValueError, match="groups must be a positive int dividing the 3 input"):
        g.conv2d(x, 4, 3, groups=2)
    assert g.depthwise_conv2d(x, 3, depth_multiplier=2).shape == (None, 6, 6, 6)
