"""The op table drives these tests: every forward op and loss is checked for

- its shape rule against a NumPy reference's output shape, at batch 1 and 7;
- its values against that reference;
- its gradient (through the compiled backward pass) against central finite
  differences in float64, relative error <= 1e-6.

Gradient ops and update ops have no gradient of their own: the former are
checked through these gradient checks, the latter in tests/graphnn/test_optim.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from graphnn.compiler.infer import infer_node
from graphnn.compiler.ir import add_op
from graphnn.compiler.ops import OPS, concrete

from tests.helpers import gradient_check, one_op_graph, run, sample


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _bce(p, t):
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def _windows(x, k, s, d, pads, fill):
    """Every window of x (N, C, H, W) as [(i, j, window)], by plain loops."""
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])), constant_values=fill)
    span = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
    oh, ow = (xp.shape[2] - span[0]) // s[0] + 1, (xp.shape[3] - span[1]) // s[1] + 1
    return oh, ow, [(i, j, xp[:, :, i * s[0]: i * s[0] + span[0]: d[0], j * s[1]: j * s[1] + span[1]: d[1]])
                    for i in range(oh) for j in range(ow)]


def _conv(s=(1, 1), pads=(0, 0, 0, 0), d=(1, 1)):
    def ref(x, w):
        oh, ow, wins = _windows(x, w.shape[2:], s, d, pads, 0.0)
        out = np.zeros((x.shape[0], w.shape[0], oh, ow))
        for i, j, win in wins:
            out[:, :, i, j] = np.einsum("nckl,fckl->nf", win, w)
        return out
    return ref


def _conv_transpose(s=(1, 1), pads=(0, 0), extra=(0, 0)):
    """Scatter-add of every input pixel times the kernel: the textbook definition."""
    def ref(x, w):
        n, _cin, h, wd = x.shape
        _, cout, kh, kw = w.shape
        full = np.zeros((n, cout, (h - 1) * s[0] + kh + extra[0], (wd - 1) * s[1] + kw + extra[1]))
        for i in range(h):
            for j in range(wd):
                full[:, :, i * s[0]:i * s[0] + kh, j * s[1]:j * s[1] + kw] += \
                    np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
        return full[:, :, pads[0]:full.shape[2] - pads[0], pads[1]:full.shape[3] - pads[1]]
    return ref


def _pool(reduce, k, s, pads=(0, 0, 0, 0), fill=0.0):
    def ref(x):
        oh, ow, wins = _windows(x, k, s, (1, 1), pads, fill)
        out = np.zeros((x.shape[0], x.shape[1], oh, ow))
        for i, j, win in wins:
            out[:, :, i, j] = reduce(win, axis=(2, 3))
        return out
    return ref



def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _lstm_stack(*weights):
    """lstm_weights: [W; b; U] with PyTorch's gate columns i, f, g, o (2 units each)
    reordered to i, f, o, g, the sigmoid gates' halved."""
    w = np.concatenate([weights[0], weights[1][None], *weights[2:]])
    return np.concatenate([w[:, :4] / 2, w[:, 6:] / 2, w[:, 4:6]], axis=1)


def _lstm_scan(units=2):
    """Every LSTM step from stacked weights (gates i, f, o, g, sigmoid columns halved:
    i, f, o = sigmoid(2 z'), g = tanh(z')), as the scan's state: the steps' (6U, N)
    blocks [i f o g c_t-1 tanh(c_t)], then the stacks (K', T + 1, N), block t [x_t; 1; h_t-1]
    and block T [0; 1; h_T-1]."""
    def ref(ws, x):
        n, steps, features = x.shape
        stacks = np.zeros((features + 1 + units, steps + 1, n))
        stacks[features] = 1.0
        c, blocks = np.zeros((units, n)), []
        for t in range(steps):
            stacks[:features, t] = x[:, t].T
            z = ws.T @ stacks[:len(ws), t]
            i, f, o, g = (z[k * units:(k + 1) * units] for k in range(4))
            i, f, o, g = _sigmoid(2 * i), _sigmoid(2 * f), _sigmoid(2 * o), np.tanh(g)
            c_prev, c = c, f * c + i * g
            stacks[features + 1:, t + 1] = o * np.tanh(c)
            blocks += [i, f, o, g, c_prev, np.tanh(c)]
        return np.concatenate(blocks + [stacks.reshape(-1, n)])
    return ref


