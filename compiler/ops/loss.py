"""Losses: each reduces (prediction, target) to a scalar, mean or sum, optionally
weighting each sample by a third operand (one weight per row; the mean still
divides by the number of rows, as Keras does).

The gradient op of a loss reads the upstream scalar gradient ``dl`` (1.0 for
the loss being trained), the prediction and the target; targets get no gradient.

>>> from graphnn.compiler.ops import OPS
>>> OPS["softmax_cross_entropy"].infer([(None, 10), (None,)], ["float32", "int64"],
...                                    {"reduction": "mean"})
((), 'float32')
"""
from __future__ import annotations

from math import prod

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, register, same_dtype

_reduction = Attr("mean", lambda v: v in ("mean", "sum"), "'mean' or 'sum'")


def _pairwise_shape(shapes, dtypes, attrs):
    pred, target = shapes
    if pred != target:
        raise OpShapeError(f"prediction {fmt_shape(pred)} and target {fmt_shape(target)} "
                           "must have the same shape")
    return (), same_dtype(dtypes, 0, 1)


def _softmax_ce_shape(shapes, dtypes, attrs):
    logits, labels = shapes
    if len(logits) != 2:
        raise OpShapeError(f"expected logits of shape (N, classes), got {fmt_shape(logits)}")
    if dtypes[1].startswith("int"):
        if labels != logits[:1]:
            raise OpShapeError(f"integer labels have shape {fmt_shape(labels)}, expected "
                               f"{fmt_shape(logits[:1])} (one class index per row of logits "
                               f"{fmt_shape(logits)})")
    elif labels != logits:
        raise OpShapeError(f"one-hot labels have shape {fmt_shape(labels)}, expected "
                           f"{fmt_shape(logits)} like the logits (or integer labels of shape "
                           f"{fmt_shape(logits[:1])})")
    return (), same_dtype(dtypes, 0)


def _weighted(rule):
    """A loss's shape rule, with an optional third operand: one weight per sample."""
    def check(shapes, dtypes, attrs):
        if len(shapes) not in (2, 3):
            raise OpShapeError(f"expected (prediction, target[, sample weights]), got {len(shapes)} operands")
        if len(shapes) == 3:
            batch = shapes[0][:1]
            if shapes[2] != batch:
                raise OpShapeError(f"sample weights have shape {fmt_shape(shapes[2])}, expected "
                                   f"{fmt_shape(batch)}: one per sample")
            if not dtypes[2].startswith("float"):
                raise OpShapeError(f"sample weights must be floats, got {dtypes[2]}")
        return rule(shapes[:2], dtypes[:2], attrs)
    return check


def _loss(name, shape_rule, attrs=None, flops=3, doc="", user_names=None):
    attrs = {"reduction": _reduction, **(attrs or {})}
    grad = name + "_grad"
    shape_rule = _weighted(shape_rule)

    def vjp(ctx, ins, out, dy, a):
        return [ctx.emit(grad, [dy, *ins], **a), None, None][:len(ins)]

    def grad_shape(shapes, dtypes, a):
        if shapes[0] != ():
            raise OpShapeError(f"the upstream gradient must be a scalar, got {fmt_shape(shapes[0])}")
        shape_rule(shapes[1:], dtypes[1:], a)
        return shapes[1], dtypes[1]

    register(OpDef(name, None, shape_rule, fusion="reduce", vjp=vjp, kind="loss", role="loss",
                   user_names=user_names,
                   attrs=attrs, flops=lambda ins, out, a: flops * prod(ins[0]), doc=doc))
    register(OpDef(grad, None, grad_shape, fusion="opaque", kind="gradient",
                   attrs=attrs, flops=lambda ins, out, a: 3 * prod(out),
                   doc=f"Gradient of {name} with respect to the prediction."))


_loss("mse", _pairwise_shape, user_names=("mse", "l2", "rms"),
      doc="Mean (or sum) of (pred - target)^2: the L2 / RMS loss.")
_loss("l1", _pairwise_shape, doc="Mean (or sum) of |pred - target|.")
_loss("softmax_cross_entropy", _softmax_ce_shape, flops=6,
      user_names=("softmax_cross_entropy", "cross_entropy"),
      doc="Cross-entropy of softmax(logits) against class indices or one-hot rows; "
          "the mean (or sum) over rows.")
_loss("cross_entropy", _softmax_ce_shape, flops=3, user_names=("categorical_cross_entropy",),
      doc="Cross-entropy of probabilities (clipped to [1e-7, 1]) against class indices or "
          "one-hot rows. After a softmax, the fuse pass rewrites the pair into "
          "softmax_cross_entropy, which is stable at any logits.")
_loss("kl_divergence", _pairwise_shape, flops=5,
      doc="sum_k t log(t / p) per row, rows averaged (or summed): the divergence of the "
          "predicted distribution p from the target t; both clipped to [1e-7, 1].")
_loss("binary_cross_entropy", _pairwise_shape, flops=6,
      user_names=("binary_cross_entropy", "bce"),
      attrs={"from_logits": Attr(False, lambda v: isinstance(v, bool), "True or False")},
      doc="-(t log p + (1 - t) log(1 - p)), from probabilities p (clipped to "
          "[1e-7, 1 - 1e-7]) or, stably, from logits.")


def _penalty(name, doc):
    grad = name + "_grad"

    def shape(shapes, dtypes, attrs):
        return (), same_dtype(dtypes, 0)

    register(OpDef(name, 1, shape, fusion="reduce", kind="loss", role="penalty",
                   vjp=lambda ctx, ins, out, dy, a: [ctx.emit(grad, [dy, ins[0]], **a)],
                   attrs={"scale": Attr(check=lambda v: isinstance(v, (int, float)) and v >= 0,
                                        expect="a coefficient >= 0")},
                   flops=lambda ins, out, a: 2 * prod(ins[0]), doc=doc))
    register(OpDef(grad, 2, lambda s, d, a: (s[1], d[1]), fusion="elementwise",
                   kind="gradient", attrs={"scale": Attr(check=lambda v: isinstance(v, (int, float)))},
                   flops=lambda ins, out, a: 2 * prod(out), doc=f"Gradient of {name}."))


_penalty("l2_penalty", "scale * sum(w^2): an L2 regularization term.")
_penalty("l1_penalty", "scale * sum(|w|): an L1 regularization term.")


def _gaussian_kl_shape(shapes, dtypes, attrs):
    mean, logvar = shapes
    if mean != logvar:
        raise OpShapeError(f"mean {fmt_shape(mean)} and log-variance {fmt_shape(logvar)} differ")
    return (), same_dtype(dtypes, 0, 1)


register(OpDef(
    "gaussian_kl", 2, _gaussian_kl_shape, fusion="reduce", kind="loss", role="penalty",
    vjp=lambda ctx, ins, out, dy, a: [ctx.emit("gaussian_kl_grad", [dy, *ins], wrt=k, **a)
                                      for k in (0, 1)],
    attrs={"scale": Attr(1.0, lambda v: isinstance(v, (int, float)) and v >= 0, "a weight >= 0")},
    flops=lambda ins, out, a: 5 * prod(ins[0]),
    doc="KL(N(mean, exp(logvar)) || N(0, 1)) summed over the latent axes, averaged over "
        "the batch, times scale: the VAE's regularizer."))
register(OpDef(
    "gaussian_kl_grad", 3, lambda s, d, a: (s[1], d[1]), fusion="elementwise", kind="gradient",
    attrs={"scale": Attr(1.0), "wrt": Attr(check=lambda v: v in (0, 1))},
    doc="mean / N, or (exp(logvar) - 1) / 2N, times scale."))
