"""Kernels for concat, slice (and its gradient) and transpose.

>>> import numpy as np
>>> x, y = np.arange(6.0).reshape(2, 3), np.empty((2, 2))
>>> _ = take_slice([x], [y], axis=1, start=1, stop=3)(); y
array([[1., 2.],
       [4., 5.]])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel


def _index(ndim, axis, start, stop):
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


@kernel(operands=None)
def concat(ins, outs, axis=-1):
    """The operands joined along ``axis``.

    >>> y = np.empty((1, 3)); _ = concat([np.array([[1.0]]), np.array([[2.0, 3.0]])], [y], axis=1)(); y
    array([[1., 2., 3.]])
    """
    return partial(np.concatenate, list(ins), axis=axis, out=outs[0])


@kernel(operands=1, name="slice")
def take_slice(ins, outs, axis=-1, start=0, stop=None):
    """x[..., start:stop, ...] along ``axis`` (registered as the kernel ``slice``).

    >>> y = np.empty(2); _ = take_slice([np.arange(5.0)], [y], axis=0, start=-3, stop=-1)(); y
    array([2., 3.])
    """
    (x,), (y,) = ins, outs
    return partial(np.copyto, y, x[_index(x.ndim, axis, start, stop)])


@kernel(operands=1)
def slice_grad(ins, outs, axis=-1, start=0, stop=None, size=None):
    """dy placed back at its slice of dx, zeros elsewhere.

    >>> dx = np.empty(5); slice_grad([np.array([7.0, 8.0])], [dx], axis=0, start=1, stop=3)(); dx
    array([0., 7., 8., 0., 0.])
    """
    (dy,), (dx,) = ins, outs
    part = dx[_index(dx.ndim, axis, start, stop)]

    def run():
        dx.fill(0)
        np.copyto(part, dy)
    return run


@kernel(operands=None)
def slices_grad(ins, outs, axis=-1, size=None, starts=(), stops=()):
    """The gradients of several slices of one value placed into one buffer (a
    recurrent layer's time steps): copied where the slices are disjoint, added
    where they overlap.

    >>> dx = np.empty(4)
    >>> slices_grad([np.array([1.0, 1.0]), np.array([2.0, 2.0])], [dx], axis=0, starts=[0, 2], stops=[2, 4])()
    >>> dx
    array([1., 1., 2., 2.])
    >>> slices_grad([np.array([1.0, 1.0]), np.array([2.0, 2.0])], [dx], axis=0, starts=[0, 1], stops=[2, 3])()
    >>> dx                                   # overlapping at 1: 1 + 2
    array([1., 3., 2., 0.])
    """
    (dx,) = outs
    targets = [dx[_index(dx.ndim, axis, a, b)] for a, b in zip(starts, stops)]
    disjoint = all(b1 <= a2 for (_, b1), (a2, _) in zip(sorted(zip(starts, stops)),
                                                        sorted(zip(starts, stops))[1:]))

    def run():
        dx.fill(0)
        for target, piece in zip(targets, ins):
            if disjoint:
                np.copyto(target, piece)
            else:
                np.add(target, piece, out=target)
    return run


@kernel(operands=1)
def transpose(ins, outs, perm):
    """The axes permuted by ``perm``, copied into the result's layout.

    >>> y = np.empty((3, 2)); _ = transpose([np.arange(6.0).reshape(2, 3)], [y], perm=[1, 0])(); y
    array([[0., 3.],
           [1., 4.],
           [2., 5.]])
    """
    return partial(np.copyto, outs[0], ins[0].transpose(perm))
