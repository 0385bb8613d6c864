"""Pooling on channels-first images (N, C, H, W): max and average over windows
(after a ``pad2d`` when padded: their ``lower`` hooks), and the global average.

>>> from graphnn.compiler.ops import OPS
>>> OPS["max_pool2d"].infer([(None, 3, 5, 5)], ["float32"], OPS["max_pool2d"].check_attrs(
...     {"pool_size": 2, "ceil_mode": True})[0])
((None, 3, 3, 3), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from ..ir import consumers, op_attrs, operands
from .base import Attr, OpDef, fmt_shape, register, same_dtype
from .window import (
    _dilation,
    _hw,
    _image,
    _is_pair,
    _padded,
    _padding,
    _pads,
    pair,
    resolve_padding,
    window_output,
)

_flag = lambda default: Attr(default, lambda v: isinstance(v, bool), "True or False")
_pool_attrs = {"pool_size": Attr(check=_is_pair, expect="a positive int or pair"),
               "strides": Attr(None, lambda v: v is None or _is_pair(v),
                               "None (the pool size), a positive int or a pair"),
               "padding": _padding, "ceil_mode": _flag(False), "dilation": _dilation}
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
    rows and columns ceil_mode adds at the bottom and right.

    >>> pool_geometry((None, 3, 7, 7), {"pool_size": 2, "strides": None, "padding": "valid"})
    ((2, 2), (2, 2), (0, 0, 0, 0), (3, 3))
    >>> pool_geometry((None, 3, 7, 7), {"pool_size": 2, "strides": None, "padding": "valid",
    ...                                 "ceil_mode": True})
    ((2, 2), (2, 2), (0, 1, 0, 1), (4, 4))
    """
    k = pair(attrs["pool_size"])
    s = pair(attrs["strides"] or attrs["pool_size"])
    d = pair(attrs.get("dilation", 1))
    pads = resolve_padding(attrs["padding"], x[2:], k, s, d)
    if attrs.get("ceil_mode"):
        spans = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
        eh, ew = ceil_extra(x[2:], spans, s, pads)
        pads = (pads[0], pads[1] + eh, pads[2], pads[3] + ew)
    return k, s, pads, window_output(x[2:], k, s, d, pads)


def uncounted_margins(x, attrs) -> tuple[int, int, int, int]:
    """The padding an average pool leaves out of its means: all of it without
    count_include_pad, else only what ceil_mode added (as PyTorch).

    >>> attrs = {"pool_size": 3, "strides": 2, "padding": 1, "ceil_mode": True}    # pads (1, 2, 1, 2)
    >>> uncounted_margins((None, 3, 6, 6), {**attrs, "count_include_pad": True})
    (0, 1, 0, 1)
    >>> uncounted_margins((None, 3, 6, 6), {**attrs, "count_include_pad": False})
    (1, 2, 1, 2)
    """
    _, _, pads, _ = pool_geometry(x, attrs)
    if not attrs.get("count_include_pad", True):
        return tuple(pads)
    k, s = pair(attrs["pool_size"]), pair(attrs["strides"] or attrs["pool_size"])
    user = resolve_padding(attrs["padding"], x[2:], k, s, pair(attrs.get("dilation", 1)))
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
                      padding="valid", dilation=list(pair(attrs["dilation"])), **_uncounted(x_shape, attrs))
    return lower


def _lower_pool_grad(fill):
    """The gradient of padded pooling -> crop2d(the gradient of pool(pad2d(x)))."""
    def lower(rw, node, ins, attrs):
        x_shape = rw.g.nodes[node]["shape"]
        k, s, pads, _ = pool_geometry(x_shape, attrs)
        if not any(pads):
            return
        op = rw.g.nodes[node]["op"]
        valid = dict(pool_size=list(k), strides=list(s), padding="valid", dilation=list(pair(attrs["dilation"])))
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


def _blocks_shape(shapes, dtypes, attrs):
    (x,), (oh, ow) = shapes, attrs["pooled_hw"]
    if len(x) != 4 or x[3] != oh * ow or x[1] < 2:
        raise OpShapeError(f"expected (N, blocks >= 2, C, {oh * ow}) for a {oh}x{ow} pooled image, "
                           f"got {fmt_shape(x)}")
    return (x[0], x[2], oh, ow), same_dtype(dtypes, 0)


def _blocks_grad_shape(shapes, dtypes, attrs):
    dy, x, y = shapes
    pooled = _blocks_shape([x], dtypes[1:2], attrs)[0]
    if tuple(dy) != pooled or tuple(y) != pooled:
        raise OpShapeError(f"the gradient {fmt_shape(dy)} and the maximum {fmt_shape(y)} must be "
                           f"{fmt_shape(pooled)}")
    return x, same_dtype(dtypes, 0, 1, 2)


# Made by lowering (compiler/blocked.py) when a convolution's only reader is a
# tiling max pool: the convolution writes its output in tile order, so pooling
# and its gradient run on contiguous blocks instead of strided windows.
register(OpDef("max_pool_blocks", 1, _blocks_shape, kind="lowered", attrs={"pooled_hw": _hw},
               flops=lambda ins, out, a: prod(ins[0]),
               doc="Maximum over axis 1 of an image in tile order (N, blocks, C, OH*OW)."))
register(OpDef("max_pool_blocks_grad", 3, _blocks_grad_shape, kind="lowered", attrs={"pooled_hw": _hw},
               flops=lambda ins, out, a: prod(ins[1]),
               doc="Route each window's gradient to its first maximum, in tile order."))


