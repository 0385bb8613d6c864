"""Ops that change the shape, not the values: flatten and reshape.

Both are views: the result is the operand's bytes under a new shape, so no
kernel runs and no buffer is allocated.

The batch symbol stays in place; every other dimension must account for the
same number of elements.

>>> from compiler.ops import OPS
>>> OPS["flatten"].infer([(None, 2, 3)], ["float32"], {})
((None, 6), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, register


def _known(shape):
    return prod(d for d in shape if d is not None), sum(d is None for d in shape)


def _flatten_shape(shapes, dtypes, attrs):
    (x,) = shapes
    if len(x) < 2:
        raise OpShapeError(f"expected at least 2 dimensions (batch, ...), got {fmt_shape(x)}")
    return (x[0], prod(x[1:]) if None not in x[1:] else None), dtypes[0]


def _reshape_shape(shapes, dtypes, attrs):
    (x,), target = shapes, tuple(attrs["shape"])
    if _known(x) != _known(target):
        raise OpShapeError(f"cannot reshape {fmt_shape(x)} ({_known(x)[0]} elements per "
                           f"sample) into {fmt_shape(target)} ({_known(target)[0]})")
    return target, dtypes[0]


def _back_to_input(ctx, ins, out, dy, attrs):
    return [ctx.emit("reshape", [dy], shape=ctx.shape(ins[0]))]


register(OpDef("flatten", 1, _flatten_shape, kernel=None, fusion="injective", view=True,
               vjp=_back_to_input, doc="(N, d1, d2, ...) -> (N, d1*d2*...)"))
register(OpDef("reshape", 1, _reshape_shape, kernel=None, fusion="injective", view=True,
               vjp=_back_to_input,
               attrs={"shape": Attr(check=lambda v: isinstance(v, (tuple, list)) and all(
                   d is None or (isinstance(d, int) and d > 0) for d in v),
                   expect="a shape of positive ints, None for the batch")},
               doc="A new shape with the same elements; None keeps the batch."))
