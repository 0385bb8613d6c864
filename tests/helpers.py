"""Shared test helpers: build one-op graphs, run them, check gradients numerically."""
from __future__ import annotations

import os

import numpy as np
from graphnn.compiler.autodiff import differentiate
from graphnn.compiler.ir import add_op, new_graph
from graphnn.compiler.pipeline import build_program, check_graph
from graphnn.runtime import Executor

SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
MNIST_DIR = os.path.join(SHARED_DATA, "mnist")


def sample(kind: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Operand values: 'normal', 'away0' (|x| >= 0.2, clear of kinks at 0),
    'wide' (in [-5, 5], at least 0.1 from 0 and +-3, the kinks of hard activations),
    'prob' (in [0.1, 0.9]), 'labels:K' (ints in 0..K-1), 'onehot:K'."""
    if kind == "normal":
        return rng.normal(size=shape)
    if kind == "wide":
        x = rng.uniform(-5.0, 5.0, size=shape)
        kink = np.round(x / 3.0) * 3.0                   # the nearest of -6, -3, 0, 3, 6
        near = np.abs(x - kink) < 0.1
        return np.where(near, kink + np.where(x >= kink, 0.2, -0.2), x)
    if kind == "away0":
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)
    if kind == "prob":
        return rng.uniform(0.1, 0.9, size=shape)
    if kind.startswith("labels:"):
        return rng.integers(0, int(kind[7:]), size=shape)
    if kind.startswith("onehot:"):
        k = int(kind[7:])
        return np.eye(k)[rng.integers(0, k, size=shape[:-1])]
    raise ValueError(kind)


def one_op_graph(op: str, operands: list, attrs: dict, *, as_params: tuple = (), batch=None):
    """A graph x0..xk -> op. ``operands`` are (shape, dtype) pairs; operand i is a
    param node when i is in ``as_params``. With ``batch``, every shape is made
    concrete (params cannot carry the batch symbol)."""
    g = new_graph()
    names = []
    for i, (shape, dtype) in enumerate(operands):
        name = f"x{i}"
        if batch is not None:
            shape = tuple(batch if d is None else d for d in shape)
        if i in as_params:
            add_op(g, name, "param", [], shape=shape, dtype=dtype, init="zeros", trainable=True)
        else:
            add_op(g, name, "input", [], shape=tuple(shape), dtype=dtype)
        names.append(name)
    if batch is not None and "shape" in attrs:
        attrs = {**attrs, "shape": tuple(batch if d is None else d for d in attrs["shape"])}
    add_op(g, "y", op, names, **attrs)
    return check_graph(g, ["y"]), names


def run(g, outputs: list, batch: int, feeds: dict, variables: dict | None = None) -> dict:
    """Compile ``outputs`` of ``g`` at ``batch`` and run once; copies of the outputs."""
    ex = Executor(build_program(g, outputs, batch), variables)
    return {k: np.array(v) for k, v in ex.run(feeds).items()}


def gradient_check(g, loss: str, params: dict, feeds: dict, batch: int, h: float = 1e-6):
    """Largest relative error between the compiled gradients of ``loss`` with
    respect to ``params`` (name -> float64 value) and central finite differences."""
    g2, grads = differentiate(g, loss, list(params))
    variables = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    analytic = run(g2, [loss, *grads.values()], batch, feeds, variables)
    forward = Executor(build_program(g, [loss], batch), variables)

    def f():
        return float(forward.run(feeds)[loss])

    worst = 0.0
    for name, node in grads.items():
        p = variables[name]
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            keep = p[i]
            p[i] = keep + h
            up = f()
            p[i] = keep - h
            down = f()
            p[i] = keep
            numeric[i] = (up - down) / (2 * h)
        got = analytic[node]
        scale = max(np.linalg.norm(numeric) + np.linalg.norm(got), 1e-12)
        worst = max(worst, float(np.linalg.norm(numeric - got) / scale))
    return worst