def _gru_stack(w, b, bh, *u):
    """gru_weights: columns r, z (halved), x's n part, h's n part."""
    units, features = w.shape[1] // 3, w.shape[0]
    rows = [np.concatenate([w[:, :2 * units] / 2, w[:, 2 * units:], np.zeros((features, units))], 1),
            np.concatenate([(b[:2 * units] + bh[:2 * units]) / 2, b[2 * units:], bh[2 * units:]])[None]]
    if u:
        rows.append(np.concatenate([u[0][:, :2 * units] / 2, np.zeros((units, units)), u[0][:, 2 * units:]], 1))
    return np.concatenate(rows)


def _gru_cell(step, units=2):
    """One GRU step from stacked weights: r, z = sigmoid(2 z'), n = tanh(a + r b'),
    h = (1 - z) n + z h_prev, as a (5U, N) state [r z n b' h]."""
    def ref(gs, x, prev=None):
        inputs = [x[:, step, :].T, np.ones((1, len(x)))] + ([prev[4 * units:]] if prev is not None else [])
        stack = np.concatenate(inputs)
        v = gs[:len(stack)].T @ stack
        r, z, a, b = (v[k * units:(k + 1) * units] for k in range(4))
        r, z = _sigmoid(2 * r), _sigmoid(2 * z)
        n = np.tanh(a + r * b)
        h = (1 - z) * n + (z * prev[4 * units:] if prev is not None else 0)
        return np.concatenate([r, z, n, b, h])
    return ref


