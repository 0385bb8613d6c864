"""Convolution and pooling on channels-first images (N, C, H, W).

``conv2d`` and its two gradients are high-level ops: shape inference and
autodiff see them whole, and the ``lower`` pass rewrites them into
``pad2d`` + ``im2col`` + batched ``matmul`` (+ ``col2im`` + ``crop2d`` for the
input gradient). Pooling runs directly on strided windows, after a ``pad2d``
when padded. One-dimensional versions are builder macros over these (a
sequence (N, C, L) is an image (N, C, 1, L)).

>>> from graphnn.compiler.ops import OPS
>>> attrs = {"strides": (1, 1), "padding": "same", "dilation": (1, 1), "groups": 1}
>>> OPS["conv2d"].infer([(None, 3, 28, 28), (16, 3, 5, 5)], ["float32"] * 2, attrs)
((None, 16, 28, 28), 'float32')
"""
from __future__ import annotations

from math import ceil, prod

from ..errors import OpShapeError
from .base import OPS, Attr, OpDef, fmt_shape, register, same_dtype


def pair(v) -> tuple[int, int]:
    """2 -> (2, 2); (1, 2) -> (1, 2)."""
    return (v, v) if isinstance(v, int) else tuple(v)


def _is_pair(v):
    return (isinstance(v, int) and not isinstance(v, bool) and v > 0) or (
        isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(d, int) and d > 0 for d in v))


def _is_padding(v):
    if v in ("valid", "same"):
        return True
    if isinstance(v, int) and not isinstance(v, bool):
        return v >= 0
    return isinstance(v, (tuple, list)) and len(v) in (2, 4) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)


