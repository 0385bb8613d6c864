"""Converters for Resize and Upsample.

Nearest-neighbour upsampling by whole factors, in the modes where every pixel is
repeated, becomes graphnn's ``upsample2d``. Every other resize (linear, cubic,
antialiased, downsampling, fractional scales, crops) is still a fixed affine map
of each image's pixels, y = M x + c, whatever its mode: the importer computes M
and c once, by running ONNX's own reference Resize on the basis images (and a
zero image), and runs the map as one matrix product per image. The map has
(H W) x (OH OW) entries, so it is built for images up to MAX_MAP_ENTRIES.

>>> from onnx import helper
>>> node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear")
>>> m, c = resize_map(node, [None, np.array([1, 1, 2, 1], np.float32)], (2, 1), "float32", 19)
>>> m.round(3).tolist(), bool(c.any())
([[1.0, 0.75, 0.25, 0.0], [0.0, 0.25, 0.75, 1.0]], False)
"""
from __future__ import annotations

import numpy as np

from .converters import (
    Unsupported,
    const,
    converter,
    need_floats,
    out,
    reshape,
    shape_of,
)
from .fold import evaluate

MAX_MAP_ENTRIES = 2 ** 21


def _text(v, default):
    v = default if v is None else v
    return v.decode() if isinstance(v, bytes) else v


def repeat_factors(a, x_shape, scales, sizes):
    """Whole factors (fh, fw) if this is a nearest resize that repeats pixels, else None.

    >>> repeat_factors({"mode": "nearest"}, (None, 1, 2, 2), np.array([1, 1, 2, 3], np.float32), None)
    (2, 3)
    >>> repeat_factors({}, (None, 1, 2, 3), None, np.array([1, 1, 4, 6]))      # by sizes
    (2, 2)
    >>> print(repeat_factors({"mode": "nearest"}, (None, 1, 2, 2), np.array([1, 1, 1.5, 2]), None),
    ...       repeat_factors({"mode": "linear"}, (None, 1, 2, 2), np.array([1, 1, 2, 2]), None))
    None None
    """
    if _text(a.get("mode"), "nearest") != "nearest" or len(x_shape) != 4 or a.get("axes") is not None:
        return None
    if scales is not None and scales.size:
        full = [float(v) for v in scales]
    elif sizes is not None and sizes.size and None not in x_shape[2:] and \
            _text(a.get("keep_aspect_ratio_policy"), "stretch") == "stretch":
        full = [1.0, 1.0] + [int(v) / d for v, d in zip(sizes[2:], x_shape[2:])]
    else:
        return None
    if full[:2] != [1.0, 1.0] or any(f < 1 or f != int(f) for f in full[2:]):
        return None
    coord = _text(a.get("coordinate_transformation_mode"), "half_pixel")
    rounding = _text(a.get("nearest_mode"), "round_prefer_floor")
    repeats = (coord in ("asymmetric", "tf_half_pixel_for_nn") and rounding == "floor") or (
        coord in ("half_pixel", "pytorch_half_pixel") and rounding.startswith("round_prefer"))
    factors = tuple(int(f) for f in full[2:])
    return factors if repeats or factors == (1, 1) else None


def resize_map(node, consts, hw, dtype, opset):
    """(M (H W, OH OW), c (OH OW,)) with resize(x) = x M + c for one (H, W) image.

    ``consts`` holds the node's inputs after X (roi, scales, sizes; None if absent).

    Nearest doubling of a 1 x 2 image: each output pixel copies one input pixel:

    >>> from onnx import helper
    >>> node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")
    >>> m, c = resize_map(node, [None, np.array([1, 1, 1, 2], np.float32)], (1, 2), "float32", 19)
    >>> m.tolist(), c.tolist()
    ([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], [0.0, 0.0, 0.0, 0.0])
    """
    h, w = hw
    images = h * w + 1                                      # the basis, then a zero image
    basis = np.zeros((images, 1, h, w), dtype=dtype)
    basis.reshape(images, h * w)[np.arange(h * w), np.arange(h * w)] = 1
    values = [basis, *consts]
    sizes = consts[2] if len(consts) > 2 else None
    if sizes is not None and sizes.size:
        axes = _axes(node)
        sizes = sizes.copy()
        for k, axis in enumerate(axes):
            if axis in (0, 1):
                sizes[k] = (images, 1)[axis]
        values[3] = sizes
    scales = consts[1] if len(consts) > 1 else None
    if scales is not None and scales.size:
        for k, axis in enumerate(_axes(node)):
            if axis in (0, 1) and float(scales[k]) != 1.0:
                raise Unsupported(f"scale {float(scales[k])} on axis {axis}: graphnn resizes H and W")
    (y,) = evaluate(node, values, opset)[:1]
    y = y.reshape(images, -1).astype(dtype)
    return y[:-1] - y[-1], y[-1]


