"""Activations, dense, embedding, batch normalization and the shape ops against
PyTorch: forward and gradients in float64.

Conventions mapped here:
- gelu is the tanh form (PyTorch's ``approximate="tanh"``); swish is SiLU.
- Batch norm follows Keras: running = momentum running + (1 - momentum) batch
  with momentum 0.99 and eps 1e-3 by default, where PyTorch writes
  running = (1 - momentum) running + momentum batch with momentum 0.1 and eps 1e-5.
  So graphnn's momentum m is PyTorch's 1 - m. And the running variance is fed
  the biased batch variance (divided by M, as Keras does), where PyTorch feeds the
  unbiased one (divided by M - 1); the normalization itself uses the biased one
  in both.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")
F = torch.nn.functional

from graphnn import Graph  # noqa: E402
from tests.parity.harness import check_against_torch, compare, graphnn_run, rng_for  # noqa: E402

ACTIVATIONS = {
    "relu": ({}, lambda x: F.relu(x)),
    "leaky_relu": ({"alpha": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    "leaky_relu_default": ({}, lambda x: F.leaky_relu(x, 0.01)),
    "elu": ({"alpha": 0.7}, lambda x: F.elu(x, 0.7)),
    "elu_default": ({}, lambda x: F.elu(x, 1.0)),
    "tanh": ({}, lambda x: torch.tanh(x)),
    "sigmoid": ({}, lambda x: torch.sigmoid(x)),
    "softplus": ({}, lambda x: F.softplus(x)),
    "swish": ({}, lambda x: F.silu(x)),
    "gelu": ({}, lambda x: F.gelu(x, approximate="tanh")),
    "exp": ({}, lambda x: torch.exp(x)),
    "linear": ({}, lambda x: x * 1.0),
    "softmax": ({}, lambda x: F.softmax(x, -1)),
    "log_softmax": ({}, lambda x: F.log_softmax(x, -1)),
}
SCALES = {"unit": 1.0, "wide": 12.0}       # wide: deep in the tails (softplus, sigmoid, softmax)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name, scale):
    case = f"{name} {scale}"
    rng = rng_for(case)
    attrs, torch_fn = ACTIVATIONS[name]
    # away from 0, where relu-like kinks have no single derivative
    x = rng.choice([-1.0, 1.0], size=(4, 6)) * rng.uniform(0.05, 1.0, size=(4, 6)) * SCALES[scale]
    if name == "exp":
        x = np.clip(x, -30, 30)
    g = Graph(dtype="float64")
    y = getattr(g, name.replace("_default", ""))(g.input("x", (None, 6)), **attrs)
    check_against_torch(case, g, y, torch_fn, {"x": x}, wrt=("x",), rng=rng)


@pytest.mark.parametrize("axis", [1, 2, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis(name, axis):
    case = f"{name} axis={axis}"
    rng = rng_for(case)
    g = Graph(dtype="float64")
    y = getattr(g, name)(g.input("x", (None, 3, 5)), axis=axis)
    fn = F.softmax if name == "softmax" else F.log_softmax
    check_against_torch(case, g, y, lambda x: fn(x, axis), {"x": rng.normal(size=(2, 3, 5))},
                        wrt=("x",), rng=rng)


@pytest.mark.parametrize("activation, use_bias", list(itertools.product(
    [None, "relu", "tanh", "sigmoid", "softmax", "gelu"], [True, False])))
def test_dense(activation, use_bias):
    case = f"dense {activation} bias={use_bias}"
    rng = rng_for(case)
    x, w, b = rng.normal(size=(5, 7)), rng.normal(size=(7, 4)), rng.normal(size=4)
    torch_act = {None: lambda v: v, "relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "softmax": lambda v: F.softmax(v, -1),
                 "gelu": lambda v: F.gelu(v, approximate="tanh")}[activation]
    g = Graph(dtype="float64")
    y = g.dense(g.input("x", (None, 7)), 4, activation=activation, use_bias=use_bias, name="fc")
    values, names = {"x": x, "w": w}, {"w": "fc/W", "b": "fc/b"}
    if use_bias:
        values["b"] = b
    # graphnn keeps W as (in, out), PyTorch's Linear as (out, in): W.T
    check_against_torch(case, g, y, lambda x, w, b=None: torch_act(F.linear(x, w.T, b)), values,
                        wrt=tuple(values), rng=rng, graph_names=names)


def test_embedding():
    rng = rng_for("embedding")
    ids = rng.integers(0, 6, size=(4, 9))           # 36 lookups in 6 rows: repeats accumulate
    table = rng.normal(size=(6, 3))
    g = Graph(dtype="float64")
    y = g.embedding(g.input("ids", (None, 9), dtype="int64"), 6, 3, name="emb")
    check_against_torch("embedding", g, y, lambda ids, table: F.embedding(ids, table),
                        {"ids": ids, "table": table}, wrt=("table",), rng=rng,
                        graph_names={"table": "emb/table"})


SHAPE_OPS = {   # name: (operands, graphnn builder, PyTorch)
    "add": (2, lambda g, a, b: g.add(a, b), lambda a, b: a + b),
    "add_broadcast": (2, lambda g, a, b: g.add(a, g.slice(b, 0, 1, axis=1)), lambda a, b: a + b[:, 0:1]),
    "multiply": (2, lambda g, a, b: g.multiply(a, b), lambda a, b: a * b),
    "subtract": (2, lambda g, a, b: g.op("subtract", [a, b]), lambda a, b: a - b),
    "concat": (2, lambda g, a, b: g.concat(a, b, axis=1), lambda a, b: torch.cat([a, b], 1)),
    "concat_last": (2, lambda g, a, b: g.concat(a, b), lambda a, b: torch.cat([a, b], -1)),
    "scale": (1, lambda g, a: g.op("scale", [a], factor=-2.5), lambda a: -2.5 * a),
    "slice": (1, lambda g, a: g.slice(a, 1, 3, axis=2), lambda a: a[:, :, 1:3]),
    "transpose": (1, lambda g, a: g.transpose(a, (0, 2, 1)), lambda a: a.transpose(1, 2)),
    "flatten": (1, lambda g, a: g.flatten(a), lambda a: a.flatten(1)),
    "reshape": (1, lambda g, a: g.reshape(a, (4, 3)), lambda a: a.reshape(-1, 4, 3)),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_elementwise_and_shape_ops(name):
    rng = rng_for(name)
    arity, build, torch_fn = SHAPE_OPS[name]
    g = Graph(dtype="float64")
    names = ("a", "b")[:arity]
    y = build(g, *[g.input(n, (None, 3, 4)) for n in names])
    values = {n: rng.normal(size=(2, 3, 4)) for n in names}
    check_against_torch(name, g, y, torch_fn, values, wrt=names, rng=rng)


@pytest.mark.parametrize("transpose_a, transpose_b", list(itertools.product([False, True], repeat=2)))
def test_matmul(transpose_a, transpose_b):
    case = f"matmul ta={transpose_a} tb={transpose_b}"
    rng = rng_for(case)
    g = Graph(dtype="float64")
    a = g.param("a", (3, 4) if transpose_a else (4, 3))
    b = g.param("b", (5, 3) if transpose_b else (3, 5))
    y = g.op("matmul", [a, b], transpose_a=transpose_a, transpose_b=transpose_b)
    values = {"a": rng.normal(size=(3, 4) if transpose_a else (4, 3)),
              "b": rng.normal(size=(5, 3) if transpose_b else (3, 5))}
    check_against_torch(case, g, y, lambda a, b: (a.T if transpose_a else a) @ (b.T if transpose_b else b),
                        values, wrt=("a", "b"), rng=rng)


@pytest.mark.parametrize("factor", [2, (2, 3)])
def test_upsample2d(factor):
    rng = rng_for(f"upsample {factor}")
    g = Graph(dtype="float64")
    y = g.upsample2d(g.input("x", (None, 2, 3, 4)), factor)
    sf = (factor, factor) if isinstance(factor, int) else factor
    check_against_torch(f"upsample2d {factor}", g, y,
                        lambda x: F.interpolate(x, scale_factor=sf, mode="nearest"),
                        {"x": rng.normal(size=(2, 2, 3, 4))}, wrt=("x",), rng=rng)


# ------------------------------------------------------------------ batch norm

BN_SHAPES = {"features": (6, 5), "images": (4, 3, 5, 4)}


@pytest.mark.parametrize("momentum, eps", [(0.99, 1e-3), (0.9, 1e-5)])
@pytest.mark.parametrize("layout", BN_SHAPES)
def test_batch_norm_training(layout, momentum, eps):
    """Batch statistics, gradients of x, gamma and beta, and the running averages
    (momentum mapped to PyTorch's 1 - momentum, the variance to its biased form)."""
    case = f"batch_norm train {layout} m={momentum} eps={eps}"
    rng = rng_for(case)
    shape = BN_SHAPES[layout]
    c = shape[1]
    x = rng.normal(loc=0.5, scale=2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, size=c), rng.normal(size=c)
    mean0, var0 = rng.normal(size=c), rng.uniform(0.5, 2.0, size=c)
    target = rng.normal(size=shape)

    tx, tg, tb = (torch.tensor(v, requires_grad=True) for v in (x, gamma, beta))
    t_mean, t_var = torch.tensor(mean0), torch.tensor(var0)
    y_t = F.batch_norm(tx, t_mean, t_var, tg, tb, training=True, momentum=1 - momentum, eps=eps)
    ((y_t - torch.tensor(target)) ** 2).sum().backward()
    m = x.size // c
    # PyTorch fed the unbiased variance; undo its update to recover it, then map it to
    # the biased one that graphnn (like Keras) feeds
    unbiased = (t_var.numpy() - momentum * var0) / (1 - momentum)
    want_var = momentum * var0 + (1 - momentum) * unbiased * (m - 1) / m

    g = Graph(dtype="float64")
    y = g.batch_norm(g.input("x", (None, *shape[1:])), axis=1, momentum=momentum, eps=eps, name="bn")
    values = {"x": x, "bn/gamma": gamma, "bn/beta": beta, "bn/running_mean": mean0,
              "bn/running_var": var0}
    got, grads, variables = graphnn_run(g, y, values, wrt=("x", "bn/gamma", "bn/beta"), target=target)
    compare(case, {"output": (got, y_t.detach().numpy()), "d/dx": (grads["x"], tx.grad.numpy()),
                   "d/dgamma": (grads["bn/gamma"], tg.grad.numpy()),
                   "d/dbeta": (grads["bn/beta"], tb.grad.numpy()),
                   "running mean": (variables["bn/running_mean"], t_mean.numpy()),
                   "running variance": (variables["bn/running_var"], want_var)})


@pytest.mark.parametrize("after", ["input", "dense", "conv2d"])
def test_batch_norm_inference(after):
    """Evaluation normalizes with the running statistics, folded into a dense or
    convolution before the layer when there is one."""
    case = f"batch_norm eval after {after}"
    rng = rng_for(case)
    g = Graph(dtype="float64")
    if after == "conv2d":
        x_shape, c = (3, 2, 5, 5), 4
        h = g.conv2d(g.input("x", (None, 2, 5, 5)), c, 3, name="layer")
        w = rng.normal(size=(c, 2, 3, 3))

        def layer(x, w, b):
            return F.conv2d(x, w, b)
    elif after == "dense":
        x_shape, c = (5, 6), 4
        h = g.dense(g.input("x", (None, 6)), c, name="layer")
        w = rng.normal(size=(6, c))

        def layer(x, w, b):
            return F.linear(x, w.T, b)
    else:
        x_shape, c = (5, 4, 3), 4
        h = g.input("x", (None, 4, 3))
    y = g.batch_norm(h, axis=1, name="bn")
    values = {"x": rng.normal(size=x_shape), "bn/gamma": rng.uniform(0.5, 1.5, c),
              "bn/beta": rng.normal(size=c), "bn/running_mean": rng.normal(size=c),
              "bn/running_var": rng.uniform(0.5, 2.0, c)}
    t = {k: torch.tensor(v) for k, v in values.items()}
    z = t["x"]
    if after != "input":
        values.update({"layer/W": w, "layer/b": rng.normal(size=c)})
        z = layer(t["x"], torch.tensor(w), torch.tensor(values["layer/b"]))
    want = F.batch_norm(z, t["bn/running_mean"], t["bn/running_var"], t["bn/gamma"], t["bn/beta"],
                        training=False, eps=1e-3)
    got, _, _ = graphnn_run(g, y, values, mode="eval")
    compare(case, {"output": (got, want.numpy())})
