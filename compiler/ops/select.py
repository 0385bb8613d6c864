"""Comparisons, selection and element gathers: what ONNX function bodies
(Elu, LeakyRelu, NegativeLogLikelihoodLoss expanded) are built from.

graphnn has no bool tensors: a comparison gives a mask of 0.0 and 1.0 (float32
by default), through which no gradient flows. ``where`` reads a mask as "not
zero" and copies each element from one branch, so an infinity or NaN in the
branch not taken never reaches the result (a * c + b * (1 - c) would leak it).

>>> from graphnn.compiler.ops import OPS
>>> OPS["compare"].infer([(None, 3), ()], ["float64", "float64"], {"relation": "less", "dtype": "float32"})
((None, 3), 'float32')
>>> OPS["where"].infer([(None, 3), (3,), ()], ["float32", "int64", "int64"], {})
((None, 3), 'int64')
>>> OPS["gather_elements"].infer([(None, 5), (None, 1)], ["float32", "int64"], {"axis": 1})
((None, 1), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from .base import Attr, OpDef, broadcast_shapes, elementwise_flops, fmt_shape, register

RELATIONS = ("less", "less_equal", "greater", "greater_equal", "equal")


def _compare_shape(shapes, dtypes, attrs):
    if dtypes[0] != dtypes[1]:
        raise OpShapeError(f"operand dtypes differ: {dtypes[0]}, {dtypes[1]}; cast one of them")
    return broadcast_shapes(*shapes), attrs["dtype"]


_mask_dtype = Attr("float32", lambda v: v in ("float32", "float64"), "float32 or float64")

register(OpDef("compare", 2, _compare_shape, fusion="opaque",
               vjp=lambda ctx, ins, out, dy, a: [None, None],
               attrs={"relation": Attr(check=lambda v: v in RELATIONS, expect=" or ".join(RELATIONS)),
                      "dtype": _mask_dtype},
               flops=elementwise_flops(1),
               doc="a <relation> b with NumPy broadcasting, as a mask of 0.0 and 1.0 (no gradient)."))


def _where_shape(shapes, dtypes, attrs):
    if dtypes[1] != dtypes[2]:
        raise OpShapeError(f"the branches' dtypes differ: {dtypes[1]}, {dtypes[2]}; cast one of them")
    return broadcast_shapes(broadcast_shapes(shapes[0], shapes[1]), shapes[2]), dtypes[1]


def _where_vjp(ctx, ins, out, dy, attrs):
    cond = ins[0]
    grads = [None]
    for branch, x in (("taken", ins[1]), ("not_taken", ins[2])):
        g = ctx.emit("where_grad", [cond, dy], branch=branch)
        grads.append(g if ctx.shape(x) == ctx.shape(out) else ctx.emit("sum_to", [g], shape=ctx.shape(x)))
    return grads


register(OpDef("where", 3, _where_shape, fusion="opaque", vjp=_where_vjp,
               flops=elementwise_flops(1),
               doc="a where the mask is not zero, else b (NumPy broadcasting over all three); "
                   "the branch not taken is never read, so its infinities do not leak."))
register(OpDef("where_grad", 2, lambda s, d, a: (s[1], d[1]), fusion="opaque", kind="gradient",
               attrs={"branch": Attr(check=lambda v: v in ("taken", "not_taken"),
                                     expect="'taken' or 'not_taken'")},
               doc="dy where the mask selects the branch (taken: not zero), else 0."))


def _gather_elements_shape(shapes, dtypes, attrs):
    x, idx = shapes
    if not dtypes[1].startswith("int"):
        raise OpShapeError(f"indices must be integers, got {dtypes[1]}")
    if len(x) != len(idx):
        raise OpShapeError(f"data {fmt_shape(x)} and indices {fmt_shape(idx)} differ in rank")
    axis = attrs["axis"]
    if not -len(x) <= axis < len(x):
        raise OpShapeError(f"axis {axis} is out of range for shape {fmt_shape(x)}")
    for i, (a, b) in enumerate(zip(x, idx)):
        if i != axis % len(x) and a != b and a is not None and b is not None and b > a:
            raise OpShapeError(f"indices {fmt_shape(idx)} exceed data {fmt_shape(x)} on axis {i}")
    return idx, dtypes[0]


def _gather_elements_vjp(ctx, ins, out, dy, attrs):
    x, idx = ins
    return [ctx.emit("gather_elements_grad", [dy, idx, x], axis=attrs["axis"]), None]


_int_axis = Attr(0, lambda v: isinstance(v, int) and not isinstance(v, bool), "an int axis")
register(OpDef("gather_elements", 2, _gather_elements_shape, fusion="injective",
               vjp=_gather_elements_vjp, attrs={"axis": _int_axis},
               flops=lambda ins, out, a: prod(d or 1 for d in out),
               doc="y[..., i, ...] = x[..., idx[..., i, ...], ...] along axis (ONNX GatherElements, "
                   "NumPy take_along_axis); negative indices count from the end."))
register(OpDef("gather_elements_grad", 3, lambda s, d, a: (s[2], d[0]), fusion="opaque",
               kind="gradient", attrs={"axis": _int_axis},
               doc="dy scatter-added into zeros shaped like x (operand 2) at the gathered places."))
