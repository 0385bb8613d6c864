"""Kernels for add, add_n, sum_to, and the loss guard check_finite.

>>> import numpy as np
>>> x, y = np.arange(6.0).reshape(2, 3), np.empty(3)
>>> _ = sum_to([x], [y], shape=(3,))(); y
array([3., 5., 7.])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel


@kernel(operands=2)
def add(ins, outs):
    return partial(np.add, ins[0], ins[1], out=outs[0])


@kernel(operands=2)
def multiply(ins, outs):
    return partial(np.multiply, ins[0], ins[1], out=outs[0])


@kernel(operands=2)
def subtract(ins, outs):
    return partial(np.subtract, ins[0], ins[1], out=outs[0])


@kernel(operands=1)
def scale(ins, outs, factor):
    return partial(np.multiply, ins[0], factor, out=outs[0])


@kernel(operands=None)
def add_n(ins, outs):
    (y,) = outs
    first, rest = ins[:2], ins[2:]

    def run():
        np.add(first[0], first[1], out=y)
        for x in rest:
            np.add(y, x, out=y)
    return run


@kernel(operands=1)
def sum_to(ins, outs, shape):
    (x,), (y,) = ins, outs
    lead = x.ndim - y.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(y.shape) if d == 1 and x.shape[lead + i] != 1)
    kept = y.reshape((1,) * lead + y.shape)
    return partial(np.sum, x, axis=axes, keepdims=True, out=kept)


@kernel(operands=1, scratch={"bits": ("out", "float64")})
def dropout_mask(ins, outs, rate, seed=0, *, bits):
    """Each call draws a new mask from a generator seeded once, at bind time."""
    (mask,) = outs
    rng = np.random.default_rng(seed)
    keep = 1.0 / (1.0 - rate)

    def run():
        rng.random(out=bits)
        np.greater_equal(bits, rate, out=mask)
        np.multiply(mask, keep, out=mask)
    return run


@kernel(operands=1)
def exp(ins, outs):
    return partial(np.exp, ins[0], out=outs[0])


@kernel(operands=1, scratch={"draws": ("out", "float64")})
def gaussian_noise(ins, outs, seed=0, *, draws):
    (noise,) = outs
    rng = np.random.default_rng(seed)

    def run():
        rng.standard_normal(out=draws)
        np.copyto(noise, draws, casting="same_kind")
    return run


@kernel(operands=1)
def check_finite(ins, outs, what=""):
    """Raise FloatingPointError when the value (a loss) is NaN or infinite."""
    (x,) = ins

    def run():
        if not np.isfinite(x).all():
            raise FloatingPointError(f"{what or 'value'} is {x.item() if x.size == 1 else 'not finite'}")
    return run
