"""Matrix products and bias: what a dense layer is made of.

>>> from compiler.ops import OPS
>>> OPS["matmul"].infer([(None, 3), (3, 5)], ["float32"] * 2,
...                     {"transpose_a": False, "transpose_b": False})
((None, 5), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, register, same_dtype

_bool = Attr(False, lambda v: isinstance(v, bool), "True or False")


def _matmul_shape(shapes, dtypes, attrs):
    a, b = shapes
    if len(a) != 2 or len(b) != 2:
        raise OpShapeError(f"expected two 2-D operands, got {fmt_shape(a)} and {fmt_shape(b)}")
    (m, k1) = a[::-1] if attrs["transpose_a"] else a
    (k2, n) = b[::-1] if attrs["transpose_b"] else b
    if k1 != k2:
        raise OpShapeError(
            f"inner dimensions differ: {fmt_shape(a)}{'^T' * attrs['transpose_a']} @ "
            f"{fmt_shape(b)}{'^T' * attrs['transpose_b']}; expected operand 1 to have "
            f"{'shape (' + str(k1) + ', ...)' if not attrs['transpose_b'] else str(k1) + ' columns'}")
    return (m, n), same_dtype(dtypes, 0, 1)


def _matmul_vjp(ctx, ins, out, dy, attrs):
    # C = op(A) @ op(B); the four transpose cases follow from dA = dC @ op(B)^T
    # and dB = op(A)^T @ dC, written back through the operands' own transposes.
    a, b = ins
    ta, tb = attrs["transpose_a"], attrs["transpose_b"]
    if ta:
        da = ctx.emit("matmul", [b, dy], transpose_a=tb, transpose_b=True)
    else:
        da = ctx.emit("matmul", [dy, b], transpose_a=False, transpose_b=not tb)
    if tb:
        db = ctx.emit("matmul", [dy, a], transpose_a=True, transpose_b=ta)
    else:
        db = ctx.emit("matmul", [a, dy], transpose_a=not ta, transpose_b=False)
    return [da, db]


register(OpDef(
    "matmul", 2, _matmul_shape, kernel="matmul", fusion="out-elementwise-fusable",
    vjp=_matmul_vjp, attrs={"transpose_a": _bool, "transpose_b": _bool},
    flops=lambda ins, out, a: 2 * prod(out) * (ins[0][0] if a["transpose_a"] else ins[0][1]),
    doc="op(A) @ op(B) for 2-D operands, op being an optional transpose."))


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
    "bias_add", 2, _bias_add_shape, kernel="bias_add", fusion="broadcast", inplace=True,
    vjp=_bias_add_vjp, attrs={"axis": _axis},
    flops=lambda ins, out, a: prod(out),
    doc="x + b, with b a vector along `axis` (the channel axis)."))

register(OpDef(
    "bias_grad", 1, _bias_grad_shape, kernel="bias_grad", fusion="reduce", kind="gradient",
    attrs={"axis": _axis}, flops=lambda ins, out, a: prod(ins[0]),
    doc="Sum of the gradient over every axis but `axis`."))
