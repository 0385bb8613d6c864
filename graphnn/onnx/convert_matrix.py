"""Converters for MatMul, Gemm and Gather: products and lookups.

A Gemm with a vector bias becomes matmul + bias_add (a dense layer, its weight
and bias trainable under their ONNX names); Gather is graphnn's embedding, the
gathered axis moved first and the rest flattened when it is not axis 0.
"""
from __future__ import annotations

from math import prod

import numpy as np

from .converters import (
    Unsupported,
    _axis,
    converter,
    dtype_of,
    is_const,
    need_floats,
    out,
    reshape,
    shape_of,
)


@converter("MatMul")
def _matmul(ctx, node, ins, a):
    need_floats(*ins, what="MatMul")
    a_, b_ = ins
    sa, sb = shape_of(a_), shape_of(b_)
    if len(sa) > 1 and len(sb) > 1:
        return [ctx.op("matmul", ins, out(node))]
    # NumPy's rule for vectors: a row on the left, a column on the right, then dropped
    name = out(node)
    a2 = reshape(ctx, a_, (1, *sa), f"{name}/row") if len(sa) == 1 else a_
    b2 = reshape(ctx, b_, (*sb, 1), f"{name}/column") if len(sb) == 1 else b_
    y = ctx.op("matmul", [a2, b2], f"{name}/matrix")
    s = list(shape_of(y))
    if len(sb) == 1:
        s.pop(-1)
    if len(sa) == 1:
        s.pop(-2 if len(sb) > 1 else -1)
    return [reshape(ctx, y, tuple(s), name)]


@converter("Gemm")
def _gemm(ctx, node, ins, a):
    x, w = ins[:2]
    bias = ins[2] if len(ins) > 2 else None
    need_floats(x, w, bias, what="Gemm")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    name = out(node)
    has_bias = bias is not None
    y = ctx.op("matmul", [x, w], f"{name}/matmul" if has_bias or alpha != 1 else name,
               transpose_a=bool(a.get("transA", 0)), transpose_b=bool(a.get("transB", 0)))
    if alpha != 1:
        y = ctx.op("scale", [y], f"{name}/alpha" if has_bias else name, factor=alpha)
    if not has_bias:
        return [y]
    if beta != 1:
        bias = bias * np.asarray(beta, bias.dtype) if is_const(bias) else \
            ctx.op("scale", [bias], f"{name}/beta", factor=beta)
    units = shape_of(y)[-1]
    if shape_of(bias) in ((units,), (1, units)) and is_const(bias) or shape_of(bias) == (units,):
        bias = reshape(ctx, bias, (units,), f"{name}/bias")
        return [ctx.op("bias_add", [y, bias], name, axis=-1)]
    return [ctx.op("add", [y, bias], name)]


@converter("Gather")
def _gather(ctx, node, ins, a):
    data, idx = ins
    s = shape_of(data)
    axis = _axis(a, len(s), 0)
    if not dtype_of(idx).startswith("int"):
        raise Unsupported(f"indices of dtype {dtype_of(idx)}")
    if is_const(idx):
        idx = np.where(idx < 0, idx + s[axis], idx)
        if (idx < 0).any() or (idx >= s[axis]).any():
            raise Unsupported(f"indices out of range for axis {axis} of size {s[axis]}")
    elif not is_const(data) and s[axis] is None:
        raise Unsupported("gathering along the batch axis")
    need_floats(data, what="Gather")
    name = out(node)
    if not is_const(idx):          # run-time indices: a negative one counts from the end
        zero, size = np.zeros((), dtype_of(idx)), np.array(s[axis], dtype_of(idx))
        negative = ctx.op("compare", [idx, zero], f"{name}/negative", relation="less")
        idx = ctx.op("where", [negative, ctx.op("add", [idx, size], f"{name}/from_end"), idx],
                     f"{name}/indices")
    # rows of a table: move the axis first, flatten the rest, look up, restore
    rest = [i for i in range(len(s)) if i != axis]
    table = data if axis == 0 else ctx.op("transpose", [data], f"{name}/axis_first", perm=[axis, *rest])
    inner = [s[i] for i in rest]
    table = reshape(ctx, table, (s[axis], prod(inner)), f"{name}/table")
    rows = ctx.op("embedding", [idx, table], f"{name}/rows" if inner != [prod(inner)] or axis else name)
    ishape = shape_of(idx)
    rows = reshape(ctx, rows, (*ishape, *inner), f"{name}/rows_shaped" if axis else name)
    if axis == 0:
        return [rows]
    k = len(ishape)          # rows: idx dims, then the other axes; put idx dims at `axis`
    perm = [*range(k, k + axis), *range(k), *range(k + axis, k + len(inner))]
    return [ctx.op("transpose", [rows], name, perm=perm)]