def resolve_padding(padding, size, kernel, strides, dilation) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding. 'same' gives ceil(size / stride)
    outputs, the odd pixel of padding going to the bottom/right (as TensorFlow).

    >>> resolve_padding("same", (28, 28), (3, 3), (1, 1), (1, 1))
    (1, 1, 1, 1)
    >>> resolve_padding((1, 2), (8, 8), (3, 3), (1, 1), (1, 1))
    (1, 1, 2, 2)
    """
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        pads = []
        for n, k, s, d in zip(size, kernel, strides, dilation):
            total = max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def window_output(size, kernel, strides, dilation, pads) -> tuple[int, int]:
    """Output height and width of a sliding window; an error if it is empty."""
    out = []
    for n, k, s, d, p in zip(size, kernel, strides, dilation, (pads[0] + pads[1], pads[2] + pads[3])):
        span = d * (k - 1) + 1
        if n + p < span:
            raise OpShapeError(f"the window ({k} wide, dilation {d}) is larger than the padded "
                               f"input ({n} + {p} padding)")
        out.append((n + p - span) // s + 1)
    return tuple(out)


def _image(shape, what="input"):
    if len(shape) != 4:
        raise OpShapeError(f"expected a 4-D {what} (N, C, H, W), got {fmt_shape(shape)}")


_strides = Attr((1, 1), _is_pair, "a positive int or a pair of them")
_dilation = Attr((1, 1), _is_pair, "a positive int or a pair of them")
_padding = Attr("valid", _is_padding, "'valid', 'same', an int, (pad_h, pad_w) or "
                                     "(top, bottom, left, right)")
_groups = Attr(1, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
               "a positive int dividing the input and output channels")
CONV_ATTRS = {"strides": _strides, "padding": _padding, "dilation": _dilation, "groups": _groups}


def conv_geometry(x, w, attrs):
    """(pads, (OH, OW)) for input x (N, C, H, W) and weight w (F, C, KH, KW)."""
    s, d = pair(attrs["strides"]), pair(attrs["dilation"])
    pads = resolve_padding(attrs["padding"], x[2:], w[2:], s, d)
    return pads, window_output(x[2:], w[2:], s, d, pads)


def _conv_shape(shapes, dtypes, attrs):
    x, w = shapes
    _image(x)
    if len(w) != 4:
        raise OpShapeError(f"expected a 4-D weight (filters, C, KH, KW), got {fmt_shape(w)}")
    g = attrs["groups"]
    if w[1] * g != x[1]:
        per = f" ({w[1]} per group, {g} groups)" if g > 1 else ""
        raise OpShapeError(f"the input has {x[1]} channels but the weight {fmt_shape(w)} expects "
                           f"{w[1] * g}{per}")
    if w[0] % g:
        raise OpShapeError(f"{w[0]} filters do not split into {g} groups")
    _, (oh, ow) = conv_geometry(x, w, attrs)
    return (x[0], w[0], oh, ow), same_dtype(dtypes, 0, 1)


def _conv_vjp(ctx, ins, out, dy, attrs):
    x, w = ins
    dx = ctx.emit("conv2d_grad_input", [dy, w], input_hw=ctx.shape(x)[2:], **attrs)
    dw = ctx.emit("conv2d_grad_weight", [x, dy], kernel_size=ctx.shape(w)[2:], **attrs)
    return [dx, dw]


def _conv_grad_input_shape(shapes, dtypes, attrs):
    dy, w = shapes
    _image(dy, "gradient")
    h, wd = attrs["input_hw"]
    if dy[1] != w[0]:
        raise OpShapeError(f"the gradient has {dy[1]} channels, the weight {fmt_shape(w)} {w[0]} filters")
    _, out = conv_geometry((dy[0], w[1], h, wd), w, attrs)
    if tuple(out) != tuple(dy[2:]):
        raise OpShapeError(f"a {h}x{wd} image convolved with {fmt_shape(w)} gives {out[0]}x{out[1]}, "
                           f"not the gradient's {dy[2]}x{dy[3]}")
    return (dy[0], w[1] * attrs["groups"], h, wd), same_dtype(dtypes, 0, 1)


def _transposed_size(n, k, s, d, pad, extra):
    return (n - 1) * s - pad + d * (k - 1) + 1 + extra


def _conv_transpose_shape(shapes, dtypes, attrs):
    x, w = shapes
    _image(x)
    g = attrs["groups"]
    if len(w) != 4 or w[0] != x[1]:
        raise OpShapeError(f"expected a weight (in_channels={x[1]}, out_channels"
                           f"{' / groups' if g > 1 else ''}, KH, KW), got {fmt_shape(w)}")
    if x[1] % g:
        raise OpShapeError(f"{x[1]} input channels do not split into {g} groups")
    s, d = pair(attrs["strides"]), pair(attrs["dilation"])
    p = resolve_padding(attrs["padding"], (1, 1), w[2:], (1, 1), d)   # explicit padding only
    extra = pair(attrs["output_padding"]) if attrs["output_padding"] else (0, 0)
    if any(e >= max(si, di) for e, si, di in zip(extra, s, d)):
        raise OpShapeError(f"output_padding {extra} must be smaller than the stride or dilation")
    hw = [_transposed_size(x[2 + i], w[2 + i], s[i], d[i], p[2 * i] + p[2 * i + 1], extra[i])
          for i in range(2)]
    if min(hw) < 1:
        raise OpShapeError(f"the output would be {hw[0]}x{hw[1]}")
    return (x[0], w[1] * g, *hw), same_dtype(dtypes, 0, 1)


def upconv_as_conv(attrs) -> tuple[dict, tuple[int, int]]:
    """conv_transpose2d as the input gradient of a convolution: (that convolution's
    strides, padding, dilation and groups; rows and columns of zeros that follow it).

    ``output_padding`` e lengthens the output at the bottom and right. The
    convolution's window count absorbs e mod stride of it; the rest comes out of
    the bottom/right padding, and what the padding cannot give (possible when
    dilation > stride, as PyTorch allows) are rows that no input reaches: zeros.

    >>> upconv_as_conv({"strides": 1, "dilation": 2, "padding": 1, "output_padding": 1})
    ({'strides': (1, 1), 'dilation': (2, 2), 'groups': 1, 'padding': (1, 0, 1, 0)}, (0, 0))
    >>> upconv_as_conv({"strides": 1, "dilation": 2, "padding": 0, "output_padding": 1})[1]
    (1, 1)
    """
    s, d = pair(attrs["strides"]), pair(attrs["dilation"])
    top, bottom, left, right = resolve_padding(attrs["padding"], (1, 1), (1, 1), (1, 1), d)
    extra = pair(attrs["output_padding"]) if attrs["output_padding"] else (0, 0)
    cut = [e - e % si for e, si in zip(extra, s)]
    conv = {"strides": s, "dilation": d, "groups": attrs.get("groups", 1),
            "padding": (top, max(bottom - cut[0], 0), left, max(right - cut[1], 0))}
    if not any(cut):
        conv["padding"] = attrs["padding"]          # unchanged: the common case reads as written
    return conv, (max(cut[0] - bottom, 0), max(cut[1] - right, 0))


def _conv_transpose_vjp(ctx, ins, out, dy, attrs):
    # y = conv2d_grad_input(x, w): its input gradient is a convolution of dy, and its
    # weight gradient is conv2d's weight gradient with the roles of image and gradient swapped.
    x, w = ins
    conv, zeros = upconv_as_conv(attrs)
    if any(zeros):                      # rows no input reached pass no gradient back
        dy = ctx.emit("crop2d", [dy], pads=[0, zeros[0], 0, zeros[1]])
    return [ctx.emit("conv2d", [dy, w], **conv),
            ctx.emit("conv2d_grad_weight", [dy, x], kernel_size=ctx.shape(w)[2:], **conv)]


def _conv_grad_weight_shape(shapes, dtypes, attrs):
    x, dy = shapes
    return (dy[1], x[1] // attrs["groups"], *attrs["kernel_size"]), same_dtype(dtypes, 0, 1)


_hw = Attr(check=_is_pair, expect="a (height, width) pair")


# ---------------------------------------------------------------- lowering
# The hooks below rewrite a convolution into pad2d + im2col + a batched matmul
# (+ col2im + crop2d for the input gradient). A rewritten node keeps its name,
# so everything that read it still does; the reshapes are views and cost
# nothing. The columns of an input are built once (the rewriter shares equal
# nodes) and read by the forward GEMM and the weight gradient's GEMM.

def _padded(rw, x, pads, value=0.0):
    return rw.emit(f"{x}/pad", "pad2d", [x], pads=list(pads), value=value) if any(pads) else x


def _columns(rw, x, w_shape, attrs):
    pads, _ = conv_geometry(rw.g.nodes[x]["shape"], w_shape, attrs)
    return rw.emit(f"{x}/im2col", "im2col", [_padded(rw, x, pads)], kernel_size=list(w_shape[2:]),
                   strides=list(pair(attrs["strides"])), dilation=list(pair(attrs["dilation"])))


def _weight_matrix(rw, w, groups):
    """(F, C/G, KH, KW) as one matrix, or a stack of one matrix per group."""
    ws = rw.g.nodes[w]["shape"]
    f, k = ws[0], ws[1] * ws[2] * ws[3]
    return rw.emit(f"{w}/matrix", "reshape", [w], shape=[f, k] if groups == 1 else [groups, f // groups, k])


def _per_group(rw, x, groups, rows):
    """(N, rows, L) viewed as (N, G, rows / G, L): a grouped convolution's GEMMs
    are one batched matmul over the groups (the reshapes are views)."""
    if groups == 1:
        return x
    n, _, length = rw.g.nodes[x]["shape"]
    return rw.emit(f"{x}/groups", "reshape", [x], shape=[n, groups, rows // groups, length])


def _lower_conv(rw, node, ins, attrs):
    x, w = ins
    ws, (n, f, oh, ow) = rw.g.nodes[w]["shape"], rw.g.nodes[node]["shape"]
    groups = attrs.get("groups", 1)
    cols = _per_group(rw, _columns(rw, x, ws, attrs), groups, groups * ws[1] * ws[2] * ws[3])
    ym = rw.emit(f"{node}/gemm", "matmul", [_weight_matrix(rw, w, groups), cols])
    rw.become(node, "reshape", [ym], shape=[n, f, oh, ow])


def _lower_conv_fused(rw, node, ins, attrs):
    """A fused convolution: its GEMM becomes the anchor, on (N, F, OH*OW)."""
    conv = attrs["anchor"]["attrs"]
    n_conv = len(ins) - sum(p["extra"] for p in attrs["epilogue"])
    (x, w), extras = ins[:n_conv], ins[n_conv:]
    if conv.get("groups", 1) > 1:
        return _unfuse(rw, node, [x, w], extras, attrs)
    n, f, oh, ow = rw.g.nodes[node]["shape"]
    cols = _columns(rw, x, rw.g.nodes[w]["shape"], conv)
    wm = _weight_matrix(rw, w, 1)
    flat = []
    for e in extras:            # full-size extras (a residual) follow the new layout
        full = rw.g.nodes[e]["shape"] == (n, f, oh, ow)
        flat.append(rw.emit(f"{e}/matrix", "reshape", [e], shape=[n, f, oh * ow]) if full else e)
    matmul = OPS["matmul"]
    anchor = {"op": "matmul", "kernel": matmul.kernel, "attrs": matmul.check_attrs({})[0]}
    gemm = rw.emit(f"{node}/gemm", "fused", [wm, cols, *flat], anchor=anchor, epilogue=attrs["epilogue"])
    rw.become(node, "reshape", [gemm], shape=[n, f, oh, ow])


def _unfuse(rw, node, conv_ins, extras, attrs):
    """A grouped convolution's GEMM yields (N, G, F/G, L), not the (N, F, L)
    layout the epilogue's broadcasts expect: run the convolution on its own,
    then the epilogue ops one by one (the last keeps the node's name)."""
    y = rw.emit(f"{node}/conv", "conv2d", conv_ins, **attrs["anchor"]["attrs"])
    _lower_conv(rw, y, conv_ins, {**OPS["conv2d"].check_attrs({})[0], **attrs["anchor"]["attrs"]})
    parts = attrs["epilogue"]
    for i, part in enumerate(parts):
        args, extras = [y, *extras[:part["extra"]]], extras[part["extra"]:]
        if i == len(parts) - 1:
            rw.become(node, part["op"], args, **part["attrs"])
        else:
            y = rw.emit(f"{node}/{part['op']}", part["op"], args, **part["attrs"])


def _lower_conv_grad_weight(rw, node, ins, attrs):
    x, dy = ins
    ws = rw.g.nodes[node]["shape"]
    n, f, oh, ow = rw.g.nodes[dy]["shape"]
    groups, k = attrs.get("groups", 1), ws[1] * ws[2] * ws[3]
    cols = _per_group(rw, _columns(rw, x, ws, attrs), groups, groups * k)
    dym = _per_group(rw, rw.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * ow]), groups, f)
    per_sample = rw.emit(f"{node}/gemm", "matmul", [dym, cols], transpose_b=True)
    total = [ws[0], k] if groups == 1 else [groups, ws[0] // groups, k]
    summed = rw.emit(f"{node}/sum", "sum_to", [per_sample], shape=total)
    rw.become(node, "reshape", [summed], shape=list(ws))


def _lower_conv_grad_input(rw, node, ins, attrs):
    dy, w = ins
    ws, xs = rw.g.nodes[w]["shape"], rw.g.nodes[node]["shape"]
    n, f, oh, ow = rw.g.nodes[dy]["shape"]
    pads, _ = conv_geometry(xs, ws, attrs)
    hw = [xs[2] + pads[0] + pads[1], xs[3] + pads[2] + pads[3]]
    groups = attrs.get("groups", 1)
    wm = _weight_matrix(rw, w, groups)
    # Stride 1: pad dy's rows to the padded image's width (zeros), so the
    # columns come out "wide" and col2im adds contiguous runs (see col2im).
    wide = pair(attrs["strides"]) == (1, 1)
    if wide and hw[1] > ow:
        dy = rw.emit(f"{dy}/wide", "pad2d", [dy], pads=[0, 0, 0, hw[1] - ow])
    row = hw[1] if wide else ow
    dym = _per_group(rw, rw.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * row]), groups, f)
    dcols = rw.emit(f"{node}/gemm", "matmul", [wm, dym], transpose_a=True)
    if groups > 1:
        dcols = rw.emit(f"{node}/columns", "reshape", [dcols],
                        shape=[n, groups * ws[1] * ws[2] * ws[3], oh * row])
    window = dict(kernel_size=list(ws[2:]), strides=list(pair(attrs["strides"])),
                  dilation=list(pair(attrs["dilation"])), channels=ws[1] * groups, wide=wide)
    if any(pads):
        image = rw.emit(f"{node}/col2im", "col2im", [dcols], image_hw=hw, **window)
        rw.become(node, "crop2d", [image], pads=list(pads))
    else:
        rw.become(node, "col2im", [dcols], image_hw=hw, **window)