def _axes(node):
    for attr in node.attribute:
        if attr.name == "axes":
            return [int(v) % 4 for v in attr.ints]
    return [0, 1, 2, 3]


def _as_linear_map(ctx, node, x, consts, name):
    s = shape_of(x)
    if len(s) != 4 or None in s[2:]:
        raise Unsupported(f"resizing a tensor of shape {s}; graphnn resizes (N, C, H, W) images")
    (y,) = evaluate(node, [np.zeros((1, 1, *s[2:]), dtype=str(x.dtype)), *_one_image(node, consts)],
                    ctx.opset)[:1]
    oh, ow = y.shape[2:]
    if s[2] * s[3] * oh * ow > MAX_MAP_ENTRIES:
        raise Unsupported(f"a {s[2]}x{s[3]} -> {oh}x{ow} resize in this mode: its pixel map would have "
                          f"{s[2] * s[3] * oh * ow:,} entries (the limit is {MAX_MAP_ENTRIES:,})")
    m, c = resize_map(node, consts, s[2:], str(x.dtype), ctx.opset)
    weights = ctx.free(f"{name}/map")
    table = ctx.g.op("param", [], name=weights, shape=m.shape, dtype=str(x.dtype), init="zeros",
                     trainable=False)
    ctx.weights[weights] = m
    flat = reshape(ctx, x, (s[0], s[1], s[2] * s[3]), f"{name}/pixels")
    y = ctx.op("matmul", [flat, table], f"{name}/mapped")
    if c.any():
        y = ctx.op("add", [y, c], f"{name}/offset")
    return reshape(ctx, y, (s[0], s[1], oh, ow), name)


def _one_image(node, consts):
    """The node's constant inputs, with sizes set for a single (1, 1, H, W) image."""
    consts = list(consts)
    if len(consts) > 2 and consts[2] is not None and consts[2].size:
        sizes = consts[2].copy()
        for k, axis in enumerate(_axes(node)):
            if axis in (0, 1):
                sizes[k] = 1
        consts[2] = sizes
    return consts


def _upsample(ctx, x, factors, name):
    if factors == (1, 1):
        return ctx.op("linear", [x], name)
    return ctx.op("upsample2d", [x], name, factor=factors)


@converter("Resize")
def _resize(ctx, node, ins, a):
    x = ins[0]
    need_floats(x, what="Resize")
    consts = [const(v, "Resize's roi, scales and sizes") if v is not None else None for v in ins[1:]]
    consts += [None] * (3 - len(consts))
    factors = repeat_factors(a, shape_of(x), consts[1], consts[2])
    if factors is not None:
        return [_upsample(ctx, x, factors, out(node))]
    return [_as_linear_map(ctx, node, x, consts, out(node))]


@converter("Upsample")
def _upsample_op(ctx, node, ins, a):
    x = ins[0]
    need_floats(x, what="Upsample")
    scales = np.asarray(a["scales"], np.float32) if "scales" in a else const(ins[1], "Upsample's scales")
    if _text(a.get("mode"), "nearest") != "nearest":
        raise Unsupported("a mode other than nearest")
    full = [float(v) for v in scales]
    if len(full) != 4 or full[:2] != [1.0, 1.0] or any(f < 1 or f != int(f) for f in full[2:]):
        raise Unsupported(f"scales {full}; Upsample here repeats the pixels of (N, C, H, W) by whole factors")
    return [_upsample(ctx, x, tuple(int(f) for f in full[2:]), out(node))]
