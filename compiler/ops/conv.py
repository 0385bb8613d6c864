"""Convolution on channels-first images (N, C, H, W).

``conv2d`` and its two gradients are high-level ops: shape inference and
autodiff see them whole, and their ``lower`` hooks (below) rewrite them into
``pad2d`` + ``im2col`` + batched ``matmul`` (+ ``col2im`` + ``crop2d`` for the
input gradient); ``conv_transpose2d`` lowers as conv2d's input gradient.
Pooling is in ``pool.py``, the window geometry and ops in ``window.py``.
One-dimensional versions are builder macros over these (a sequence (N, C, L)
is an image (N, C, 1, L)).

>>> from graphnn.compiler.ops import OPS
>>> attrs = {"strides": (1, 1), "padding": "same", "dilation": (1, 1), "groups": 1}
>>> OPS["conv2d"].infer([(None, 3, 28, 28), (16, 3, 5, 5)], ["float32"] * 2, attrs)
((None, 16, 28, 28), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from ..ir import consumers
from .base import OPS, Attr, OpDef, fmt_shape, register, same_dtype
from .window import (
    _dilation,
    _hw,
    _image,
    _is_padding,
    _is_pair,
    _padded,
    _padding,
    _strides,
    pair,
    resolve_padding,
    window_output,
)

_groups = Attr(1, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
               "a positive int dividing the input and output channels")
CONV_ATTRS = {"strides": _strides, "padding": _padding, "dilation": _dilation, "groups": _groups}


def conv_geometry(x, w, attrs):
    """(pads, (OH, OW)) for input x (N, C, H, W) and weight w (F, C, KH, KW).

    >>> conv_geometry((None, 1, 28, 28), (8, 1, 5, 5), {"strides": 1, "dilation": 1, "padding": "same"})
    ((2, 2, 2, 2), (28, 28))
    >>> conv_geometry((None, 1, 28, 28), (8, 1, 5, 5), {"strides": 2, "dilation": 1, "padding": "valid"})
    ((0, 0, 0, 0), (12, 12))
    """
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


# ---------------------------------------------------------------- lowering
# The hooks below rewrite a convolution into pad2d + im2col + a batched matmul
# (+ gemm_col2im, or matmul + col2im when grouped, + crop2d for the input gradient). A rewritten node keeps its name,
# so everything that read it still does; the reshapes are views and cost
# nothing. The columns of an input are built once (the rewriter shares equal
# nodes) and read by the forward GEMM and the weight gradient's GEMM.
def _columns_key(rw, x, w_shape, attrs, blocks):
    pads, _ = conv_geometry(rw.g.nodes[x]["shape"], w_shape, attrs)
    return (x, tuple(w_shape[2:]), pair(attrs["strides"]), pair(attrs["dilation"]), pads,
            None if blocks is None else tuple(blocks))


def _columns(rw, x, w_shape, attrs, blocks=None, bias_row=False):
    """im2col of x (padded as the convolution pads it); ``blocks``: in tile order;
    ``bias_row``: with a last row of ones, which multiplies a bias column appended
    to the weights (the bias then costs no pass of its own, and the weight
    gradient's GEMM gives the bias gradient as its last column)."""
    key = _columns_key(rw, x, w_shape, attrs, blocks)
    extra = {} if blocks is None else {"blocks": list(blocks)}
    if bias_row:
        extra["bias_row"] = True
        rw.bias_rows = getattr(rw, "bias_rows", set()) | {key}
    return rw.emit(f"{x}/im2col", "im2col", [_padded(rw, x, key[4])], kernel_size=list(w_shape[2:]),
                   strides=list(key[2]), dilation=list(key[3]), **extra)


def _has_bias_row(rw, x, w_shape, attrs, blocks):
    """Whether the forward convolution built these columns with a row of ones."""
    return _columns_key(rw, x, w_shape, attrs, blocks) in getattr(rw, "bias_rows", ())


def _blocks(rw, node):
    """The tile (ph, pw) in whose order ``node`` is laid out (compiler/blocked.py), or None."""
    return getattr(rw, "blocked", {}).get(node)


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
    blocks = _blocks(rw, node)
    epilogue, wm = attrs["epilogue"], _weight_matrix(rw, w, 1)
    if node in getattr(rw, "relu_moves", {}):      # the ReLU runs after the max pool (compiler/blocked.py)
        epilogue = epilogue[:-1]
    first = epilogue[0] if epilogue else {"op": None}
    bias_row = (first["op"] == "bias_add" and first["attrs"].get("axis") == 1
                and rw.g.nodes[extras[0]]["shape"] == (f,))
    cols = _columns(rw, x, rw.g.nodes[w]["shape"], conv, blocks, bias_row)
    if bias_row:                # the bias is the weights' last column: [W | b] @ [cols; 1]
        column = rw.emit(f"{extras[0]}/column", "reshape", [extras[0]], shape=[f, 1])
        wm = rw.emit(f"{w}/with_bias", "concat", [wm, column], axis=1)
        epilogue, extras = epilogue[1:], extras[1:]
    flat = []
    for e in extras:            # full-size extras (a residual) follow the new layout
        full = rw.g.nodes[e]["shape"] == (n, f, oh, ow)
        flat.append(rw.emit(f"{e}/matrix", "reshape", [e], shape=[n, f, oh * ow]) if full else e)
    if blocks is not None:          # (N, tile offsets, F, pooled pixels): see compiler/blocked.py
        assert not epilogue, "tile order takes a convolution whose bias and ReLU moved out"
        rw.become(node, "matmul_tiles", [wm, cols], tiles=blocks[0] * blocks[1])
        return
    matmul = OPS["matmul"]
    if epilogue:
        anchor = {"op": "matmul", "kernel": matmul.kernel, "attrs": matmul.check_attrs({})[0]}
        gemm = rw.emit(f"{node}/gemm", "fused", [wm, cols, *flat], anchor=anchor, epilogue=epilogue)
    else:
        gemm = rw.emit(f"{node}/gemm", "matmul", [wm, cols])
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
    f = ws[0]
    groups, k = attrs.get("groups", 1), ws[1] * ws[2] * ws[3]
    blocks = _blocks(rw, dy)
    bias_row = groups == 1 and _has_bias_row(rw, x, ws, attrs, blocks)
    cols = _per_group(rw, _columns(rw, x, ws, attrs, blocks, bias_row), groups, groups * k)
    # cols @ dy^T per sample, (K, F), then one small transpose of the sum: OpenBLAS
    # runs this product 1.5x faster than dy @ cols^T, (F, K) (1.29 against 1.94 ms
    # for the CNN benchmark's second convolution, one thread).
    if blocks is not None:          # dy (N, tile offsets, F, M): per image and offset
        per_sample = rw.emit(f"{node}/gemm", "matmul_tiles_grad", [cols, dy], tiles=blocks[0] * blocks[1])
    elif groups == 1:               # dy^T copied first: OpenBLAS runs cols @ (L, F) 1.5x faster
        n, _, oh, ow = rw.g.nodes[dy]["shape"]       # than against a transposed view (1.0 + 0.25
        dym = rw.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * ow])    # copy vs 1.5 ms)
        dyt = rw.emit(f"{dy}/transposed", "transpose", [dym], perm=[0, 2, 1])
        per_sample = rw.emit(f"{node}/gemm", "matmul", [cols, dyt])
    else:
        n, _, oh, ow = rw.g.nodes[dy]["shape"]
        dym = _per_group(rw, rw.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * ow]), groups, f)
        per_sample = rw.emit(f"{node}/gemm", "matmul", [cols, dym], transpose_b=True)
    total = [k + bias_row, ws[0]] if groups == 1 else [groups, k, ws[0] // groups]
    summed = rw.emit(f"{node}/sum", "sum_to", [per_sample], shape=total)
    flipped = rw.emit(f"{node}/transpose", "transpose", [summed], perm=[1, 0] if groups == 1 else [0, 2, 1])
    if bias_row:                # the last column is sum(dy) over images and positions
        channels = 1 if blocks is None else 2
        for reader in consumers(rw.g, dy):
            rd = rw.g.nodes[reader]
            if rd["op"] == "bias_grad" and rd.get("axis") == channels:
                db = rw.emit(f"{node}/bias", "slice", [flipped], axis=1, start=k, stop=k + 1)
                rw.become(reader, "reshape", [db], shape=[f])
        flipped = rw.emit(f"{node}/weights", "slice", [flipped], axis=1, start=0, stop=k)
    rw.become(node, "reshape", [flipped], shape=list(ws))


def _lower_conv_grad_input(rw, node, ins, attrs):
    dy, w = ins
    ws, xs = rw.g.nodes[w]["shape"], rw.g.nodes[node]["shape"]
    n, f, oh, ow = rw.g.nodes[dy]["shape"]
    pads, _ = conv_geometry(xs, ws, attrs)
    hw = [xs[2] + pads[0] + pads[1], xs[3] + pads[2] + pads[3]]
    groups = attrs.get("groups", 1)
    wm = _weight_matrix(rw, w, groups)
    # Stride 1: pad dy's rows to the padded image's width (zeros), so the
    # columns come out "wide" and col2im adds contiguous runs (see col2im);
    # ungrouped, gemm_col2im pads dy to the whole image itself, a chunk at a time
    # ("tall": then it adds whole images).
    wide = pair(attrs["strides"]) == (1, 1)
    tall = wide and groups == 1
    if wide and not tall and hw[1] > ow:
        dy = rw.emit(f"{dy}/wide", "pad2d", [dy], pads=[0, 0, 0, hw[1] - ow])
    row = hw[1] if wide and not tall else ow
    dym = _per_group(rw, rw.emit(f"{dy}/matrix", "reshape", [dy], shape=[n, f, oh * row]), groups, f)
    window = dict(kernel_size=list(ws[2:]), strides=list(pair(attrs["strides"])),
                  dilation=list(pair(attrs["dilation"])), channels=ws[1] * groups, wide=wide)
    if groups == 1:     # one kernel: GEMM and col2im a batch chunk at a time (columns in cache)
        op, operands = "gemm_col2im", [wm, dym]
        window["tall"] = tall
    else:
        dcols = rw.emit(f"{node}/gemm", "matmul", [wm, dym], transpose_a=True)
        op, operands = "col2im", [rw.emit(f"{node}/columns", "reshape", [dcols],
                                          shape=[n, groups * ws[1] * ws[2] * ws[3], oh * row])]
    if any(pads):
        image = rw.emit(f"{node}/col2im", op, operands, image_hw=hw, **window)
        rw.become(node, "crop2d", [image], pads=list(pads))
    else:
        rw.become(node, op, operands, image_hw=hw, **window)


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
