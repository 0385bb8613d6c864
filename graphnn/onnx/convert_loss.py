"""Converters for SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.

ONNX's (N, C, d1, d2, ...) form is the loss over N * d1 * d2 ... rows, so the
scores are moved to channels-last and flattened into rows first. Plain means
and sums become graphnn's softmax_cross_entropy; reduction 'none', per-class
weights and ignore_index are built from ordinary ops: the label of each row
picks its score and its class weight through a one-hot row (``one_hot``: an
ignored label outside 0..C-1 gives a row of zeros; one inside weighs zero). A
weighted mean divides by the weights' sum, as ONNX defines it.
"""
from __future__ import annotations

from math import prod

import numpy as np

from .converters import (
    Unsupported,
    converter,
    dtype_of,
    need_floats,
    out,
    reshape,
    shape_of,
)


def _rows(ctx, scores, labels, name):
    """(rows of scores (M, C), labels (M,)) for (N, C, d...) scores, (N, d...) labels."""
    s = shape_of(scores)
    if len(s) == 2:
        return scores, labels
    if s[0] is None:
        raise Unsupported(f"scores {s} with a symbolic batch and extra axes")
    last = ctx.op("transpose", [scores], f"{name}/channels_last", perm=[0, *range(2, len(s)), 1])
    rows = prod(d for i, d in enumerate(s) if i != 1)
    return (reshape(ctx, last, (rows, s[1]), f"{name}/score_rows"),
            reshape(ctx, labels, (rows,), f"{name}/label_rows"))


def _check(node, ins, a):
    ignore = a.get("ignore_index")
    reduction = a.get("reduction", b"mean")
    reduction = reduction.decode() if isinstance(reduction, bytes) else reduction
    if reduction not in ("mean", "sum", "none"):
        raise Unsupported(f"reduction={reduction!r}; supported: 'mean', 'sum', 'none'")
    need_floats(ins[0], what=node.op_type)
    if not dtype_of(ins[1]).startswith("int"):
        raise Unsupported(f"labels of dtype {dtype_of(ins[1])}; expected integers")
    return reduction, (ins[2] if len(ins) > 2 else None), ignore


def _picked(ctx, log_probs, labels, reduction, name, weights=None, ignore=None):
    """-weight[label] * log_probs[row, label], reduced (see the module's note)."""
    s = shape_of(log_probs)
    rows, ids = _rows(ctx, log_probs, labels, name)
    m, c = shape_of(rows)
    dtype = dtype_of(log_probs)
    onehot = ctx.op("one_hot", [ids], f"{name}/onehot", classes=c, dtype=dtype)
    picked = ctx.op("multiply", [rows, onehot], f"{name}/picked")
    per_row = ctx.op("matmul", [picked, np.ones((c, 1), dtype=dtype)], f"{name}/per_row")
    row_weight = None
    if weights is not None or (ignore is not None and 0 <= ignore < c):
        keep = np.ones((c, 1), dtype=dtype)
        if ignore is not None and 0 <= ignore < c:
            keep[ignore] = 0                 # outside 0..C-1 the one-hot row is zero already
        table = keep
        if weights is not None:
            w = reshape(ctx, weights, (c, 1), f"{name}/weight_column")
            table = ctx.op("multiply", [w, keep], f"{name}/weight_table") if not keep.all() else w
        row_weight = ctx.op("matmul", [onehot, table], f"{name}/row_weight")          # (M, 1)
    elif ignore is not None:                 # an ignored label out of range: count the others
        row_weight = ctx.op("matmul", [onehot, np.ones((c, 1), dtype=dtype)], f"{name}/row_weight")
    if row_weight is not None:
        per_row = ctx.op("multiply", [per_row, row_weight], f"{name}/weighted")
    if reduction == "none":
        per_item = reshape(ctx, per_row, (s[0], *s[2:]), f"{name}/per_item")
        return ctx.op("scale", [per_item], name, factor=-1.0)
    ones = np.ones((1, m), dtype=dtype)
    total = reshape(ctx, ctx.op("matmul", [ones, per_row], f"{name}/total"), (), f"{name}/scalar")
    if reduction == "sum":
        return ctx.op("scale", [total], name, factor=-1.0)
    if row_weight is None:
        return ctx.op("scale", [total], name, factor=-1.0 / m)
    weight_sum = reshape(ctx, ctx.op("matmul", [ones, row_weight], f"{name}/weight_sum"), (),
                         f"{name}/weight_total")
    return ctx.op("scale", [ctx.op("divide", [total, weight_sum], f"{name}/mean")], name, factor=-1.0)


@converter("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy(ctx, node, ins, a):
    reduction, weights, ignore = _check(node, ins, a)
    name = out(node)
    wants_log_prob = len(node.output) > 1 and node.output[1]
    if reduction == "none" or wants_log_prob or weights is not None or ignore is not None:
        log_prob = ctx.op("log_softmax", [ins[0]], node.output[1] if wants_log_prob else f"{name}/log_prob",
                          axis=1)
        return [_picked(ctx, log_prob, ins[1], reduction, name, weights, ignore), log_prob]
    scores, labels = _rows(ctx, ins[0], ins[1], name)
    return [ctx.op("softmax_cross_entropy", [scores, labels], name, reduction=reduction)]


@converter("NegativeLogLikelihoodLoss")
def _nll(ctx, node, ins, a):
    reduction, weights, ignore = _check(node, ins, a)
    return [_picked(ctx, ins[0], ins[1], reduction, out(node), weights, ignore)]