F = "float64"
# op, attrs, operands [(shape, dtype, sampler)], reference, differentiable operand ports
CASES = [
    ("matmul", {}, [((None, 3), F, "normal"), ((3, 5), F, "normal")], lambda a, b: a @ b, (0, 1)),
    ("matmul", {"transpose_a": True}, [((4, 3), F, "normal"), ((4, 5), F, "normal")],
     lambda a, b: a.T @ b, (0, 1)),
    ("matmul", {"transpose_b": True}, [((None, 3), F, "normal"), ((5, 3), F, "normal")],
     lambda a, b: a @ b.T, (0, 1)),
    ("matmul", {"transpose_a": True, "transpose_b": True},
     [((3, 4), F, "normal"), ((5, 3), F, "normal")], lambda a, b: a.T @ b.T, (0, 1)),
    ("bias_add", {}, [((None, 5), F, "normal"), ((5,), F, "normal")], lambda x, b: x + b, (0, 1)),
    ("bias_add", {"axis": 1}, [((None, 3, 4), F, "normal"), ((3,), F, "normal")],
     lambda x, b: x + b[:, None], (0, 1)),
    ("add", {}, [((None, 4), F, "normal"), ((None, 4), F, "normal")], np.add, (0, 1)),
    ("add", {}, [((None, 2, 4), F, "normal"), ((4,), F, "normal")], np.add, (0, 1)),
    ("add_n", {}, [((None, 4), F, "normal")] * 3, lambda a, b, c: a + b + c, (0, 1, 2)),
    ("multiply", {}, [((None, 4), F, "normal"), ((None, 4), F, "normal")], np.multiply, (0, 1)),
    ("subtract", {}, [((None, 2, 4), F, "normal"), ((4,), F, "normal")], np.subtract, (0, 1)),
    ("scale", {"factor": -2.5}, [((None, 3), F, "normal")], lambda x: -2.5 * x, (0,)),
    ("matmul", {}, [((None, 5, 3), F, "normal"), ((3, 4), F, "normal")], lambda a, b: a @ b, (0, 1)),
    ("multiply", {}, [((None, 2, 4), F, "normal"), ((4,), F, "normal")], np.multiply, (0, 1)),
    ("concat", {"axis": 1}, [((None, 2, 3), F, "normal"), ((None, 4, 3), F, "normal")],
     lambda a, b: np.concatenate([a, b], 1), (0, 1)),
    ("concat", {"axis": -1}, [((None, 2), F, "normal")] * 3, lambda *xs: np.concatenate(xs, -1), (0, 1, 2)),
    ("slice", {"axis": 1, "start": 1, "stop": 3}, [((None, 4, 2), F, "normal")], lambda x: x[:, 1:3], (0,)),
    ("transpose", {"perm": [0, 2, 1]}, [((None, 3, 5), F, "normal")], lambda x: x.transpose(0, 2, 1), (0,)),
    ("embedding", {}, [((None, 3), "int64", "labels:6"), ((6, 4), F, "normal")],
     lambda ids, table: table[ids], (1,)),
    ("linear", {}, [((None, 3), F, "normal")], lambda x: x, (0,)),
    ("relu", {}, [((None, 3, 2), F, "away0")], lambda x: np.maximum(x, 0), (0,)),
    ("leaky_relu", {"alpha": 0.2}, [((None, 5), F, "away0")],
     lambda x: np.where(x > 0, x, 0.2 * x), (0,)),
    ("tanh", {}, [((None, 5), F, "normal")], np.tanh, (0,)),
    ("sigmoid", {}, [((None, 5), F, "normal")], lambda x: 1 / (1 + np.exp(-x)), (0,)),
    ("softplus", {}, [((None, 5), F, "normal")], lambda x: np.log1p(np.exp(x)), (0,)),
    ("elu", {"alpha": 0.7}, [((None, 5), F, "away0")], lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), (0,)),
    ("swish", {}, [((None, 5), F, "normal")], lambda x: x / (1 + np.exp(-x)), (0,)),
    ("gelu", {}, [((None, 5), F, "normal")],
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), (0,)),
    ("hardswish", {}, [((None, 6), F, "wide")], lambda x: x * np.clip(x + 3, 0, 6) / 6, (0,)),
    ("log_softmax", {}, [((None, 6), F, "normal")], lambda x: np.log(_softmax(x)), (0,)),
    ("log_softmax", {"axis": 1}, [((None, 4, 3), F, "normal")], lambda x: np.log(_softmax(x, 1)), (0,)),
    ("softmax", {}, [((None, 6), F, "normal")], _softmax, (0,)),
    ("softmax", {"axis": 1}, [((None, 4, 3), F, "normal")], lambda x: _softmax(x, 1), (0,)),
    ("flatten", {}, [((None, 2, 3), F, "normal")], lambda x: x.reshape(len(x), -1), (0,)),
    ("reshape", {"shape": (None, 3, 2)}, [((None, 6), F, "normal")],
     lambda x: x.reshape(len(x), 3, 2), (0,)),
    ("conv2d", {}, [((None, 2, 5, 6), F, "normal"), ((3, 2, 3, 2), F, "normal")], _conv(), (0, 1)),
    ("conv2d", {"strides": 2, "padding": "same"},
     [((None, 2, 7, 7), F, "normal"), ((3, 2, 3, 3), F, "normal")], _conv((2, 2), (1, 1, 1, 1)), (0, 1)),
    ("conv2d", {"dilation": 2, "padding": (1, 0), "strides": (1, 2)},
     [((None, 1, 7, 6), F, "normal"), ((2, 1, 3, 2), F, "normal")],
     _conv((1, 2), (1, 1, 0, 0), (2, 2)), (0, 1)),
    ("conv_transpose2d", {}, [((None, 2, 3, 4), F, "normal"), ((2, 3, 2, 3), F, "normal")],
     _conv_transpose(), (0, 1)),
    ("conv_transpose2d", {"strides": 2, "padding": 1, "output_padding": 1},
     [((None, 2, 3, 3), F, "normal"), ((2, 2, 3, 3), F, "normal")],
     _conv_transpose((2, 2), (1, 1), (1, 1)), (0, 1)),
    ("upsample2d", {"factor": (2, 3)}, [((None, 2, 3, 2), F, "normal")],
     lambda x: x.repeat(2, axis=2).repeat(3, axis=3), (0,)),
    ("max_pool2d", {"pool_size": 2}, [((None, 2, 4, 6), F, "normal")], _pool(np.max, (2, 2), (2, 2)), (0,)),
    ("max_pool2d", {"pool_size": 3, "strides": 1, "padding": "same"}, [((None, 2, 4, 5), F, "normal")],
     _pool(np.max, (3, 3), (1, 1), (1, 1, 1, 1), -np.inf), (0,)),
    ("avg_pool2d", {"pool_size": 2}, [((None, 3, 4, 4), F, "normal")], _pool(np.mean, (2, 2), (2, 2)), (0,)),
    ("avg_pool2d", {"pool_size": 3, "strides": 2, "padding": 1}, [((None, 2, 5, 6), F, "normal")],
     _pool(np.mean, (3, 3), (2, 2), (1, 1, 1, 1)), (0,)),
    ("global_avg_pool", {}, [((None, 3, 4, 5), F, "normal")], lambda x: x.mean(axis=(2, 3)), (0,)),
    ("mse", {}, [((None, 4), F, "normal"), ((None, 4), F, "normal")],
     lambda p, t: np.mean((p - t) ** 2), (0,)),
    ("mse", {"reduction": "sum"}, [((None, 4), F, "normal"), ((None, 4), F, "normal")],
     lambda p, t: np.sum((p - t) ** 2), (0,)),
    ("mse", {}, [((None, 4), F, "normal"), ((None, 4), F, "normal"), ((None,), F, "prob")],
     lambda p, t, w: np.sum(w[:, None] * (p - t) ** 2) / p.size, (0,)),
    ("softmax_cross_entropy", {}, [((None, 5), F, "normal"), ((None,), "int64", "labels:5"),
                                   ((None,), F, "prob")],
     lambda z, y, w: -np.sum(w * _log_softmax(z)[np.arange(len(y)), y]) / len(y), (0,)),
    ("binary_cross_entropy", {"from_logits": True, "reduction": "sum"},
     [((None, 3), F, "normal"), ((None, 3), F, "prob"), ((None,), F, "prob")],
     lambda z, t, w: np.sum(w[:, None] * _bce(1 / (1 + np.exp(-z)), t)), (0,)),
    ("l1", {}, [((None, 4), F, "away0"), ((None, 4), F, "zeros")],
     lambda p, t: np.mean(np.abs(p - t)), (0,)),
    ("softmax_cross_entropy", {}, [((None, 5), F, "normal"), ((None,), "int64", "labels:5")],
     lambda z, y: -np.mean(_log_softmax(z)[np.arange(len(y)), y]), (0,)),
    ("softmax_cross_entropy", {"reduction": "sum"},
     [((None, 5), F, "normal"), ((None, 5), F, "onehot:5")],
     lambda z, t: -np.sum(t * _log_softmax(z)), (0,)),
    ("l2_penalty", {"scale": 0.3}, [((3, 4), F, "normal")], lambda w: 0.3 * np.sum(w * w), (0,)),
    ("exp", {}, [((None, 4), F, "normal")], np.exp, (0,)),
    ("batch_mean", {"axis": 1}, [((None, 3, 2, 2), F, "normal")], lambda x: x.mean(axis=(0, 2, 3)), (0,)),
    ("batch_var", {"axis": -1}, [((None, 4), F, "normal"), ((4,), F, "normal")],
     lambda x, m: ((x - m) ** 2).mean(axis=0), (0, 1)),
    ("normalize", {"axis": 1, "eps": 0.01},
     [((None, 3, 2), F, "normal"), ((3,), F, "normal"), ((3,), F, "prob"), ((3,), F, "normal"),
      ((3,), F, "normal")],
     lambda x, m, v, g, b: g[:, None] * (x - m[:, None]) / np.sqrt(v[:, None] + 0.01) + b[:, None],
     (0, 1, 2, 3, 4)),
    ("kl_divergence", {}, [((None, 4), F, "prob"), ((None, 4), F, "prob")],
     lambda p, t: np.mean(np.sum(t * np.log(t / p), axis=1)), (0,)),
    ("gaussian_kl", {"scale": 0.5}, [((None, 3), F, "normal"), ((None, 3), F, "normal")],
     lambda m, lv: 0.5 * np.mean(-0.5 * np.sum(1 + lv - m ** 2 - np.exp(lv), axis=1)), (0, 1)),
    ("l1_penalty", {"scale": 0.2}, [((5,), F, "away0")], lambda w: 0.2 * np.sum(np.abs(w)), (0,)),
    ("cross_entropy", {}, [((None, 4), F, "prob"), ((None,), "int64", "labels:4")],
     lambda p, y: -np.mean(np.log(p[np.arange(len(y)), y])), (0,)),
    ("cross_entropy", {"reduction": "sum"}, [((None, 4), F, "prob"), ((None, 4), F, "onehot:4")],
     lambda p, t: -np.sum(t * np.log(p)), (0,)),
    ("binary_cross_entropy", {}, [((None, 3), F, "prob"), ((None, 3), F, "prob")],
     lambda p, t: np.mean(_bce(p, t)), (0,)),
    ("binary_cross_entropy", {"from_logits": True}, [((None, 3), F, "normal"), ((None, 3), F, "prob")],
     lambda z, t: np.mean(_bce(1 / (1 + np.exp(-z)), t)), (0,)),
    ("reduce_sum", {"axes": [1, -1]}, [((None, 3, 2, 4), F, "normal")],
     lambda x: x.sum(axis=(1, 3), keepdims=True), (0,)),
    ("reduce_sum", {"axes": None, "keepdims": False}, [((None, 3), F, "normal")], np.sum, (0,)),
    ("reduce_max", {"axes": [2], "keepdims": False}, [((None, 2, 5), F, "normal")],
     lambda x: x.max(axis=2), (0,)),
    ("reduce_max", {"axes": [0, 1]}, [((None, 4), F, "normal")], lambda x: x.max(keepdims=True), (0,)),
    ("divide", {}, [((None, 2, 3), F, "normal"), ((3,), F, "prob")], np.divide, (0, 1)),
    ("log", {}, [((None, 4), F, "prob")], np.log, (0,)),
    ("one_hot", {"classes": 4, "dtype": F}, [((None, 3), "int64", "labels:6")],
     lambda ids: (ids[..., None] == np.arange(4)).astype(F), ()),
    ("compare", {"relation": "less", "dtype": F}, [((None, 4), F, "normal"), ((4,), F, "normal")],
     lambda a, b: (a < b).astype(F), ()),
    ("compare", {"relation": "greater_equal", "dtype": F}, [((None, 4), F, "normal"), ((), F, "normal")],
     lambda a, b: (a >= b).astype(F), ()),
    ("compare", {"relation": "equal", "dtype": F}, [((None, 3), "int64", "labels:3"), ((3,), "int64", "labels:3")],
     lambda a, b: (a == b).astype(F), ()),
    ("where", {}, [((None, 4), "float32", "onehot:4"), ((None, 4), F, "normal"), ((4,), F, "normal")],
     lambda c, a, b: np.where(c != 0, a, b), (1, 2)),
    ("where", {}, [((None, 1), "float32", "onehot:1"), ((), F, "normal"), ((None, 3), F, "normal")],
     lambda c, a, b: np.where(c != 0, a, b), (1, 2)),
    ("erf", {}, [((None, 5), F, "wide")], np.vectorize(math.erf), (0,)),
    ("gather_elements", {"axis": 1}, [((None, 5), F, "normal"), ((None, 7), "int64", "labels:5")],
     lambda x, i: np.take_along_axis(x, i, 1), (0,)),
    ("gather_elements", {"axis": 0}, [((None, 3, 2), F, "normal"), ((1, 3, 2), "int64", "labels:1")],
     lambda x, i: np.take_along_axis(x, i, 0), (0,)),
    ("lstm_weights", {}, [((3, 8), F, "normal"), ((8,), F, "normal"), ((2, 8), F, "normal")],
     _lstm_stack, (0, 1, 2)),
    ("lstm_weights", {}, [((3, 8), F, "normal"), ((8,), F, "normal")],
     _lstm_stack, (0, 1)),
    ("lstm_scan", {}, [((4, 8), F, "normal"), ((None, 1, 3), F, "normal")], _lstm_scan(), (0, 1)),
    ("lstm_scan", {}, [((6, 8), F, "normal"), ((None, 3, 3), F, "normal")], _lstm_scan(), (0, 1)),
    # a scan state is feature-major, (T 6U + (T + 1) K', N): 3 steps, 2 units, 3 features
    ("lstm_last", {"steps": 3, "units": 2}, [((60, 5), F, "normal")],
     lambda s: s[36:].reshape(6, 4, 5)[4:, 3].T, (0,)),
    ("lstm_sequence", {"steps": 3, "units": 2}, [((60, 5), F, "normal")],
     lambda s: s[36:].reshape(6, 4, 5)[4:, 1:].transpose(2, 1, 0), (0,)),
    ("gru_weights", {}, [((3, 6), F, "normal"), ((6,), F, "normal"), ((6,), F, "normal"),
                         ((2, 6), F, "normal")], _gru_stack, (0, 1, 2, 3)),
    ("gru_weights", {}, [((3, 6), F, "normal"), ((6,), F, "normal"), ((6,), F, "normal")],
     _gru_stack, (0, 1, 2)),
    ("gru_cell", {"step": 0}, [((4, 8), F, "normal"), ((None, 2, 3), F, "normal")], _gru_cell(0), (0, 1)),
    ("gru_cell", {"step": 2}, [((6, 8), F, "normal"), ((None, 3, 3), F, "normal")], _gru_cell(2), (0, 1)),
    ("gru_cell", {"step": 1}, [((6, 8), F, "normal"), ((5, 3, 3), F, "normal"),
                               ((10, 5), F, "normal")], _gru_cell(1), (0, 1, 2)),
    ("gru_last", {}, [((10, 5), F, "normal")], lambda s: s[8:].T, (0,)),
    ("gru_sequence", {}, [((10, 5), F, "normal")] * 3,
     lambda *s: np.stack([v[8:].T for v in s], axis=1), (0, 1, 2)),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


