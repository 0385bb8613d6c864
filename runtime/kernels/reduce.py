"""Kernels for reductions, division and the logarithm (see compiler/ops/reduce.py).

>>> import numpy as np
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
    """Sum over ``axes`` (every axis when None); the result buffer may drop them or keep them as 1.

    >>> y = np.empty(2); _ = reduce_sum([np.arange(6.0).reshape(2, 3)], [y], axes=[-1])(); y
    array([ 3., 12.])
    """
    return _reduce(np.sum, ins[0], outs[0], axes)


@kernel(operands=1)
def reduce_max(ins, outs, axes=None, keepdims=True):
    """Maximum over ``axes`` (every axis when None).

    >>> y = np.empty(()); _ = reduce_max([np.array([[1.0, 7.0], [3.0, 2.0]])], [y])(); float(y)
    7.0
    """
    return _reduce(np.max, ins[0], outs[0], axes)


@kernel(operands=2)
def broadcast_like(ins, outs):
    """Operand 0 broadcast to the result's shape (a reduction's gradient, spread back).

    >>> y = np.empty((2, 3)); broadcast_like([np.array([[1.0], [2.0]]), np.empty((2, 3))], [y])(); y
    array([[1., 1., 1.],
           [2., 2., 2.]])
    """
    return partial(np.copyto, outs[0], ins[0])


@kernel(operands=3, scratch={"hit": (1, "bool"), "share": (0, "same")})
def reduce_max_grad(ins, outs, axes=None, *, hit, share):
    """dx = [x == max] * dy / (number of maxima in the group): a tie shares the gradient.

    >>> x = np.array([[1.0, 4.0, 4.0]]); dx = np.empty((1, 3))
    >>> reduce_max_grad([np.array([[6.0]]), x, np.array([[4.0]])], [dx], axes=[1],
    ...                 hit=np.empty((1, 3), bool), share=np.empty((1, 1)))(); dx
    array([[0., 3., 3.]])
    """
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
    """a / b, broadcasting b.

    >>> y = np.empty(2); _ = divide([np.array([1.0, 6.0]), np.array([4.0])], [y])(); y
    array([0.25, 1.5 ])
    """
    return partial(np.divide, ins[0], ins[1], out=outs[0])


@kernel(operands=1)
def log(ins, outs):
    """The natural logarithm.

    >>> y = np.empty(2); _ = log([np.array([1.0, np.e ** 2])], [y])(); y
    array([0., 2.])
    """
    return partial(np.log, ins[0], out=outs[0])


@kernel(operands=1)
def one_hot(ins, outs, classes, dtype="float32"):
    """Integer ids (N, ...) as one-hot rows (N, ..., classes).

    >>> y = np.empty((3, 4)); _ = one_hot([np.array([0, 3, 1])], [y], classes=4)(); y
    array([[1., 0., 0., 0.],
           [0., 0., 0., 1.],
           [0., 1., 0., 0.]])
    """
    (ids,), (y,) = ins, outs
    return partial(np.equal, ids[..., None], np.arange(classes), out=y)     # bool -> 0.0 / 1.0
