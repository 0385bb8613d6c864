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
    """a <relation> b as 0.0 / 1.0 (``relation``: less, less_equal, greater, greater_equal, equal).

    >>> y = np.empty(3); _ = compare([np.array([1.0, 2.0, 3.0]), np.array([2.0])], [y], relation="less")(); y
    array([1., 0., 0.])
    """
    return partial(_UFUNCS[relation], ins[0], ins[1], out=outs[0])     # bool -> 0.0 / 1.0


@kernel(operands=3)
def where(ins, outs):
    """a where c != 0, else b; the branch not taken is never read into y (a NaN there does not leak).

    >>> c, a, b, y = np.array([1.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0]), np.full(3, -1.0), np.empty(3)
    >>> where([c, a, b], [y])(); y
    array([ 1., -1.,  3.])
    """
    (c, a, b), (y,) = ins, outs

    def run():
        taken = c != 0
        np.copyto(y, b)
        np.copyto(y, a, where=taken)      # elements of b under the mask are never read into y
    return run


@kernel(operands=2)
def where_grad(ins, outs, branch):
    """dy where the branch (``"taken"``: c != 0, else c == 0) was chosen, 0 elsewhere.

    >>> c, dy, g = np.array([1.0, 0.0, 1.0]), np.array([5.0, 6.0, 7.0]), np.empty(3)
    >>> where_grad([c, dy], [g], branch="taken")(); g
    array([5., 0., 7.])
    >>> where_grad([c, dy], [g], branch="other")(); g
    array([0., 6., 0.])
    """
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
    """ONNX's GatherElements: y[i][j] = x[i][idx[i][j]] along ``axis`` (negative indices count from the end).

    >>> x = np.array([[10.0, 20.0, 30.0]]); y = np.empty((1, 2))
    >>> gather_elements([x, np.array([[2, -3]])], [y], axis=1)(); y
    array([[30., 10.]])
    """
    (x, idx), (y,) = ins, outs

    def run():
        y[...] = np.take_along_axis(x, _positive(idx, x.shape[axis]), axis=axis)
    return run


@kernel(operands=3)
def gather_elements_grad(ins, outs, axis=0):
    """Repeated indices add up (np.add.at), as the gradient of a gather must.

    >>> g = np.empty((1, 3))
    >>> gather_elements_grad([np.array([[1.0, 2.0]]), np.array([[1, 1]]), np.empty((1, 3))], [g], axis=1)(); g
    array([[0., 3., 0.]])
    """
    (dy, idx, _x), (g,) = ins, outs
    axis = axis % g.ndim

    def run():
        g.fill(0)
        where = list(np.indices(idx.shape, sparse=True))
        where[axis] = _positive(idx, g.shape[axis])
        np.add.at(g, tuple(where), dy)
    return run
