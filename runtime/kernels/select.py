"""Kernels for compare, where (and its gradient) and gather_elements (and its
scatter-add gradient).

>>> import numpy as np
>>> c, y = np.array([1.0, 0.0]), np.empty(2)
>>> _ = where([c, np.array([np.inf, np.nan]), np.array([np.nan, 2.0])], [y])(); y
array([inf,  2.])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel

_UFUNCS = {"less": np.less, "less_equal": np.less_equal, "greater": np.greater,
           "greater_equal": np.greater_equal, "equal": np.equal}


@kernel(operands=2)
def compare(ins, outs, relation, dtype="float32"):
    return partial(_UFUNCS[relation], ins[0], ins[1], out=outs[0])     # bool -> 0.0 / 1.0


@kernel(operands=3)
def where(ins, outs):
    (c, a, b), (y,) = ins, outs

    def run():
        taken = c != 0
        np.copyto(y, b)
        np.copyto(y, a, where=taken)      # elements of b under the mask are never read into y
    return run


@kernel(operands=2)
def where_grad(ins, outs, branch):
    (c, dy), (g,) = ins, outs

    def run():
        keep = (c != 0) if branch == "taken" else (c == 0)
        g.fill(0)
        np.copyto(g, dy, where=keep)
    return run


def _positive(idx, size):
    return np.where(idx < 0, idx + size, idx)


@kernel(operands=2)
def gather_elements(ins, outs, axis=0):
    (x, idx), (y,) = ins, outs

    def run():
        y[...] = np.take_along_axis(x, _positive(idx, x.shape[axis]), axis=axis)
    return run


@kernel(operands=3)
def gather_elements_grad(ins, outs, axis=0):
    """Repeated indices add up (np.add.at), as the gradient of a gather must."""
    (dy, idx, _x), (g,) = ins, outs
    axis = axis % g.ndim

    def run():
        g.fill(0)
        where = list(np.indices(idx.shape, sparse=True))
        where[axis] = _positive(idx, g.shape[axis])
        np.add.at(g, tuple(where), dy)
    return run
