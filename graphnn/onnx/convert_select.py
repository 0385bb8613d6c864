"""Converters for comparisons, Where, GatherElements, Cast and Not: the ops
that ONNX's function bodies (Elu, LeakyRelu, NegativeLogLikelihoodLoss
expanded) select with.

graphnn has no bool tensors: Less, Greater, Equal ... give a float32 mask of
0.0 and 1.0 (graphnn's ``compare``), Not flips it, Where copies from the
branch the mask picks (``where``), and a Cast to bool or float of a mask is the
mask itself. Constant inputs never get here: they fold at import.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from .converters import Unsupported, converter, dtype_of, is_const, out, shape_of

_RELATIONS = {"Less": "less", "LessOrEqual": "less_equal", "Greater": "greater",
              "GreaterOrEqual": "greater_equal", "Equal": "equal"}


def _masks(ctx):
    """The names of the values that are masks (bool in ONNX), kept on the context."""
    if not hasattr(ctx, "bool_masks"):
        ctx.bool_masks = set()
    return ctx.bool_masks


def _same_dtype(ctx, node, a, b):
    """A constant operand takes the other's dtype (ONNX requires them equal anyway)."""
    if is_const(a) and not is_const(b):
        a = a.astype(dtype_of(b))
    elif is_const(b) and not is_const(a):
        b = b.astype(dtype_of(a))
    if dtype_of(a) != dtype_of(b):
        raise Unsupported(f"{node.op_type} of {dtype_of(a)} and {dtype_of(b)}")
    return a, b


@converter(*_RELATIONS)
def _compare(ctx, node, ins, a):
    x, y = _same_dtype(ctx, node, *ins)
    if x.__class__ is np.ndarray and y.__class__ is np.ndarray:
        raise Unsupported("a comparison of constants (should have folded)")
    name = out(node)
    _masks(ctx).add(name)
    return [ctx.op("compare", [x, y], name, relation=_RELATIONS[node.op_type])]


@converter("Not")
def _not(ctx, node, ins, a):
    name = out(node)
    _masks(ctx).add(name)
    return [ctx.op("compare", [ins[0], np.zeros((), dtype=dtype_of(ins[0]))], name, relation="equal")]


@converter("Where")
def _where(ctx, node, ins, a):
    cond, x, y = ins
    if is_const(cond):
        cond = cond.astype(np.float32)
    x, y = _same_dtype(ctx, node, x, y)
    return [ctx.op("where", [cond, x, y], out(node))]


@converter("GatherElements")
def _gather_elements(ctx, node, ins, a):
    data, idx = ins
    if not dtype_of(idx).startswith("int"):
        raise Unsupported(f"indices of dtype {dtype_of(idx)}")
    rank = len(shape_of(data))
    axis = a.get("axis", 0)
    if not -rank <= axis < rank:
        raise Unsupported(f"axis {axis} is out of range for rank {rank}")
    return [ctx.op("gather_elements", [data, idx], out(node), axis=axis % rank)]


@converter("Cast")
def _cast(ctx, node, ins, a):
    """A cast to the value's own dtype, or of a mask to bool or a float, is the
    value itself; graphnn converts no other dtypes at run time."""
    x, to = ins[0], helper.tensor_dtype_to_np_dtype(a["to"])
    is_mask = node.input[0] in _masks(ctx)
    if str(to) == dtype_of(x) or (is_mask and to in (np.bool_, np.float32)):
        if is_mask:
            _masks(ctx).add(out(node))
        if is_const(x) or not dtype_of(x).startswith("float"):
            return [x]                     # integer labels: the same tensor, no op
        return [ctx.op("linear", [x], out(node))]
    raise Unsupported(f"a cast from {dtype_of(x)} to {to}; graphnn casts a value only to its own "
                      "dtype (or a comparison's mask to bool or float32)")
