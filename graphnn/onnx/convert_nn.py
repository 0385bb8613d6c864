"""Converters for convolution, pooling, batch normalization and resizing.

ONNX writes padding as [begin..., end...] per spatial axis, or as ``auto_pad``;
graphnn's shapes are static, so both become explicit (top, bottom, left, right)
padding here. One-dimensional forms run as images of height 1, as graphnn's own
conv1d does.

>>> same_pads("SAME_LOWER", [5], [2], [2])
([1], [0])
"""
from __future__ import annotations

from math import ceil

from .converters import (
    Unsupported,
    converter,
    is_const,
    need_floats,
    out,
    reshape,
    shape_of,
)


def _text(v, default):
    v = default if v is None else v
    return v.decode() if isinstance(v, bytes) else v


def same_pads(mode, sizes, kernels, strides):
    """(begin, end) padding that gives ceil(size / stride) outputs; SAME_UPPER puts
    the odd pixel at the end, SAME_LOWER at the beginning.

    Size 5, kernel 2, stride 2: 3 outputs need one pixel of padding:

    >>> same_pads("SAME_UPPER", [5], [2], [2]), same_pads("SAME_LOWER", [5], [2], [2])
    (([0], [1]), ([1], [0]))
    >>> same_pads("SAME_UPPER", [4, 4], [3, 3], [1, 1])      # a 3x3 kernel at stride 1: 1 each side
    ([1, 1], [1, 1])
    """
    begin, end = [], []
    for n, k, s in zip(sizes, kernels, strides):
        total = max((ceil(n / s) - 1) * s + k - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return begin, end


def _window(a, sizes, kernels, what):
    """(strides, dilations, begin pads, end pads) for a sliding window over ``sizes``."""
    n = len(sizes)
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    auto = _text(a.get("auto_pad"), "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(a.get("pads", [0] * 2 * n))
        begin, end = pads[:n], pads[n:]
    elif auto == "VALID":
        begin, end = [0] * n, [0] * n
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        spans = [d * (k - 1) + 1 for k, d in zip(kernels, dilations)]
        begin, end = same_pads(auto, sizes, spans, strides)
    else:
        raise Unsupported(f"auto_pad={auto!r}; supported: NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    if min(begin + end) < 0:
        raise Unsupported(f"negative padding {begin + end} of a {what}")
    return strides, dilations, begin, end


def _as_image(ctx, x, name, what):
    """(N, C, H, W) view of x and whether it was a 1-D (N, C, L) sequence."""
    s = shape_of(x)
    if len(s) == 4:
        return x, False
    if len(s) == 3:
        return reshape(ctx, x, (s[0], s[1], 1, s[2]), f"{name}/as_image"), True
    raise Unsupported(f"a {len(s) - 2}-D {what} (input {s}); graphnn's are 1-D and 2-D")


def _two_d(values, one_d, fill):
    return [fill, *values] if one_d else list(values)


def _from_image(ctx, y, one_d, name):
    """Undo _as_image: a 1-D result drops the height-1 axis it was computed with."""
    if not one_d:
        return y
    s = shape_of(y)
    return reshape(ctx, y, (s[0], s[1], s[3]), name)


def _conv_operands(ctx, node, ins, what):
    """Conv and ConvTranspose alike: (x, w, bias, name, image, one_d, w's shape), a 1-D
    convolution's input and weight seen as images of height 1."""
    x, w = ins[:2]
    bias = ins[2] if len(ins) > 2 else None
    need_floats(x, w, bias, what=node.op_type)
    name = out(node)
    img, one_d = _as_image(ctx, x, name, what)
    ws = shape_of(w)
    if one_d:
        w = reshape(ctx, w, (ws[0], ws[1], 1, ws[2]), f"{name}/W_2d")
    return x, w, bias, name, img, one_d, ws


@converter("Conv")
def _conv(ctx, node, ins, a):
    x, w, bias, name, img, one_d, ws = _conv_operands(ctx, node, ins, "convolution")
    strides, dil, begin, end = _window(a, shape_of(x)[2:], ws[2:], "convolution")
    strides, dil = _two_d(strides, one_d, 1), _two_d(dil, one_d, 1)
    begin, end = _two_d(begin, one_d, 0), _two_d(end, one_d, 0)
    if "kernel_shape" in a and list(a["kernel_shape"]) != list(ws[2:]):
        raise Unsupported(f"kernel_shape {a['kernel_shape']} differs from the weight's {ws[2:]}")
    y = ctx.op("conv2d", [img, w], f"{name}/conv" if bias is not None or one_d else name,
               strides=tuple(strides), dilation=tuple(dil), groups=int(a.get("group", 1)),
               padding=(begin[0], end[0], begin[1], end[1]))
    if bias is not None:
        y = ctx.op("bias_add", [y, bias], f"{name}/bias_add" if one_d else name, axis=1)
    return [_from_image(ctx, y, one_d, name)]


@converter("ConvTranspose")
def _conv_transpose(ctx, node, ins, a):
    x, w, bias, name, img, one_d, ws = _conv_operands(ctx, node, ins, "up-convolution")
    sizes, n = shape_of(x)[2:], len(ws) - 2
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    extra = list(a.get("output_padding", [0] * n))
    auto = _text(a.get("auto_pad"), "NOTSET")
    spans = [d * (k - 1) + 1 for k, d in zip(ws[2:], dil)]
    full = [s * (i - 1) + e + k for s, i, e, k in zip(strides, sizes, extra, spans)]
    wanted = list(a["output_shape"])[-n:] if "output_shape" in a else (
        [i * s for i, s in zip(sizes, strides)] if auto in ("SAME_UPPER", "SAME_LOWER") else None)
    if wanted is not None:
        begin, end = [], []
        for i, (f, o) in enumerate(zip(full, wanted)):
            total = f - o
            if total < 0:                        # the output is larger: extra rows at the end
                extra[i] -= total
                total = 0
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID" or "pads" not in a:
        begin, end = [0] * n, [0] * n
    else:
        begin, end = list(a["pads"][:n]), list(a["pads"][n:])
    strides, dil, extra = _two_d(strides, one_d, 1), _two_d(dil, one_d, 1), _two_d(extra, one_d, 0)
    begin, end = _two_d(begin, one_d, 0), _two_d(end, one_d, 0)
    y = ctx.op("conv_transpose2d", [img, w], f"{name}/upconv" if bias is not None or one_d else name,
               strides=tuple(strides), dilation=tuple(dil), groups=int(a.get("group", 1)),
               padding=(begin[0], end[0], begin[1], end[1]),
               output_padding=tuple(extra) if any(extra) else None)
    if bias is not None:
        y = ctx.op("bias_add", [y, bias], f"{name}/bias_add" if one_d else name, axis=1)
    return [_from_image(ctx, y, one_d, name)]


@converter("MaxPool", "AveragePool")
def _pool(ctx, node, ins, a):
    x = ins[0]
    need_floats(x, what=node.op_type)
    if len(node.output) > 1 and node.output[1]:
        raise Unsupported("the Indices output; graphnn's max pooling returns values only")
    name = out(node)
    img, one_d = _as_image(ctx, x, name, "pooling")
    k = list(a["kernel_shape"])
    strides, dil, begin, end = _window(a, shape_of(x)[2:], k, "pooling")
    k, strides, dil = _two_d(k, one_d, 1), _two_d(strides, one_d, 1), _two_d(dil, one_d, 1)
    begin, end = _two_d(begin, one_d, 0), _two_d(end, one_d, 0)
    attrs = {"pool_size": tuple(k), "strides": tuple(strides), "ceil_mode": bool(a.get("ceil_mode", 0)),
             "padding": (begin[0], end[0], begin[1], end[1]), "dilation": tuple(dil)}
    if node.op_type == "AveragePool":
        attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
    op = "max_pool2d" if node.op_type == "MaxPool" else "avg_pool2d"
    y = ctx.op(op, [img], f"{name}/pool" if one_d else name, **attrs)
    return [_from_image(ctx, y, one_d, name)]


@converter("GlobalAveragePool")
def _global_avg_pool(ctx, node, ins, a):
    x = ins[0]
    need_floats(x, what="GlobalAveragePool")
    name = out(node)
    img, one_d = _as_image(ctx, x, name, "pooling")
    pooled = ctx.op("global_avg_pool", [img], f"{name}/mean")
    s = shape_of(pooled)
    return [reshape(ctx, pooled, (*s, 1) if one_d else (*s, 1, 1), name)]


@converter("BatchNormalization")
def _batch_norm(ctx, node, ins, a):
    x, gamma, beta, mean, var = ins
    need_floats(*ins, what="BatchNormalization")
    eps = float(a.get("epsilon", 1e-5))
    name = out(node)
    if a.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
        return _batch_norm_training(ctx, node, ins, float(a.get("momentum", 0.9)), eps)
    if all(is_const(v) for v in (gamma, beta, mean, var)):
        # a batch_norm layer: fine-tuning then updates the running statistics too
        layer = ctx.free(name)
        y = ctx.g.batch_norm(x, axis=1, momentum=float(a.get("momentum", 0.9)), eps=eps, name=layer)
        for key, value in (("gamma", gamma), ("beta", beta), ("running_mean", mean), ("running_var", var)):
            ctx.weights[f"{layer}/{key}"] = value
        return [y]
    return [ctx.op("normalize", [x, mean, var, gamma, beta], name, axis=1, eps=eps)]


def _batch_norm_training(ctx, node, ins, momentum, eps):
    """Training mode: normalize by the batch's own mean and (population) variance
    over every axis but the channels; the running statistics come out moved
    toward them: running * momentum + batch * (1 - momentum)."""
    x, gamma, beta, mean, var = ins
    name = out(node)
    m = ctx.op("batch_mean", [x], f"{name}/batch_mean", axis=1)
    v = ctx.op("batch_var", [x, m], f"{name}/batch_var", axis=1)
    y = ctx.op("normalize", [x, m, v, gamma, beta], name, axis=1, eps=eps)
    outs = [y]
    for k, (running, batch) in enumerate(((mean, m), (var, v)), 1):
        if len(node.output) > k and node.output[k]:
            kept = ctx.op("scale", [running], f"{node.output[k]}/kept", factor=momentum)
            moved = ctx.op("scale", [batch], f"{node.output[k]}/moved", factor=1.0 - momentum)
            outs.append(ctx.op("add", [kept, moved], node.output[k]))
    return outs
