"""Batch normalization, as ops small enough to differentiate one by one:

    mean = batch_mean(x)                 per channel, over every other axis
    var  = batch_var(x, mean)            biased, as Keras keeps it
    y    = normalize(x, mean, var, gamma, beta)
    moving_average(running_mean, mean)   updates, in training programs only
    moving_average(running_var, var)

Autodiff composes the three gradients into batch norm's full one. For inference,
``normalize`` reads the running statistics instead (its ``inference`` hook finds
them through the edges: they are what the moving averages of its mean and
variance update) and is folded into the layer before it when that layer's
record says how (``fold_axes``: a dense's or a convolution's weight).

>>> from graphnn.compiler.ops import OPS
>>> OPS["batch_mean"].infer([(None, 8, 5, 5)], ["float32"], {"axis": 1})
((8,), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from ..ir import op_attrs, operands
from .base import OPS, Attr, OpDef, fmt_shape, is_number, register, same_dtype


def _axis(shape, axis):
    if not -len(shape) <= axis < len(shape) or len(shape) < 2:
        raise OpShapeError(f"axis {axis} does not fit {fmt_shape(shape)}")
    a = axis % len(shape)
    if shape[a] is None:
        raise OpShapeError("the channel axis cannot be the batch axis")
    return a


_axis_attr = Attr(1, lambda v: isinstance(v, int) and not isinstance(v, bool), "an int axis")
_eps = Attr(1e-3, lambda v: is_number(v) and v > 0, "a positive epsilon")


def _channels(shapes, dtypes, attrs):
    x = shapes[0]
    return (x[_axis(x, attrs["axis"])],), same_dtype(dtypes, 0)


def _check_stats(shapes, c):
    for s in shapes:
        if s != (c,):
            raise OpShapeError(f"per-channel operand has shape {fmt_shape(s)}, expected ({c},)")


def _var_shape(shapes, dtypes, attrs):
    out, dtype = _channels(shapes, dtypes, attrs)
    _check_stats(shapes[1:], out[0])
    return out, dtype


def _normalize_shape(shapes, dtypes, attrs):
    x = shapes[0]
    _check_stats(shapes[1:], x[_axis(x, attrs["axis"])])
    return x, same_dtype(dtypes, *range(5))


register(OpDef(
    "batch_mean", 1, _channels, fusion="reduce", attrs={"axis": _axis_attr},
    vjp=lambda ctx, ins, out, dy, a: [ctx.emit("batch_mean_grad", [dy], shape=ctx.shape(ins[0]), **a)],
    flops=lambda ins, out, a: prod(ins[0]), doc="Mean over every axis but the channel axis."))
register(OpDef(
    "batch_mean_grad", 1, lambda s, d, a: (tuple(a["shape"]), d[0]), kind="gradient",
    fusion="broadcast", attrs={"axis": _axis_attr, "shape": Attr(check=lambda v: True)},
    doc="dy / M, spread over every position of its channel."))
register(OpDef(
    "batch_var", 2, _var_shape, fusion="reduce", attrs={"axis": _axis_attr},
    vjp=lambda ctx, ins, out, dy, a: [ctx.emit("batch_var_grad", [dy, *ins], wrt=k, **a) for k in (0, 1)],
    flops=lambda ins, out, a: 3 * prod(ins[0]),
    doc="Mean of (x - mean)^2 over every axis but the channel axis (biased)."))
register(OpDef(
    "batch_var_grad", 3, lambda s, d, a: ((s[1], s[2])[a["wrt"]], d[1]), kind="gradient",
    fusion="opaque", attrs={"axis": _axis_attr, "wrt": Attr(check=lambda v: v in (0, 1))},
    doc="2 (x - mean) dy / M for x; -2 sum(x - mean) dy / M for the mean."))


def _normalize_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("normalize_grad", [dy, *ins[:4]], wrt=k, **attrs) for k in range(5)]


def _running_average(g, stat):
    """The running average that a moving_average update keeps of ``stat``, or None."""
    for reader in g.successors(stat):
        if g.nodes[reader]["op"] == "moving_average" and operands(g, reader)[1] == stat:
            return operands(g, reader)[0]
    return None


def _use_running_statistics(rw, norm, ins, attrs):
    """Inference: normalize with the running averages instead of the batch's
    statistics; then, if a layer with a bias feeds it alone and that layer's
    record can fold a per-channel scale into its weight, fold it there."""
    g = rw.g
    x, mean, var, gamma, beta = ins
    running_mean, running_var = _running_average(g, mean), _running_average(g, var)
    if running_mean is None or running_var is None:
        return                  # no running averages kept: the batch's statistics it is
    rw.rewire(norm, 1, running_mean)
    rw.rewire(norm, 2, running_var)
    for stat in (var, mean):    # the batch's statistics: now read by their moving averages only
        readers = list(g.successors(stat))
        if all(g.nodes[r]["op"] == "moving_average" for r in readers):
            rw.remove([*readers, stat])     # (inference runs no update) so x may have one reader
    if g.nodes[x]["op"] != "bias_add" or g.out_degree(x) != 1:
        return
    layer, bias = operands(g, x)
    fold = OPS[g.nodes[layer]["op"]].fold_axes
    if fold is None or g.out_degree(layer) != 1:
        return
    weight = operands(g, layer)[1]
    rank = len(g.nodes[norm]["shape"])
    axes = fold(op_attrs(g, layer), rank)
    if g.nodes[bias]["op"] != "param" or g.nodes[weight]["op"] != "param" or \
            axes is None or axes[0] != attrs["axis"] % rank:
        return
    scale = rw.emit(f"{norm}/fold_scale", "bn_fold_scale", [gamma, running_var], eps=attrs["eps"])
    w_shape, w_axis = g.nodes[weight]["shape"], axes[1] % len(g.nodes[weight]["shape"])
    per_channel = scale
    if w_axis != len(w_shape) - 1:         # (F,) against a weight (F, C, KH, KW): (F, 1, 1, 1)
        spread = tuple(d if i == w_axis else 1 for i, d in enumerate(w_shape))
        per_channel = rw.emit(f"{norm}/fold_scale_{len(w_shape)}d", "reshape", [scale], shape=spread)
    rw.rewire(layer, 1, rw.emit(f"{norm}/folded_W", "multiply", [weight, per_channel]))
    rw.rewire(x, 1, rw.emit(f"{norm}/folded_b", "bn_fold_shift", [bias, running_mean, scale, beta]))
    rw.become(norm, "linear", [x])     # (kept only if it is an output)
    rw.move_readers(norm, x)           # its readers may now fuse into the layer's epilogue


_norm_attrs = {"axis": _axis_attr, "eps": _eps}
register(OpDef(
    "normalize", 5, _normalize_shape, fusion="broadcast", vjp=_normalize_vjp,
    inference=_use_running_statistics, attrs=_norm_attrs,
    flops=lambda ins, out, a: 2 * prod(out),
    doc="gamma (x - mean) / sqrt(var + eps) + beta, per channel (for inference, the "
        "running averages of mean and var)."))
register(OpDef(
    "normalize_grad", 5, lambda s, d, a: ((s[1], s[2], s[3], s[4], s[4])[a["wrt"]], d[1]),
    kind="gradient", fusion="opaque",
    attrs={**_norm_attrs, "wrt": Attr(check=lambda v: v in range(5))},
    doc="The gradient of normalize for operand ``wrt`` (x, mean, var, gamma, beta)."))

register(OpDef(
    "moving_average", 2, lambda s, d, a: (s[0], d[0]), kind="update",
    mutates=(0,), attrs={"momentum": Attr(0.99, lambda v: is_number(v) and 0 <= v < 1, "in [0, 1)")},
    doc="running = momentum running + (1 - momentum) value (Keras's convention)."))

register(OpDef(
    "bn_fold_scale", 2, lambda s, d, a: (s[0], d[0]), kind="lowered",
    attrs={"eps": _eps}, doc="gamma / sqrt(running_var + eps): folding batch norm for inference."))
register(OpDef(
    "bn_fold_shift", 4, lambda s, d, a: (s[0], d[0]), kind="lowered",
    doc="(b - running_mean) scale + beta: the folded bias."))
