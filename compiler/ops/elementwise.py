"""Sums: add (with broadcasting), add_n (gradient accumulation), sum_to.

>>> from graphnn.compiler.ops import OPS
>>> OPS["add"].infer([(None, 3), (3,)], ["float32"] * 2, {})
((None, 3), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import GraphError, OpShapeError, Problem
from ..ir import operands
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


def _add_shape(shapes, dtypes, attrs):
    """Floats, or two operands of one integer dtype (ONNX's integer Add/Sub/Mul,
    which wrap around as NumPy's do; no gradient reaches integers)."""
    if dtypes[0] == dtypes[1] and dtypes[0].startswith(("int", "uint")):
        return broadcast_shapes(*shapes), dtypes[0]
    return broadcast_shapes(*shapes), same_dtype(dtypes, 0, 1)


def _add_vjp(ctx, ins, out, dy, attrs):
    # A broadcast operand receives the gradient summed back to its own shape.
    grads = []
    for x in ins:
        if ctx.shape(x) == ctx.shape(out):
            grads.append(dy)
        else:
            grads.append(ctx.emit("sum_to", [dy], shape=ctx.shape(x)))
    return grads


register(OpDef("add", 2, _add_shape, fusion="broadcast", vjp=_add_vjp, inplace=True,
               flops=elementwise_flops(1), doc="a + b with NumPy broadcasting."))

def _multiply_vjp(ctx, ins, out, dy, attrs):
    a, b = ins
    grads = []
    for x, other in ((a, b), (b, a)):
        g = ctx.emit("multiply", [dy, other])
        grads.append(g if ctx.shape(x) == ctx.shape(out) else ctx.emit("sum_to", [g], shape=ctx.shape(x)))
    return grads


register(OpDef("multiply", 2, _add_shape, fusion="broadcast", vjp=_multiply_vjp,
               inplace=True, flops=elementwise_flops(1), doc="a * b with NumPy broadcasting."))

def _subtract_vjp(ctx, ins, out, dy, attrs):
    a, b = ins
    db = ctx.emit("scale", [dy], factor=-1.0)
    grads = []
    for x, g in ((a, dy), (b, db)):
        grads.append(g if ctx.shape(x) == ctx.shape(out) else ctx.emit("sum_to", [g], shape=ctx.shape(x)))
    return grads


register(OpDef("subtract", 2, _add_shape, fusion="broadcast", vjp=_subtract_vjp,
               inplace=True, flops=elementwise_flops(1), doc="a - b with NumPy broadcasting."))
register(OpDef("scale", 1, like_input(0), fusion="elementwise", inplace=True,
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("scale", [dy], factor=a["factor"])],
               attrs={"factor": Attr(check=lambda v: isinstance(v, (int, float)), expect="a number")},
               flops=elementwise_flops(1), doc="x times a constant factor."))

register(OpDef("add_n", None, like_input(0), fusion="elementwise", inplace=True,
               vjp=lambda ctx, ins, out, dy, a: [dy] * len(ins),
               flops=lambda ins, out, a: (len(ins) - 1) * _size(out),
               doc="The sum of any number of same-shaped operands."))


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _sum_to_shape(shapes, dtypes, attrs):
    (x,), target = shapes, tuple(attrs["shape"])
    try:
        ok = broadcast_shapes(x, target) == x
    except OpShapeError:
        ok = False
    if not ok:
        raise OpShapeError(f"cannot sum {fmt_shape(x)} down to {fmt_shape(target)}")
    return target, same_dtype(dtypes, 0)


register(OpDef("sum_to", 1, _sum_to_shape, fusion="reduce", kind="gradient",
               attrs={"shape": Attr(check=lambda v: isinstance(v, (tuple, list)),
                                    expect="a target shape")},
               flops=lambda ins, out, a: _size(ins[0]),
               doc="Sum a broadcast gradient back to the operand's shape."))


def _mask_shape(shapes, dtypes, attrs):
    return shapes[0], dtypes[0]


def _unmask(rw, mask, ins, attrs):
    """Inference: x * dropout_mask(x) becomes x (a view: no kernel runs)."""
    g = rw.g
    for reader in list(g.successors(mask)):
        others = [i for i in operands(g, reader) if i != mask]
        if g.nodes[reader]["op"] != "multiply" or len(others) != 1:
            raise GraphError([Problem(reader, g.nodes[reader]["op"], "a dropout mask may "
                                      "only be multiplied with the value it masks")])
        rw.become(reader, "linear", others)


def _silence(rw, noise, ins, attrs):
    """Inference: the noise is zero (a VAE's sample becomes its mean)."""
    rw.become(noise, "scale", ins, factor=0.0)


register(OpDef("dropout_mask", 1, _mask_shape, fusion="opaque", stateful=True, inference=_unmask,
               vjp=lambda ctx, ins, out, dy, a: [None],
               attrs={"rate": Attr(check=lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
                                   expect="a rate in [0, 1)"),
                      "seed": Attr(0, lambda v: isinstance(v, int), "an int seed")},
               flops=lambda ins, out, a: prod(out),
               doc="A fresh random mask shaped like its operand at every step: 0 with "
                   "probability rate, else 1 / (1 - rate) (inverted dropout). Reads only "
                   "its operand's shape. Training programs only: inference rewrites "
                   "x * mask to x."))


register(OpDef("exp", 1, like_input(0), fusion="elementwise", inplace=True,
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("multiply", [dy, out])],
               flops=elementwise_flops(1), doc="e^x (its gradient reads the output)."))

register(OpDef("gaussian_noise", 1, _mask_shape, fusion="opaque", stateful=True, inference=_silence,
               vjp=lambda ctx, ins, out, dy, a: [None],
               attrs={"seed": Attr(0, lambda v: isinstance(v, int), "an int seed")},
               flops=lambda ins, out, a: prod(out),
               doc="Standard normal noise shaped like its operand, fresh at every step "
                   "(seeded); zero in evaluation and prediction."))