# Routed max pooling (training programs). The gradient of a max pool routes each
# window's gradient to the window's first maximum; finding it takes a comparison
# and a routing step per window offset. A training program finds it once, in the
# forward, which keeps it as a second output: one byte mask per offset (all ones
# where the window's first maximum is there, else zeros), ``routes`` (N, offsets,
# C, OH, OW) int8, a ``max_pool_routes`` node the pool's instruction writes. The
# gradient then only scatters dy by the masks (a bitwise AND), and the
# pool's input need not live until the backward. Prediction programs have no
# gradient and keep the plain pool.

def _routes_shape(shapes, dtypes, attrs):
    (y,) = shapes
    return (y[0], attrs["offsets"], *y[1:]), "int8"


def _routed_grad_shape(shapes, dtypes, attrs):
    dy, routes = shapes
    if len(dy) != 4 or tuple(routes) != (dy[0], routes[1], *dy[1:]):
        raise OpShapeError(f"expected routes (N, offsets, C, OH, OW) for the gradient {fmt_shape(dy)}, "
                           f"got {fmt_shape(routes)}")
    return (dy[0], dy[1], *attrs["input_hw"]), same_dtype(dtypes, 0)


def _routed_blocks_grad_shape(shapes, dtypes, attrs):
    dy, routes = shapes
    (oh, ow), p = attrs["pooled_hw"], routes[1]
    if tuple(dy[2:]) != (oh, ow) or tuple(routes) != (dy[0], p, *dy[1:]):
        raise OpShapeError(f"expected routes (N, blocks, C, {oh}, {ow}) for the gradient {fmt_shape(dy)}, "
                           f"got {fmt_shape(routes)}")
    return (dy[0], p, dy[1], oh * ow), same_dtype(dtypes, 0)


register(OpDef("max_pool_routes", 1, _routes_shape, kind="lowered",
               extra_output=("max_pool2d_routed", "max_pool_blocks_routed"),
               attrs={"offsets": Attr(check=lambda v: isinstance(v, int) and v > 0, expect="a positive int")},
               doc="The routes a routed max pool writes beside its maxima: for each window "
                   "offset, which windows have their first maximum there."))
register(OpDef("max_pool2d_routed", 1, _pool_shape, kind="lowered", attrs=_pool_attrs, flops=_pool_flops,
               doc="max_pool2d that also writes its gradient's routes (a max_pool_routes node)."))
register(OpDef("max_pool2d_routed_grad", 2, _routed_grad_shape, kind="lowered",
               attrs={**_pool_attrs, "input_hw": _hw}, flops=lambda ins, out, a: prod(ins[1]),
               doc="Scatter each window's gradient to the pixel its route names."))
register(OpDef("max_pool_blocks_routed", 1, _blocks_shape, kind="lowered", attrs={"pooled_hw": _hw},
               flops=lambda ins, out, a: prod(ins[0]),
               doc="max_pool_blocks that also writes its gradient's routes (a max_pool_routes node)."))
register(OpDef("max_pool_blocks_routed_grad", 2, _routed_blocks_grad_shape, kind="lowered",
               attrs={"pooled_hw": _hw}, flops=lambda ins, out, a: prod(ins[1]),
               doc="Scatter each window's gradient to the block its route names, in tile order."))

ROUTED = {"max_pool2d_grad": ("max_pool2d", "max_pool2d_routed", "max_pool2d_routed_grad"),
          "max_pool_blocks_grad": ("max_pool_blocks", "max_pool_blocks_routed", "max_pool_blocks_routed_grad")}


def route_max_pools(rw) -> None:
    """Every lowered max-pool gradient (dy, x, y) whose y is the max pool of x:
    the pool keeps its routes and the gradient reads them (see above). Run by
    the lower pass after every node is lowered.

    >>> from graphnn import Graph, Model
    >>> from graphnn.compiler.rewrite import OPERAND_ROLE, Rewriter
    >>> g = Graph(); x = g.input("x", (None, 2, 6, 6))
    >>> m = Model(g, inputs=x, outputs=g.flatten(g.max_pool2d(g.conv2d(x, 2, 3), 2)))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> passes = {}; _ = m.program("train", 2, trace=lambda name, result: passes.setdefault(name, result))
    >>> fused = passes["fuse"].copy(); route_max_pools(Rewriter(fused, role=OPERAND_ROLE, share=True))
    >>> sorted((n, d["op"], operands(fused, n)) for n, d in fused.nodes(data=True) if "pool" in d["op"])
    [('max_pool2d', 'max_pool2d_routed', ['conv2d/bias_add']),
     ('max_pool2d/grad_max_pool2d_grad', 'max_pool2d_routed_grad',
      ['flatten/grad_reshape', 'max_pool2d/routes']),
     ('max_pool2d/routes', 'max_pool_routes', ['max_pool2d'])]
    """
    g = rw.g
    for node in [n for n, d in g.nodes(data=True) if d["op"] in ROUTED]:
        pool_op, routed, routed_grad = ROUTED[g.nodes[node]["op"]]
        dy, x, y = operands(g, node)
        yd = g.nodes[y]
        if yd["op"] not in (pool_op, routed) or operands(g, y) != [x]:
            continue
        attrs = op_attrs(g, y)
        if yd["op"] == pool_op and any(op_attrs(g, node).get(k) != v for k, v in attrs.items()):
            continue
        routes = next((r for r in consumers(g, y) if g.nodes[r]["op"] == "max_pool_routes"), None)
        if routes is None:
            rw.become(y, routed, [x], **attrs)
            offsets = g.nodes[x]["shape"][1] if pool_op == "max_pool_blocks" else prod(pair(attrs["pool_size"]))
            routes = rw.emit(f"{y}/routes", "max_pool_routes", [y], offsets=offsets)
        extra = {} if pool_op == "max_pool_blocks" else {"input_hw": list(g.nodes[node]["shape"][2:])}
        rw.become(node, routed_grad, [dy, routes], **attrs, **extra)


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