def _values(operands, batch, rng):
    out = []
    for shape, dtype, kind in operands:
        shape = concrete(shape, batch)
        value = np.zeros(shape) if kind == "zeros" else sample(kind, shape, rng)
        out.append(value.astype(dtype))
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("batch", [1, 7])
def test_shape_rule_and_values_match_numpy(case, batch):
    op, attrs, operands, reference, _ = case
    g, names = one_op_graph(op, [(s, d) for s, d, _ in operands], attrs)
    values = _values(operands, batch, np.random.default_rng(batch))
    expected = np.asarray(reference(*values))
    assert concrete(g.nodes["y"]["shape"], batch) == expected.shape
    got = run(g, ["y"], batch, dict(zip(names, values)))["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_matches_finite_differences(case):
    op, attrs, operands, _, diff = case
    batch, rng = 3, np.random.default_rng(42)
    g, names = one_op_graph(op, [(s, d) for s, d, _ in operands], attrs, as_params=diff, batch=batch)
    values = dict(zip(names, _values(operands, batch, rng)))
    loss = "y"
    feeds = {n: v for i, (n, v) in enumerate(values.items()) if i not in diff}
    if g.nodes["y"]["shape"] != ():
        # Not a loss itself: reduce it to a scalar with an MSE against a fixed target.
        add_op(g, "t", "input", [], shape=g.nodes["y"]["shape"], dtype=F)
        add_op(g, "loss", "mse", ["y", "t"], reduction="sum")
        for n in ("t", "loss"):
            infer_node(g, n)
        feeds["t"] = rng.normal(size=concrete(g.nodes["y"]["shape"], batch))
        loss = "loss"
    params = {n: v for i, (n, v) in enumerate(values.items()) if i in diff}
    assert gradient_check(g, loss, params, feeds, batch) <= 1e-6


def test_where_never_reads_the_branch_it_does_not_take():
    """inf and NaN in the unselected branch stay out (a * c + b * (1 - c) would give NaN)."""
    g, names = one_op_graph("where", [((3,), "float32"), ((3,), F), ((3,), F)], {})
    feeds = dict(zip(names, [np.array([1, 0, 1], "float32"), np.array([np.inf, np.nan, 2.0]),
                             np.array([np.nan, -np.inf, 5.0])]))
    np.testing.assert_array_equal(run(g, ["y"], 1, feeds)["y"], [np.inf, -np.inf, 2.0])


def test_gather_elements_counts_negative_indices_from_the_end():
    g, names = one_op_graph("gather_elements", [((2, 3), F), ((2, 2), "int64")], {"axis": 1})
    x = np.arange(6.0).reshape(2, 3)
    got = run(g, ["y"], 1, dict(zip(names, [x, np.array([[-1, 0], [-3, 2]])])))["y"]
    np.testing.assert_array_equal(got, [[2.0, 0.0], [3.0, 5.0]])


@pytest.mark.parametrize("op, reference", [("add", np.add), ("subtract", np.subtract),
                                           ("multiply", np.multiply)])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "int64"])
