"""Ops that change the shape, not the values: flatten and reshape.

Both are views: the result is the operand's bytes under a new shape, so no
kernel runs and no buffer is allocated.

The batch symbol stays in place; every other dimension must account for the
same number of elements.

>>> from graphnn.compiler.ops import OPS
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


register(OpDef("flatten", 1, _flatten_shape, fusion="injective", view=True,
               vjp=_back_to_input, doc="(N, d1, d2, ...) -> (N, d1*d2*...)"))
register(OpDef("reshape", 1, _reshape_shape, fusion="injective", view=True,
               vjp=_back_to_input,
               attrs={"shape": Attr(check=lambda v: isinstance(v, (tuple, list)) and all(
                   d is None or (isinstance(d, int) and d > 0) for d in v),
                   expect="a shape of positive ints, None for the batch")},
               doc="A new shape with the same elements; None keeps the batch."))


def _axis_in(shape, axis, what="axis"):
    if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
        raise OpShapeError(f"{what} {axis} is out of range for shape {fmt_shape(shape)}")
    return axis % len(shape)


def _concat_shape(shapes, dtypes, attrs):
    ref = shapes[0]
    axis = _axis_in(ref, attrs["axis"])
    if ref[axis] is None:
        raise OpShapeError("cannot concatenate along the batch axis")
    for i, s in enumerate(shapes):
        if len(s) != len(ref) or any(a != b for k, (a, b) in enumerate(zip(s, ref)) if k != axis):
            raise OpShapeError(f"operand {i} has shape {fmt_shape(s)}; every operand must match "
                               f"{fmt_shape(ref)} except along axis {attrs['axis']}")
    if len(set(dtypes)) != 1:
        raise OpShapeError(f"operand dtypes differ: {', '.join(dtypes)}")
    return ref[:axis] + (sum(s[axis] for s in shapes),) + ref[axis + 1:], dtypes[0]


def _concat_vjp(ctx, ins, out, dy, attrs):
    axis, start, grads = attrs["axis"], 0, []
    for x in ins:
        size = ctx.shape(x)[axis]
        grads.append(ctx.emit("slice", [dy], axis=axis, start=start, stop=start + size))
        start += size
    return grads


def _slice_shape(shapes, dtypes, attrs):
    (x,) = shapes
    axis = _axis_in(x, attrs["axis"])
    start, stop = attrs["start"], attrs["stop"]
    if x[axis] is None or not 0 <= start < stop <= x[axis]:
        raise OpShapeError(f"slice [{start}:{stop}] does not fit axis {attrs['axis']} of "
                           f"{fmt_shape(x)}")
    return x[:axis] + (stop - start,) + x[axis + 1:], dtypes[0]


def _slice_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("slice_grad", [dy], size=ctx.shape(ins[0])[attrs["axis"] % len(ctx.shape(ins[0]))],
                     **attrs)]


def _slice_grad_shape(shapes, dtypes, attrs):
    (dy,) = shapes
    axis = _axis_in(dy, attrs["axis"])
    return dy[:axis] + (attrs["size"],) + dy[axis + 1:], dtypes[0]


def _transpose_shape(shapes, dtypes, attrs):
    (x,), perm = shapes, tuple(attrs["perm"])
    if sorted(perm) != list(range(len(x))):
        raise OpShapeError(f"perm {list(perm)} is not a permutation of the {len(x)} axes of "
                           f"{fmt_shape(x)}")
    if x and x[0] is None and perm[0] != 0:
        raise OpShapeError("the batch axis must stay first: perm must start with 0")
    return tuple(x[p] for p in perm), dtypes[0]


def _transpose_vjp(ctx, ins, out, dy, attrs):
    perm = list(attrs["perm"])
    return [ctx.emit("transpose", [dy], perm=[perm.index(i) for i in range(len(perm))])]


_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
_axis_attr = Attr(-1, _int, "an int axis")

register(OpDef("concat", None, _concat_shape, fusion="injective",
               vjp=_concat_vjp, attrs={"axis": _axis_attr},
               doc="Operands joined along an axis (not the batch axis)."))
register(OpDef("slice", 1, _slice_shape, fusion="injective", vjp=_slice_vjp,
               attrs={"axis": _axis_attr, "start": Attr(check=_int, expect="an int"),
                      "stop": Attr(check=_int, expect="an int")},
               doc="x[..., start:stop, ...] along one axis."))
register(OpDef("slice_grad", 1, _slice_grad_shape, fusion="injective",
               kind="gradient",
               attrs={"axis": _axis_attr, "start": Attr(check=_int), "stop": Attr(check=_int),
                      "size": Attr(check=_int)},
               doc="dy placed at [start:stop] of zeros of the sliced operand's size."))
register(OpDef("transpose", 1, _transpose_shape, fusion="injective",
               vjp=_transpose_vjp,
               attrs={"perm": Attr(check=lambda v: isinstance(v, (list, tuple)), expect="a permutation")},
               doc="Axes permuted (the batch axis stays first)."))


def _slices_grad_shape(shapes, dtypes, attrs):
    ref = shapes[0]
    axis = _axis_in(ref, attrs["axis"])
    spans = list(zip(attrs["starts"], attrs["stops"]))
    if len(spans) != len(shapes):
        raise OpShapeError(f"{len(shapes)} pieces but {len(spans)} spans")
    for s, (a, b) in zip(shapes, spans):
        if s[axis] != b - a or not 0 <= a < b <= attrs["size"]:
            raise OpShapeError(f"piece {fmt_shape(s)} does not fit span [{a}:{b}] of {attrs['size']}")
    return ref[:axis] + (attrs["size"],) + ref[axis + 1:], dtypes[0]


register(OpDef("slices_grad", None, _slices_grad_shape, fusion="injective",
               kind="gradient",
               attrs={"axis": _axis_attr, "size": Attr(check=_int),
                      "starts": Attr(check=lambda v: isinstance(v, list)),
                      "stops": Attr(check=lambda v: isinstance(v, list))},
               doc="The gradients of several slices of one value, placed into one buffer "
                   "(summed where spans overlap; zero elsewhere)."))
