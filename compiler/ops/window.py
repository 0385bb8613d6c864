"""Windows over channels-first images (N, C, H, W): the geometry convolution and
pooling share (pairs, padding, output sizes) and the ops their lowering emits:
``pad2d`` and ``crop2d``, ``im2col`` (every window copied into columns through a
zero-copy strided view) and ``col2im`` (columns summed back into an image).

>>> resolve_padding("same", (5, 5), (3, 3), (2, 2), (1, 1))
(1, 1, 1, 1)
"""
from __future__ import annotations

from math import ceil, prod

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, register


def pair(v) -> tuple[int, int]:
    """2 -> (2, 2); (1, 2) -> (1, 2).

    >>> pair(2), pair([1, 2])
    ((2, 2), (1, 2))
    """
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
    """Output height and width of a sliding window; an error if it is empty.
    Arguments: (H, W), kernel, strides and dilation pairs, pads (top, bottom, left, right).

    >>> window_output((5, 5), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1))      # (5 + 2 - 3) // 2 + 1
    (3, 3)
    >>> window_output((2, 8), (3, 3), (1, 1), (1, 1), (0, 0, 0, 0))
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.OpShapeError: the window (3 wide, dilation 1) is larger than the padded
    input (2 + 0 padding)
    """
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

_hw = Attr(check=_is_pair, expect="a (height, width) pair")


def _padded(rw, x, pads, value=0.0):
    return rw.emit(f"{x}/pad", "pad2d", [x], pads=list(pads), value=value) if any(pads) else x


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


def _im2col_shape_blocked(shapes, dtypes, attrs):
    (n, rows, length), dtype = _im2col_shape(shapes, dtypes, attrs)
    out = (n, rows + attrs["bias_row"], length), dtype
    (x,), (ph, pw) = shapes, pair(attrs["blocks"])
    oh, ow = window_output(x[2:], pair(attrs["kernel_size"]), pair(attrs["strides"]),
                           pair(attrs["dilation"]), (0,) * 4)
    if oh % ph or ow % pw:
        raise OpShapeError(f"a {oh}x{ow} output does not split into {ph}x{pw} blocks")
    return out


register(OpDef("im2col", 1, _im2col_shape_blocked, fusion="injective", kind="lowered",
               attrs={**_window_attrs, "blocks": Attr((1, 1), _is_pair, "a positive int or pair"),
                      "bias_row": Attr(False, lambda v: isinstance(v, bool), "True or False")},
               flops=lambda ins, out, a: 0,
               doc="Copy every window of (N, C, H, W) into columns (N, C*KH*KW, OH*OW), "
                   "through a zero-copy strided view; ``blocks`` (ph, pw) orders the output "
                   "positions by pooling tile: (i, j, OH / ph, OW / pw) for pixel (ph a + i, pw b + j); "
                   "``bias_row`` adds a last row of ones."))
def _gemm_col2im_shape(shapes, dtypes, attrs):
    w, dy = shapes
    if len(w) != 2 or len(dy) != 3 or w[0] != dy[1]:
        raise OpShapeError(f"expected weights (F, K) and a gradient (N, F, L), got {fmt_shape(w)} "
                           f"and {fmt_shape(dy)}")
    if not attrs["tall"]:
        return _col2im_shape([(dy[0], w[1], dy[2])], dtypes[1:], attrs)[0], dtypes[1]
    (h, wd), c = attrs["image_hw"], attrs["channels"]
    k, s, d = pair(attrs["kernel_size"]), pair(attrs["strides"]), pair(attrs["dilation"])
    oh, ow = window_output((h, wd), k, s, d, (0,) * 4)
    if s != (1, 1) or not attrs["wide"] or dy[2] != oh * ow or w[1] != c * k[0] * k[1]:
        raise OpShapeError(f"tall columns need stride 1, wide rows and a gradient of {oh}x{ow} "
                           f"positions and {c} * {k[0]} * {k[1]} columns; got {fmt_shape(dy)}, {fmt_shape(w)}")
    return (dy[0], c, h, wd), dtypes[1]


