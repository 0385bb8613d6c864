"""Reductions over axes, division, the logarithm and one-hot rows.

What ONNX's expanded softmax, log-softmax and softplus are written with, and
what a weighted mean needs: ``reduce_sum`` and ``reduce_max`` over any axes
(``keepdims`` as in ONNX), ``divide`` with NumPy broadcasting and ``log``.
Their gradients: a sum spreads dy back over what it summed (``broadcast_like``),
a maximum routes dy to the elements equal to it, shared evenly among ties
(``reduce_max_grad``), d(a/b) = (dy/b, -dy a/b^2), d log x = dy/x. ``one_hot``
turns integer labels into rows of 0 and 1 (a label outside 0..classes-1 gives a
row of zeros: how a loss leaves out an ignored label); labels get no gradient.

>>> from graphnn.compiler.ops import OPS
>>> OPS["reduce_sum"].infer([(None, 3, 4)], ["float32"], {"axes": [2], "keepdims": True})
((None, 3, 1), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from .base import (
    Attr,
    OpDef,
    broadcast_shapes,
    elementwise_flops,
    fmt_shape,
    like_input,
    register,
    same_dtype,
)

_axes_attr = Attr(None, lambda v: v is None or (isinstance(v, (list, tuple)) and all(
    isinstance(a, int) and not isinstance(a, bool) for a in v)), "None (every axis) or a list of ints")
_keepdims = Attr(True, lambda v: isinstance(v, bool), "True or False")


def reduced_axes(shape, axes) -> tuple[int, ...]:
    """The axes a reduction runs over, non-negative and sorted.

    >>> reduced_axes((None, 3, 4), [-1, 1])
    (1, 2)
    """
    if axes is None:
        return tuple(range(len(shape)))
    out = []
    for a in axes:
        if not -len(shape) <= a < len(shape):
            raise OpShapeError(f"axis {a} is out of range for shape {fmt_shape(shape)}")
        out.append(a % len(shape))
    if len(set(out)) != len(out):
        raise OpShapeError(f"axes {list(axes)} name an axis twice")
    return tuple(sorted(out))


def kept_shape(shape, axes) -> tuple:
    """The shape with the reduced axes kept as size 1 (negative axes count from the end).

    >>> kept_shape((None, 3, 4), [1]), kept_shape((None, 3, 4), [-1, 1])
    ((None, 1, 4), (None, 1, 1))
    """
    axes = reduced_axes(shape, axes)
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _reduce_shape(shapes, dtypes, attrs):
    (x,) = shapes
    axes = reduced_axes(x, attrs["axes"])
    if attrs["keepdims"]:
        return kept_shape(x, axes), same_dtype(dtypes, 0)
    return tuple(d for i, d in enumerate(x) if i not in axes), same_dtype(dtypes, 0)


def _as_kept(ctx, v, x, attrs):
    """A reduction's result (or its gradient) with the reduced axes kept."""
    keep = kept_shape(ctx.shape(x), attrs["axes"])
    return v if ctx.shape(v) == keep else ctx.emit("reshape", [v], shape=keep)


def _reduce_sum_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("broadcast_like", [_as_kept(ctx, dy, ins[0], attrs), ins[0]])]


def _reduce_max_vjp(ctx, ins, out, dy, attrs):
    (x,) = ins
    return [ctx.emit("reduce_max_grad", [_as_kept(ctx, dy, x, attrs), x, _as_kept(ctx, out, x, attrs)],
                     axes=list(reduced_axes(ctx.shape(x), attrs["axes"])))]


def _broadcast_like_shape(shapes, dtypes, attrs):
    v, like = shapes
    if broadcast_shapes(v, like) != tuple(like):
        raise OpShapeError(f"{fmt_shape(v)} does not broadcast to {fmt_shape(like)}")
    return tuple(like), dtypes[0]


def _divide_vjp(ctx, ins, out, dy, attrs):
    a, b = ins
    da = ctx.emit("divide", [dy, b])
    db = ctx.emit("scale", [ctx.emit("divide", [ctx.emit("multiply", [dy, out]), b])], factor=-1.0)
    return [g if ctx.shape(x) == ctx.shape(out) else ctx.emit("sum_to", [g], shape=ctx.shape(x))
            for x, g in ((a, da), (b, db))]


_reduce_attrs = {"axes": _axes_attr, "keepdims": _keepdims}
register(OpDef("reduce_sum", 1, _reduce_shape, fusion="reduce",
               vjp=_reduce_sum_vjp, attrs=_reduce_attrs, flops=lambda ins, out, a: prod(ins[0]),
               doc="Sum over the given axes (every axis when None), kept as size 1 with keepdims."))
register(OpDef("reduce_max", 1, _reduce_shape, fusion="reduce",
               vjp=_reduce_max_vjp, attrs=_reduce_attrs, flops=lambda ins, out, a: prod(ins[0]),
               doc="Maximum over the given axes (every axis when None)."))
register(OpDef("broadcast_like", 2, _broadcast_like_shape,
               fusion="broadcast", kind="gradient",
               doc="Operand 0 repeated to the shape of operand 1 (a sum's gradient)."))
register(OpDef("reduce_max_grad", 3, lambda s, d, a: (s[1], d[1]),
               fusion="opaque", kind="gradient", attrs={"axes": Attr(check=lambda v: isinstance(v, list))},
               doc="dy routed to the maxima of each reduced group, shared among ties."))
register(OpDef("divide", 2, lambda s, d, a: (broadcast_shapes(*s), same_dtype(d, 0, 1)),
               fusion="broadcast", vjp=_divide_vjp, flops=elementwise_flops(1),
               doc="a / b with NumPy broadcasting."))
register(OpDef("log", 1, like_input(0), fusion="elementwise", inplace=True,
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("divide", [dy, ins[0]])],
               flops=elementwise_flops(1), doc="The natural logarithm."))


def _one_hot_shape(shapes, dtypes, attrs):
    (ids,) = shapes
    if not dtypes[0].startswith("int"):
        raise OpShapeError(f"labels must be integers, got {dtypes[0]}")
    return (*ids, attrs["classes"]), attrs["dtype"]


register(OpDef("one_hot", 1, _one_hot_shape, fusion="injective",
               vjp=lambda ctx, ins, out, dy, a: [None],
               attrs={"classes": Attr(check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
                                      expect="a positive int"),
                      "dtype": Attr("float32", lambda v: v in ("float32", "float64"), "float32 or float64")},
               doc="Integer labels (N, ...) -> rows (N, ..., classes) of 0 and 1; a label out of "
                   "range gives zeros."))
