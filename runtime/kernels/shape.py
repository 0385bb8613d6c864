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
    return partial(np.concatenate, list(ins), axis=axis, out=outs[0])


@kernel(operands=1, name="slice")
def take_slice(ins, outs, axis=-1, start=0, stop=None):
    (x,), (y,) = ins, outs
    return partial(np.copyto, y, x[_index(x.ndim, axis, start, stop)])


@kernel(operands=1)
def slice_grad(ins, outs, axis=-1, start=0, stop=None, size=None):
    (dy,), (dx,) = ins, outs
    part = dx[_index(dx.ndim, axis, start, stop)]

    def run():
        dx.fill(0)
        np.copyto(part, dy)
    return run


@kernel(operands=None)
def slices_grad(ins, outs, axis=-1, size=None, starts=(), stops=()):
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
    return partial(np.copyto, outs[0], ins[0].transpose(perm))
