"""Kernels for reductions, division and the logarithm (see compiler/ops/reduce.py).

>>> import numpy as np

from .base import kernel
>>> x = np.array([[1.0, 5.0], [3.0, 2.0]]); y = np.empty((2, 1))
>>> _ = reduce_max([x], [y], axes=[1], keepdims=True)(); y.ravel()
array([5., 3.])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel


def _axes(ndim, axes):
    return tuple(range(ndim)) if axes is None else tuple(a % ndim for a in axes)


def _reduce(ufunc_reduce, x, y, axes):
    """Reduce ``x`` over ``axes`` into ``y``, seen with the reduced axes kept as 1."""
    axes = _axes(x.ndim, axes)
    kept = y.reshape([1 if i in axes else d for i, d in enumerate(x.shape)])
    return partial(ufunc_reduce, x, axis=axes, keepdims=True, out=kept)


@kernel(operands=1)
def reduce_sum(ins, outs, axes=None, keepdims=True):
    return _reduce(np.sum, ins[0], outs[0], axes)


@kernel(operands=1)
def reduce_max(ins, outs, axes=None, keepdims=True):
    return _reduce(np.max, ins[0], outs[0], axes)


@kernel(operands=2)
def broadcast_like(ins, outs):
    return partial(np.copyto, outs[0], ins[0])


@kernel(operands=3, scratch={"hit": (1, "bool"), "share": (0, "same")})
def reduce_max_grad(ins, outs, axes=None, *, hit, share):
    """dx = [x == max] * dy / (number of maxima in the group)."""
    (dy, x, y), (dx,) = ins, outs
    axes = tuple(axes)

    def run():
        np.equal(x, y, out=hit)
        np.sum(hit, axis=axes, keepdims=True, out=share)
        np.divide(dy, share, out=share)
        np.multiply(hit, share, out=dx)
    return run


@kernel(operands=2)
def divide(ins, outs):
    return partial(np.divide, ins[0], ins[1], out=outs[0])


@kernel(operands=1)
def log(ins, outs):
    return partial(np.log, ins[0], out=outs[0])


@kernel(operands=1)
def one_hot(ins, outs, classes, dtype="float32"):
    (ids,), (y,) = ins, outs
    return partial(np.equal, ids[..., None], np.arange(classes), out=y)     # bool -> 0.0 / 1.0
