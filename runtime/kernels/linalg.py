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
    a, b = ins
    a = a.swapaxes(-1, -2) if transpose_a else a
    b = b.swapaxes(-1, -2) if transpose_b else b
    return partial(np.matmul, a, b, out=outs[0])


def _tiles(cols, tiles):
    """(N, K, P * M) columns in tile order as P matrices (K, M) per image: (N, P, K, M)."""
    n, k, length = cols.shape
    return cols.reshape(n, k, tiles, length // tiles).transpose(0, 2, 1, 3)


@kernel(operands=2)
def matmul_tiles(ins, outs, tiles):
    """A convolution in tile order (compiler/blocked.py): w (F, K) times each
    tile offset's columns, (N, P, F, M): a tile offset's block is then one run
    per image (N, P * F * M) instead of F runs."""
    w, cols = ins
    return partial(np.matmul, w, _tiles(cols, tiles), out=outs[0])


@kernel(operands=2)
def matmul_tiles_grad(ins, outs, tiles):
    """Its weight gradient per image and tile offset, cols @ dy^T: (N, P, K, F)."""
    cols, dy = ins
    return partial(np.matmul, _tiles(cols, tiles), dy.swapaxes(-1, -2), out=outs[0])


@kernel(operands=2)
def bias_add(ins, outs, axis=-1):
    x, b = ins
    shape = [1] * x.ndim
    shape[axis] = -1
    return partial(np.add, x, b.reshape(shape), out=outs[0])


@kernel(operands=1)
def bias_grad(ins, outs, axis=-1):
    (dy,) = ins
    axes = tuple(i for i in range(dy.ndim) if i != axis % dy.ndim)
    return partial(np.sum, dy, axis=axes, out=outs[0])


@kernel(operands=2)
def embedding(ins, outs):
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
    dy, ids = ins
    (dtable,) = outs
    rows, flat = ids.reshape(-1), dy.reshape(-1, dy.shape[-1])

    def run():
        dtable.fill(0)
        np.add.at(dtable, rows, flat)           # repeated ids accumulate
    return run
