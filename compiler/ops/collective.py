"""Collective ops: the gradient all-reduce of data-parallel training.

Inserted by ``compiler/allreduce.py`` between the backward pass and the
optimizer updates, never written by users. Gradients travel in buckets
(Horovod's tensor fusion): one ``allreduce_bucket`` packs several gradients,
each multiplied by this rank's share of the global batch, into one flat arena
buffer and sums that buffer over all ranks in a single collective;
``bucket_slice`` copies one gradient's part back out in its own shape.

Operands of ``allreduce_bucket``: (share, gradient, gradient, ...), where
``share`` is a scalar input fed at every step with (samples on this rank) /
(samples in the global batch). The summed bucket is then the gradient of the
global batch's mean loss, for equal and unequal shares alike.

>>> from graphnn.compiler.ops import OPS
>>> OPS["allreduce_bucket"].infer([(), (3, 2), (4,)], ["float32"] * 3, {})
((10,), 'float32')
>>> OPS["bucket_slice"].infer([(10,)], ["float32"], {"start": 6, "shape": (4,)})
((4,), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, register, same_dtype


def _bucket_shape(shapes, dtypes, attrs):
    if len(shapes) < 2:
        raise OpShapeError("expected a share and at least one gradient")
    if shapes[0] != ():
        raise OpShapeError(f"the share (operand 0) must be a scalar, got {fmt_shape(shapes[0])}")
    for i, s in enumerate(shapes[1:], 1):
        if any(d is None for d in s):
            raise OpShapeError(f"gradient {i} has the batch dimension {fmt_shape(s)}; "
                               "only parameter gradients (fixed shapes) are all-reduced")
    return (sum(prod(s) for s in shapes[1:]),), same_dtype(dtypes, *range(len(dtypes)))


def _slice_shape(shapes, dtypes, attrs):
    (size,) = shapes[0]
    n = prod(attrs["shape"])
    if attrs["start"] + n > size:
        raise OpShapeError(f"a slice of {n} elements at {attrs['start']} overruns the "
                           f"bucket of {size}")
    return tuple(attrs["shape"]), dtypes[0]


def _is_shape(v):
    return isinstance(v, (tuple, list)) and all(isinstance(d, int) and d > 0 for d in v)


register(OpDef(
    "allreduce_bucket", None, _bucket_shape, kind="gradient",
    flops=lambda ins, out, a: prod(out),
    doc="(share, g1, g2, ...): pack share * g_i into one flat buffer and sum it over "
        "all ranks (MPI Allreduce, in place)."))

register(OpDef(
    "bucket_slice", 1, _slice_shape, kind="gradient",
    fusion="injective",
    attrs={"start": Attr(check=lambda v: isinstance(v, int) and v >= 0, expect="an offset >= 0"),
           "shape": Attr(check=_is_shape, expect="a tuple of positive ints")},
    doc="(bucket): one gradient's elements [start, start + size) of a summed bucket, "
        "in the gradient's shape."))