GEMM_COL2IM_BYTES = 1 << 20     # gemm_col2im's columns: a batch chunk of about this much,
GEMM_COL2IM_ROWS = 16           # and of at most this many images (the batch may be unknown here)


def _gemm_col2im_scratch(in_shapes, out_shape, attrs, dtype):
    """The columns of a batch chunk; tall, also the chunk's dy padded to the image."""
    (_, k), (n, f, length) = in_shapes
    if attrs.get("tall"):
        length = out_shape[2] * out_shape[3]
    rows = min(GEMM_COL2IM_ROWS, GEMM_COL2IM_BYTES // (k * length * (8 if dtype == "float64" else 4)))
    rows = max(1, rows if n is None else min(n, rows))
    return [((rows, k, length), dtype)] + ([((rows, f, length), dtype)] if attrs.get("tall") else [])


register(OpDef("col2im", 1, _col2im_shape, fusion="opaque", kind="lowered",
               attrs={**_window_attrs, "channels": Attr(check=lambda v: isinstance(v, int)),
                      "image_hw": _hw, "wide": Attr(False, lambda v: isinstance(v, bool))},
               flops=lambda ins, out, a: prod(ins[0]),
               doc="Sum columns back into an image: one vectorized add per kernel offset."))
register(OpDef("gemm_col2im", 2, _gemm_col2im_shape, fusion="opaque", kind="lowered",
               attrs={**_window_attrs, "channels": Attr(check=lambda v: isinstance(v, int)),
                      "image_hw": _hw, "wide": Attr(False, lambda v: isinstance(v, bool)),
                      "tall": Attr(False, lambda v: isinstance(v, bool))},
               scratch=_gemm_col2im_scratch,
               flops=lambda ins, out, a: 2 * ins[0][0] * ins[0][1] * ins[1][0] * ins[1][2],
               doc="col2im(w^T @ dy), a batch chunk at a time (the columns stay in cache); "
                   "``tall`` (stride 1): dy padded to the whole image chunk by chunk, each kernel "
                   "offset one add over all channels of an image."))


def _matmul_tiles_shape(shapes, dtypes, attrs):
    w, cols = shapes
    p = attrs["tiles"]
    if len(w) != 2 or len(cols) != 3 or w[1] != cols[1] or cols[2] % p:
        raise OpShapeError(f"expected weights (F, K) and columns (N, K, {p} * M), got {fmt_shape(w)} "
                           f"and {fmt_shape(cols)}")
    return (cols[0], p, w[0], cols[2] // p), dtypes[1]


def _matmul_tiles_grad_shape(shapes, dtypes, attrs):
    cols, dy = shapes
    p = attrs["tiles"]
    if len(cols) != 3 or len(dy) != 4 or dy[1] != p or dy[3] * p != cols[2]:
        raise OpShapeError(f"expected columns (N, K, {p} * M) and a gradient (N, {p}, F, M), got "
                           f"{fmt_shape(cols)} and {fmt_shape(dy)}")
    return (cols[0], p, cols[1], dy[2]), dtypes[0]


_tiles = {"tiles": Attr(check=lambda v: isinstance(v, int) and v > 1, expect="an int > 1")}
register(OpDef("matmul_tiles", 2, _matmul_tiles_shape, kind="lowered", attrs=_tiles,
               flops=lambda ins, out, a: 2 * prod(out) * ins[0][1],
               doc="A convolution's GEMM in tile order (compiler/blocked.py): (N, tiles, F, M)."))
register(OpDef("matmul_tiles_grad", 2, _matmul_tiles_grad_shape, kind="lowered", attrs=_tiles,
               flops=lambda ins, out, a: 2 * prod(out) * ins[1][3],
               doc="Its weight gradient per image and tile offset: (N, tiles, K, F)."))