def _lower_conv_transpose(rw, node, ins, attrs):
    """The up-convolution is conv2d's input gradient: lower it as one."""
    conv, zeros = upconv_as_conv(attrs)
    conv["input_hw"] = [n - z for n, z in zip(rw.g.nodes[node]["shape"][2:], zeros)]
    if any(zeros):                       # trailing rows no input reaches: zeros after
        inner = rw.emit(f"{node}/reached", "conv2d_grad_input", ins, **conv)
        _lower_conv_grad_input(rw, inner, ins, conv)
        rw.become(node, "pad2d", [inner], pads=[0, zeros[0], 0, zeros[1]], value=0.0)
        return
    rw.become(node, "conv2d_grad_input", ins, **conv)
    _lower_conv_grad_input(rw, node, ins, conv)


register(OpDef(
    "conv2d", 2, _conv_shape, fusion="out-elementwise-fusable", vjp=_conv_vjp,
    lower=_lower_conv, lower_fused=_lower_conv_fused, fold_axes=lambda attrs, rank: (1, 0),
    attrs=CONV_ATTRS, flops=lambda ins, out, a: 2 * prod(out) * prod(ins[1][1:]),
    doc="2-D cross-correlation of (N, C, H, W) with weights (F, C / groups, KH, KW); lowered "
        "to im2col + GEMM (one GEMM per group, batched). groups=C is a depthwise convolution."))
