"""Matrix products and bias: what a dense layer is made of.

>>> from graphnn.compiler.ops import OPS
>>> OPS["matmul"].infer([(None, 3), (3, 5)], ["float32"] * 2,
...                     {"transpose_a": False, "transpose_b": False})
((None, 5), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import GraphError, OpShapeError, Problem
from .base import Attr, OpDef, broadcast_shapes, fmt_shape, register, same_dtype

_bool = Attr(False, lambda v: isinstance(v, bool), "True or False")


def _matmul_shape(shapes, dtypes, attrs):
    a, b = shapes
    if not (2 <= len(a) <= 4 and 2 <= len(b) <= 4):     # 4-D: grouped convolutions' GEMMs
        raise OpShapeError(f"expected 2-D operands (or stacks of matrices, up to 4-D), got "
                           f"{fmt_shape(a)} and {fmt_shape(b)}")
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    m, k1 = a[-2:][::-1] if ta else a[-2:]
    k2, n = b[-2:][::-1] if tb else b[-2:]
    if k1 != k2:
        raise OpShapeError(
            f"inner dimensions differ: {fmt_shape(a)}{'^T' * ta} @ {fmt_shape(b)}{'^T' * tb} "
            f"contracts {k1} with {k2}; expected operand 1 to have {k1} "
            f"{'columns' if tb else 'rows'}")
    batch = broadcast_shapes(a[:-2], b[:-2])
    return (*batch, m, n), same_dtype(dtypes, 0, 1)


def _matmul_vjp(ctx, ins, out, dy, attrs):
    # C = op(A) @ op(B); the four transpose cases follow from dA = dC @ op(B)^T
    # and dB = op(A)^T @ dC, written back through the operands' own transposes.
    a, b = ins
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    if len(ctx.shape(a)) == 3 and len(ctx.shape(b)) == 2 and not (ta or tb):
        # A sequence times a matrix, (N, T, F) @ (F, K): dA = dY @ B^T, and dB sums
        # A^T dY over the batch (one (F, K) product per sample, then a sum).
        da = ctx.emit("matmul", [dy, b], transpose_b=True)
        per_sample = ctx.emit("matmul", [a, dy], transpose_a=True)
        return [da, ctx.emit("sum_to", [per_sample], shape=ctx.shape(b))]
    if len(ctx.shape(a)) > 2 or len(ctx.shape(b)) > 2:
        raise GraphError([Problem(ctx.node, "matmul", "this stacked (3-D) matmul has no gradient "
                                  "rule (only (N, T, F) @ (F, K) has)")])
    if ta:
        da = ctx.emit("matmul", [b, dy], transpose_a=tb, transpose_b=True)
    else:
        da = ctx.emit("matmul", [dy, b], transpose_a=False, transpose_b=not tb)
    if tb:
        db = ctx.emit("matmul", [dy, a], transpose_a=True, transpose_b=ta)
    else:
        db = ctx.emit("matmul", [a, dy], transpose_a=not ta, transpose_b=False)
    return [da, db]


def _matmul_flops(ins, out, attrs):
    a = ins[0]
    return 2 * prod(out) * (a[-2] if attrs["transpose_a"] else a[-1])


register(OpDef(
    "matmul", 2, _matmul_shape, fusion="out-elementwise-fusable",
    fold_axes=lambda attrs, rank: None if attrs["transpose_b"] else (rank - 1, -1),
    vjp=_matmul_vjp, attrs={"transpose_a": _bool, "transpose_b": _bool},
    flops=_matmul_flops,
    doc="op(A) @ op(B), op being an optional transpose of the last two axes; 3-D operands "
        "are stacks of matrices (NumPy broadcasting), used by lowered convolutions."))


def _axis_of(shape, axis):
    if not -len(shape) <= axis < len(shape):
        raise OpShapeError(f"axis {axis} is out of range for shape {fmt_shape(shape)}")
    return axis % len(shape)


def _bias_add_shape(shapes, dtypes, attrs):
    x, b = shapes
    axis = _axis_of(x, attrs["axis"])
    if b != (x[axis],):
        raise OpShapeError(f"bias has shape {fmt_shape(b)}, expected ({x[axis]},) to match "
                           f"axis {attrs['axis']} of input {fmt_shape(x)}")
    return x, same_dtype(dtypes, 0, 1)


def _bias_add_vjp(ctx, ins, out, dy, attrs):
    return [dy, ctx.emit("bias_grad", [dy], axis=attrs["axis"])]


def _bias_grad_shape(shapes, dtypes, attrs):
    (x,) = shapes
    return (x[_axis_of(x, attrs["axis"])],), same_dtype(dtypes, 0)


_axis = Attr(-1, lambda v: isinstance(v, int) and not isinstance(v, bool), "an int axis")

register(OpDef(
    "bias_add", 2, _bias_add_shape, fusion="broadcast", inplace=True,
    vjp=_bias_add_vjp, attrs={"axis": _axis},
    flops=lambda ins, out, a: prod(out),
    doc="x + b, with b a vector along `axis` (the channel axis)."))

register(OpDef(
    "bias_grad", 1, _bias_grad_shape, fusion="reduce", kind="gradient",
    attrs={"axis": _axis}, flops=lambda ins, out, a: prod(ins[0]),
    doc="Sum of the gradient over every axis but `axis`."))


def _embedding_shape(shapes, dtypes, attrs):
    ids, table = shapes
    if not dtypes[0].startswith("int"):
        raise OpShapeError(f"ids must be integers, got {dtypes[0]}")
    if len(table) != 2:
        raise OpShapeError(f"the table must be 2-D (vocabulary, features), got {fmt_shape(table)}")
    return (*ids, table[1]), dtypes[1]


register(OpDef(
    "embedding", 2, _embedding_shape, fusion="injective",
    vjp=lambda ctx, ins, out, dy, a: [None, ctx.emit("embedding_grad", [dy, ins[0]],
                                                    vocabulary=ctx.shape(ins[1])[0])],
    doc="Rows of the table picked by integer ids: (N, ...) ids -> (N, ..., features)."))
register(OpDef(
    "embedding_grad", 2,
    lambda s, d, a: ((a["vocabulary"], s[0][-1]), d[0]), fusion="opaque", kind="gradient",
    attrs={"vocabulary": Attr(check=lambda v: isinstance(v, int))},
    flops=lambda ins, out, a: prod(ins[0]),
    doc="The table's gradient: each id's row summed over its uses."))
