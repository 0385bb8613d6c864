"""Kernels for matmul, bias_add, bias_grad.

A kernel is a factory: given its operand and result arrays (views into the
arena, fixed for the program's lifetime) and the op's attributes, it returns a
no-argument callable that does the work in place. Binding once means a step is
a loop over ready calls; views such as transposes are made here, not per step.

>>> import numpy as np
>>> a, b, c = np.ones((2, 3)), np.ones((3, 4)), np.empty((2, 4))
>>> _ = matmul([a, b], [c])(); float(c[0, 0])
3.0
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel


@kernel(operands=2)
def matmul(ins, outs, transpose_a=False, transpose_b=False):
    """a @ b into the result, either operand transposed (its last two axes) first.

    >>> a, b, c = np.arange(6.0).reshape(2, 3), np.ones((2, 3)), np.empty((2, 2))
    >>> _ = matmul([a, b], [c], transpose_b=True)()         # a @ b.T: a's row sums
    >>> c
    array([[ 3.,  3.],
           [12., 12.]])
    """
    a, b = ins
    a = a.swapaxes(-1, -2) if transpose_a else a
    b = b.swapaxes(-1, -2) if transpose_b else b
    return partial(np.matmul, a, b, out=outs[0])


def _tiles(cols, tiles):
    """(N, K, P * M) columns in tile order as P matrices (K, M) per image: (N, P, K, M)."""
    n, k, length = cols.shape
    return cols.reshape(n, k, tiles, length // tiles).transpose(0, 2, 1, 3)


@kernel(operands=2, batched=(1,))
def matmul_tiles(ins, outs, tiles):
    """A convolution in tile order (compiler/blocked.py): w (F, K) times each
    tile offset's columns, (N, P, F, M): a tile offset's block is then one run
    per image (N, P * F * M) instead of F runs.

    >>> w, cols = np.array([[1.0, 2.0]]), np.arange(8.0).reshape(1, 2, 4)   # F=1, K=2, P=2, M=2
    >>> y = np.empty((1, 2, 1, 2)); _ = matmul_tiles([w, cols], [y], tiles=2)()
    >>> y[0, :, 0]                          # w @ cols = [8, 11, 14, 17], a tile per row
    array([[ 8., 11.],
           [14., 17.]])
    """
    w, cols = ins
    return partial(np.matmul, w, _tiles(cols, tiles), out=outs[0])


@kernel(operands=2, batched=(0, 1))
def matmul_tiles_grad(ins, outs, tiles):
    """Its weight gradient per image and tile offset, cols @ dy^T: (N, P, K, F).

    >>> cols, dy = np.arange(8.0).reshape(1, 2, 4), np.ones((1, 2, 1, 2))
    >>> dw = np.empty((1, 2, 2, 1)); _ = matmul_tiles_grad([cols, dy], [dw], tiles=2)()
    >>> dw[0, :, :, 0]                      # each tile's columns summed: [0+1, 4+5], [2+3, 6+7]
    array([[ 1.,  9.],
           [ 5., 13.]])
    """
    cols, dy = ins
    return partial(np.matmul, _tiles(cols, tiles), dy.swapaxes(-1, -2), out=outs[0])


@kernel(operands=2, epilogue=(0,))
def bias_add(ins, outs, axis=-1):
    """x + b, b laid along ``axis`` of x (1 for (N, C, H, W) images).

    >>> x, b, y = np.zeros((1, 2, 1, 2)), np.array([1.0, 2.0]), np.empty((1, 2, 1, 2))
    >>> _ = bias_add([x, b], [y], axis=1)(); y[0, :, 0]
    array([[1., 1.],
           [2., 2.]])
    """
    x, b = ins
    shape = [1] * x.ndim
    shape[axis] = -1
    return partial(np.add, x, b.reshape(shape), out=outs[0])


@kernel(operands=1)
def bias_grad(ins, outs, axis=-1):
    """The bias's gradient: dy summed over every axis but ``axis``.

    >>> dy, db = np.arange(12.0).reshape(2, 3, 2), np.empty(3)
    >>> _ = bias_grad([dy], [db], axis=1)()                 # [0+1+6+7, 2+3+8+9, 4+5+10+11]
    >>> db
    array([14., 22., 30.])
    """
    (dy,) = ins
    axes = tuple(i for i in range(dy.ndim) if i != axis % dy.ndim)
    return partial(np.sum, dy, axis=axes, out=outs[0])


@kernel(operands=2)
def embedding(ins, outs):
    """The table's rows named by integer ids: y[..., :] = table[ids[...]]; an id
    outside the table is an IndexError naming it.

    >>> table, ids, y = np.arange(6.0).reshape(3, 2), np.array([[2, 0]]), np.empty((1, 2, 2))
    >>> embedding([ids, table], [y])()
    >>> y
    array([[[4., 5.],
            [0., 1.]]])
    >>> embedding([np.array([3]), table], [np.empty((1, 2))])()
    Traceback (most recent call last):
    ...
    IndexError: embedding: id 3 is out of range for a table of 3 rows
    """
    ids, table = ins
    (y,) = outs

    def run():
        if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
            bad = ids[(ids < 0) | (ids >= len(table))].flat[0]
            raise IndexError(f"embedding: id {bad} is out of range for a table of {len(table)} rows")
        np.take(table, ids, axis=0, out=y, mode="clip")
    return run


@kernel(operands=2)
def embedding_grad(ins, outs, vocabulary=None):
    """The table's gradient: each row of dy added to the row its id names (a
    repeated id collects several), rows no id names zero.

    >>> dy, ids = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([1, 1, 0])
    >>> dtable = np.empty((3, 2))
    >>> embedding_grad([dy, ids], [dtable])()
    >>> dtable
    array([[5., 6.],
           [4., 6.],
           [0., 0.]])
    """
    dy, ids = ins
    (dtable,) = outs
    rows, flat = ids.reshape(-1), dy.reshape(-1, dy.shape[-1])

    def run():
        dtable.fill(0)
        np.add.at(dtable, rows, flat)           # repeated ids accumulate
    return run