register(OpDef(
    "conv2d_grad_input", 2, _conv_grad_input_shape, kind="gradient", lower=_lower_conv_grad_input,
    attrs={**CONV_ATTRS, "input_hw": _hw}, flops=lambda ins, out, a: 2 * prod(ins[0]) * prod(ins[1][1:]),
    doc="Gradient of conv2d with respect to its input: GEMM + col2im."))
register(OpDef(
    "conv2d_grad_weight", 2, _conv_grad_weight_shape, kind="gradient", lower=_lower_conv_grad_weight,
    attrs={**CONV_ATTRS, "kernel_size": _hw}, flops=lambda ins, out, a: 2 * prod(ins[1]) * prod(out[1:]),
    doc="Gradient of conv2d with respect to its weight: im2col + GEMM."))


def _explicit_padding(v):
    return v == "valid" or (_is_padding(v) and v != "same")


register(OpDef(
    "conv_transpose2d", 2, _conv_transpose_shape, fusion="out-elementwise-fusable",
    vjp=_conv_transpose_vjp, lower=_lower_conv_transpose,
    attrs={"strides": _strides, "dilation": _dilation, "groups": _groups,
           "padding": Attr("valid", _explicit_padding, "'valid', an int or pairs (not 'same')"),
           "output_padding": Attr(None, lambda v: v is None or (_is_pair(v) or v == 0),
                                  "None or a non-negative int or pair")},
    flops=lambda ins, out, a: 2 * prod(ins[0]) * prod(ins[1][1:]),
    doc="The up-convolution (PyTorch's ConvTranspose2d): weight (in, out / groups, KH, KW); the "
        "input gradient of a convolution, lowered to GEMM + col2im."))