def test_integer_arithmetic_keeps_its_dtype_and_wraps_as_numpy_does(op, reference, dtype):
    g, names = one_op_graph(op, [((None, 3), dtype), ((3,), dtype)], {})
    assert g.nodes["y"]["dtype"] == dtype
    info = np.iinfo(dtype)
    a = np.array([[info.max, info.min, 7], [3, 200 % info.max, 0]], dtype=dtype)
    b = np.array([1, 1, 9], dtype=dtype)
    got = run(g, ["y"], 2, dict(zip(names, [a, b])))["y"]
    with np.errstate(over="ignore"):
        expected = reference(a, b)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)


def test_mixed_integer_and_float_operands_are_refused():
    from graphnn.compiler.errors import GraphError, OpShapeError
    with pytest.raises((GraphError, OpShapeError), match="dtypes differ"):
        one_op_graph("add", [((None, 3), "int64"), ((3,), F)], {})


def test_every_op_is_covered():
    """A new op must join this table (or be a source, gradient or update op,
    which are covered elsewhere)."""
    covered = {c[0] for c in CASES} | {n for n, o in OPS.items() if o.stateful}   # random: tested apart
    forward = {n for n, o in OPS.items() if o.kind in ("compute", "loss")}   # not "lowered"
    assert forward - covered == set()
    for name, op in OPS.items():
        if op.kind in ("compute", "loss"):
            assert op.vjp is not None, f"{name} has no VJP"


