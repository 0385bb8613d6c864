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
    """a + b, broadcasting b (a bias, a residual).

    >>> y = np.empty((2, 2)); _ = add([np.ones((2, 2)), np.array([10.0, 20.0])], [y])(); y
    array([[11., 21.],
           [11., 21.]])
    """
    return partial(np.add, ins[0], ins[1], out=outs[0])


@kernel(operands=2)
def multiply(ins, outs):
    """a * b, broadcasting b.

    >>> y = np.empty(2); _ = multiply([np.array([2.0, 3.0]), np.array([4.0, 5.0])], [y])(); y
    array([ 8., 15.])
    """
    return partial(np.multiply, ins[0], ins[1], out=outs[0])


@kernel(operands=2)
def subtract(ins, outs):
    """a - b, broadcasting b.

    >>> y = np.empty(2); _ = subtract([np.array([2.0, 3.0]), np.array([4.0, 5.0])], [y])(); y
    array([-2., -2.])
    """
    return partial(np.subtract, ins[0], ins[1], out=outs[0])


@kernel(operands=1)
def scale(ins, outs, factor):
    """x * factor (a constant attribute).

    >>> y = np.empty(2); _ = scale([np.array([2.0, 3.0])], [y], factor=-0.5)(); y
    array([-1. , -1.5])
    """
    return partial(np.multiply, ins[0], factor, out=outs[0])


@kernel(operands=None)
def add_n(ins, outs):
    """The sum of two or more operands (the gradients a value gets from its readers).

    >>> y = np.empty(2); add_n([np.ones(2), np.full(2, 2.0), np.full(2, 3.0)], [y])(); y
    array([6., 6.])
    """
    (y,) = outs
    first, rest = ins[:2], ins[2:]

    def run():
        np.add(first[0], first[1], out=y)
        for x in rest:
            np.add(y, x, out=y)
    return run


@kernel(operands=1)
def sum_to(ins, outs, shape):
    """Sum a broadcast gradient back to its operand's shape: over the leading axes
    the operand lacks, and over its axes of size 1.

    >>> y = np.empty((2, 1)); _ = sum_to([np.arange(6.0).reshape(2, 3)], [y], shape=(2, 1))(); y
    array([[ 3.],
           [12.]])
    """
    (x,), (y,) = ins, outs
    lead = x.ndim - y.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(y.shape) if d == 1 and x.shape[lead + i] != 1)
    kept = y.reshape((1,) * lead + y.shape)
    return partial(np.sum, x, axis=axes, keepdims=True, out=kept)


@kernel(operands=1, scratch={"bits": ("out", "float64")})
def dropout_mask(ins, outs, rate, seed=0, *, bits):
    """Each call draws a new mask from a generator seeded once, at bind time:
    0 with probability ``rate``, else 1 / (1 - rate), so the mean is kept.

    >>> m = np.empty(10000); run = dropout_mask([m], [m], rate=0.25, seed=1, bits=np.empty(10000))
    >>> run(); sorted({round(float(v), 6) for v in m}), round(float((m == 0).mean()), 2)
    ([0.0, 1.333333], 0.25)
    >>> first = m.copy(); run(); bool((m != first).any())          # a fresh mask each step
    True
    """
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
    """e^x.

    >>> y = np.empty(2); _ = exp([np.array([0.0, np.log(5.0)])], [y])(); y
    array([1., 5.])
    """
    return partial(np.exp, ins[0], out=outs[0])


@kernel(operands=1, scratch={"draws": ("out", "float64")})
def gaussian_noise(ins, outs, seed=0, *, draws):
    """Standard normal draws shaped like the operand, new at every call (a VAE's
    sample); the generator is seeded once, at bind time.

    >>> n = np.empty(100000); gaussian_noise([n], [n], seed=0, draws=np.empty(100000))()
    >>> round(float(n.mean()), 2) == 0, round(float(n.std()), 2)
    (True, 1.0)
    """
    (noise,) = outs
    rng = np.random.default_rng(seed)

    def run():
        rng.standard_normal(out=draws)
        np.copyto(noise, draws, casting="same_kind")
    return run


@kernel(operands=1)
def check_finite(ins, outs, what=""):
    """Raise FloatingPointError when the value (a loss) is NaN or infinite: the
    training step stops before any update runs.

    >>> check_finite([np.array(0.5)], [], what="loss")()
    >>> check_finite([np.array(np.inf)], [], what="loss")()
    Traceback (most recent call last):
    ...
    FloatingPointError: loss is inf
    """
    (x,) = ins

    def run():
        if not np.isfinite(x).all():
            raise FloatingPointError(f"{what or 'value'} is {x.item() if x.size == 1 else 'not finite'}")
    return run