def _upsample_shape(shapes, dtypes, attrs):
    (x,) = shapes
    _image(x)
    f = pair(attrs["factor"])
    return (x[0], x[1], x[2] * f[0], x[3] * f[1]), dtypes[0]


register(OpDef("upsample2d", 1, _upsample_shape, fusion="injective",
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("upsample2d_grad", [dy], factor=a["factor"])],
               attrs={"factor": Attr(2, _is_pair, "a positive int or pair")},
               doc="Nearest-neighbour upsampling: each pixel repeated factor x factor times."))
register(OpDef("upsample2d_grad", 1,
               lambda s, d, a: ((s[0][0], s[0][1], s[0][2] // pair(a["factor"])[0],
                                 s[0][3] // pair(a["factor"])[1]), d[0]),
               kind="gradient", fusion="reduce",
               attrs={"factor": Attr(2, _is_pair)}, doc="Sum of each factor x factor block."))


# ---------------------------------------------------------------- lowered ops

def _pads(v):
    return isinstance(v, (tuple, list)) and len(v) == 4 and all(isinstance(p, int) and p >= 0 for p in v)


_pad_attrs = {"pads": Attr(check=_pads, expect="(top, bottom, left, right)"),
              "value": Attr(0.0, lambda v: isinstance(v, (int, float)), "a number")}


def _pad_shape(shapes, dtypes, attrs):
    (x,), (t, b, l, r) = shapes, attrs["pads"]
    _image(x)
    return (x[0], x[1], x[2] + t + b, x[3] + l + r), dtypes[0]


def _crop_shape(shapes, dtypes, attrs):
    (x,), (t, b, l, r) = shapes, attrs["pads"]
    _image(x)
    return (x[0], x[1], x[2] - t - b, x[3] - l - r), dtypes[0]


register(OpDef("pad2d", 1, _pad_shape, fusion="injective", attrs=_pad_attrs,
               kind="lowered",
               doc="Pad H and W with a constant (0 for convolution, -inf for max pooling)."))
register(OpDef("crop2d", 1, _crop_shape, fusion="injective", kind="lowered",
               attrs={"pads": _pad_attrs["pads"]}, doc="Remove padding: the inverse of pad2d."))

_window_attrs = {"kernel_size": _hw, "strides": _strides, "dilation": _dilation}


def _im2col_shape(shapes, dtypes, attrs):
    (x,) = shapes
    _image(x)
    k = pair(attrs["kernel_size"])
    oh, ow = window_output(x[2:], k, pair(attrs["strides"]), pair(attrs["dilation"]), (0,) * 4)
    return (x[0], x[1] * k[0] * k[1], oh * ow), dtypes[0]


def _col2im_shape(shapes, dtypes, attrs):
    (cols,) = shapes
    c, (h, w) = attrs["channels"], attrs["image_hw"]
    k, s, d = pair(attrs["kernel_size"]), pair(attrs["strides"]), pair(attrs["dilation"])
    oh, ow = window_output((h, w), k, s, d, (0,) * 4)
    expected = c * k[0] * k[1], oh * (w if attrs["wide"] else ow)
    if tuple(cols[1:]) != expected:
        raise OpShapeError(f"columns {fmt_shape(cols)} do not fit a {c}-channel {h}x{w} image "
                           f"and a {k[0]}x{k[1]} kernel: expected (N, {expected[0]}, {expected[1]})")
    if attrs["wide"] and s != (1, 1):
        raise OpShapeError("wide columns need stride 1")
    return (cols[0], c, h, w), dtypes[0]


register(OpDef("im2col", 1, _im2col_shape, fusion="injective", kind="lowered",
               attrs=_window_attrs, flops=lambda ins, out, a: 0,
               doc="Copy every window of (N, C, H, W) into columns (N, C*KH*KW, OH*OW), "
                   "through a zero-copy strided view."))
register(OpDef("col2im", 1, _col2im_shape, fusion="opaque", kind="lowered",
               attrs={**_window_attrs, "channels": Attr(check=lambda v: isinstance(v, int)),
                      "image_hw": _hw, "wide": Attr(False, lambda v: isinstance(v, bool))},
               flops=lambda ins, out, a: prod(ins[0]),
               doc="Sum columns back into an image: one vectorized add per kernel offset."))


# ---------------------------------------------------------------- pooling

_flag = lambda default: Attr(default, lambda v: isinstance(v, bool), "True or False")
_pool_attrs = {"pool_size": Attr(check=_is_pair, expect="a positive int or pair"),
               "strides": Attr(None, lambda v: v is None or _is_pair(v),
                               "None (the pool size), a positive int or a pair"),
               "padding": _padding, "ceil_mode": _flag(False)}
_avg_attrs = {**_pool_attrs, "count_include_pad": _flag(True),
              # Margins (top, bottom, left, right) of the input that are padding and
              # do not count in a window's mean; lowering sets it when it pads.
              "uncounted": Attr((0, 0, 0, 0), _pads, "(top, bottom, left, right)")}


def ceil_extra(size, kernel, strides, pads) -> tuple[int, int]:
    """Rows and columns ceil_mode adds at the bottom and right: as many as make
    one more window, as long as that window starts inside the input or its
    top/left padding (PyTorch's and ONNX's rule).

    >>> ceil_extra((5, 5), (2, 2), (2, 2), (0, 0, 0, 0))
    (1, 1)
    """
    extra = []
    for i, (n, k, s) in enumerate(zip(size, kernel, strides)):
        begin, end = pads[2 * i], pads[2 * i + 1]
        full = n + begin + end
        out = -(-(full - k) // s) + 1
        if (out - 1) * s >= n + begin:
            out -= 1
        extra.append(max((out - 1) * s + k - full, 0))
    return tuple(extra)


def pool_geometry(x, attrs):
    """(kernel, strides, pads, (OH, OW)) of a pooling node; pads include the
    rows and columns ceil_mode adds at the bottom and right."""
    k = pair(attrs["pool_size"])
    s = pair(attrs["strides"] or attrs["pool_size"])
    pads = resolve_padding(attrs["padding"], x[2:], k, s, (1, 1))
    if attrs.get("ceil_mode"):
        eh, ew = ceil_extra(x[2:], k, s, pads)
        pads = (pads[0], pads[1] + eh, pads[2], pads[3] + ew)
    return k, s, pads, window_output(x[2:], k, s, (1, 1), pads)


def uncounted_margins(x, attrs) -> tuple[int, int, int, int]:
    """The padding an average pool leaves out of its means: all of it without
    count_include_pad, else only what ceil_mode added (as PyTorch)."""
    _, _, pads, _ = pool_geometry(x, attrs)
    if not attrs.get("count_include_pad", True):
        return tuple(pads)
    k, s = pair(attrs["pool_size"]), pair(attrs["strides"] or attrs["pool_size"])
    user = resolve_padding(attrs["padding"], x[2:], k, s, (1, 1))
    return tuple(p - u for p, u in zip(pads, user))


def _pool_shape(shapes, dtypes, attrs):
    (x,) = shapes
    _image(x)
    *_, (oh, ow) = pool_geometry(x, attrs)
    return (x[0], x[1], oh, ow), same_dtype(dtypes, 0)


def _uncounted(x_shape, attrs):
    if "count_include_pad" not in attrs:            # max pooling
        return {}
    return {"uncounted": list(uncounted_margins(x_shape, attrs))}


def _lower_pool(fill):
    """Padded pooling -> pool(pad2d(x)), the padding filled with ``fill``."""
    def lower(rw, node, ins, attrs):
        x_shape = rw.g.nodes[ins[0]]["shape"]
        k, s, pads, _ = pool_geometry(x_shape, attrs)
        if any(pads):
            xp = _padded(rw, ins[0], pads, fill)
            rw.become(node, rw.g.nodes[node]["op"], [xp], pool_size=list(k), strides=list(s),
                      padding="valid", **_uncounted(x_shape, attrs))
    return lower


def _lower_pool_grad(fill):
    """The gradient of padded pooling -> crop2d(the gradient of pool(pad2d(x)))."""
    def lower(rw, node, ins, attrs):
        x_shape = rw.g.nodes[node]["shape"]
        k, s, pads, _ = pool_geometry(x_shape, attrs)
        if not any(pads):
            return
        op = rw.g.nodes[node]["op"]
        valid = dict(pool_size=list(k), strides=list(s), padding="valid")
        if op == "max_pool2d_grad":          # (dy, x, y): pad x as the forward did
            dy, x, y = ins
            inputs, extra = [dy, _padded(rw, x, pads, fill), y], {}
        else:
            inputs = ins
            extra = {"input_hw": [x_shape[2] + pads[0] + pads[1], x_shape[3] + pads[2] + pads[3]],
                     **_uncounted(x_shape, attrs)}
        grad = rw.emit(f"{node}/padded", op, inputs, **valid, **extra)
        rw.become(node, "crop2d", [grad], pads=list(pads))
    return lower


def _max_pool_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("max_pool2d_grad", [dy, ins[0], out], **attrs)]


def _avg_pool_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("avg_pool2d_grad", [dy], input_hw=ctx.shape(ins[0])[2:], **attrs)]


def _pool_flops(ins, out, a):
    return prod(out) * prod(pair(a["pool_size"]))


register(OpDef("max_pool2d", 1, _pool_shape, kernel="max_pool2d", fusion="opaque",
               vjp=_max_pool_vjp, lower=_lower_pool(float("-inf")), attrs=_pool_attrs, flops=_pool_flops,
               doc="Maximum over each window (padding counts as -inf)."))
register(OpDef("avg_pool2d", 1, _pool_shape, kernel="avg_pool2d", fusion="opaque",
               vjp=_avg_pool_vjp, lower=_lower_pool(0.0), attrs=_avg_attrs, flops=_pool_flops,
               doc="Mean over each window (padding counts as 0, as PyTorch's default; "
                   "count_include_pad=False leaves it out of the count)."))
register(OpDef("max_pool2d_grad", 3, lambda s, d, a: (s[1], d[1]), kernel="max_pool2d_grad",
               kind="gradient", lower=_lower_pool_grad(float("-inf")), attrs=_pool_attrs,
               flops=_pool_flops,
               doc="Route each window's gradient to its first maximum."))
register(OpDef("avg_pool2d_grad", 1,
               lambda s, d, a: ((s[0][0], s[0][1], *a["input_hw"]), d[0]), kernel="avg_pool2d_grad",
               kind="gradient", lower=_lower_pool_grad(0.0), attrs={**_avg_attrs, "input_hw": _hw},
               flops=_pool_flops,
               doc="Spread each window's gradient evenly over it."))


def _gap_shape(shapes, dtypes, attrs):
    (x,) = shapes
    _image(x)
    return (x[0], x[1]), same_dtype(dtypes, 0)


register(OpDef("global_avg_pool", 1, _gap_shape, fusion="reduce",
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("global_avg_pool_grad", [dy],
                                                          input_hw=ctx.shape(ins[0])[2:])],
               flops=lambda ins, out, a: prod(ins[0]), doc="Mean over H and W: (N, C, H, W) -> (N, C)."))
register(OpDef("global_avg_pool_grad", 1,
               lambda s, d, a: ((s[0][0], s[0][1], *a["input_hw"]), d[0]),
               kind="gradient", attrs={"input_hw": _hw},
               flops=lambda ins, out, a: prod(out), doc="dy / (H W), spread over each map."))