def test_every_op_runs_as_a_kernel_a_view_or_through_lowering():
    from graphnn.runtime.kernels import KERNELS
    for name, op in OPS.items():
        if op.kind != "source" and not op.view and not op.extra_output and op.lower is None:
            assert op.kernel == name, f"{name}: runs no kernel, is no view and has no lower hook"
        if op.kernel is not None:
            assert op.kernel in KERNELS, f"{name}: kernel {op.kernel!r} missing from the runtime"


def test_every_op_agrees_with_the_kernel_it_names():
    """Checked when the op table is imported (compiler/ops/__init__.py); here it
    is shown to catch a record whose operand count its kernel does not read."""
    from graphnn.compiler.ops import OpDef, kernel_problems
    assert kernel_problems() == []
    wrong = OpDef("relu", 2, lambda s, d, a: (s[0], d[0]))
    missing = OpDef("no_such_op", 1, lambda s, d, a: (s[0], d[0]))
    assert kernel_problems({"relu": wrong, "no_such_op": missing}) == [
        "op 'relu' takes 2 operand(s), its kernel declares 1",
        "op 'no_such_op': kernel 'no_such_op' is not in the runtime"]


def test_a_kernel_that_does_not_take_the_scratch_it_declares_fails_at_import():
    from graphnn.runtime.kernels.base import kernel
    with pytest.raises(TypeError, match="declares scratch \\['t'\\] but takes keyword-only parameters \\[\\]"):
        @kernel(operands=1, scratch={"t": ("out", "same")}, register=False)
        def positional(ins, outs):      # would unpack (y, t) = outs by position
            return lambda: None
