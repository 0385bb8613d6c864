"""Optimizer updates: nodes that write new values into a parameter and its slots.

An update reads the gradient and the learning rate (a scalar ``state`` node, so
a schedule can change it between steps without recompiling) and writes, in
place, the operands listed in ``mutates``. Each record names the optimizers it
is the step of (``optimizers``) and its state operands (``slots``, ports 3 on);
its attributes are those optimizers' hyperparameters. Published rules:

- SGD (PyTorch's form): g += wd p;  v = mu v + g;  p -= lr (g + mu v) with Nesterov,
  lr v without.
- Adam (Kingma and Ba, 2015): m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  p -= lr m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t).
  AdamW (Loshchilov and Hutter, 2019) first decays p *= 1 - lr wd.
- RMSprop (Hinton, 2012): v = rho v + (1 - rho) g^2;  p -= lr g / (sqrt(v) + eps).
  Centered (Graves, 2013): a = rho a + (1 - rho) g, and sqrt(v - a^2) replaces sqrt(v).
  With momentum (PyTorch's form): b = mu b + g / (...);  p -= lr b.
- Adagrad (Duchi et al., 2011): s += g^2;  p -= lr g / (sqrt(s) + eps).
- Adadelta (Zeiler, 2012): a = rho a + (1 - rho) g^2;  d = sqrt(b + eps) / sqrt(a + eps) g;
  b = rho b + (1 - rho) d^2;  p -= lr d.

>>> from graphnn.compiler.ops import OPS
>>> OPS["adam_update"].mutates
(0, 3, 4, 5)
"""
from __future__ import annotations

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, is_number, register


def _update_shape(slots):
    def rule(shapes, dtypes, attrs):
        param, grad, lr = shapes[:3]
        if grad != param:
            raise OpShapeError(f"gradient {fmt_shape(grad)} does not match parameter {fmt_shape(param)}")
        if lr != ():
            raise OpShapeError(f"the learning rate must be a scalar, got {fmt_shape(lr)}")
        for i in slots:
            if i < len(shapes) and shapes[i] != param and shapes[i] != ():
                raise OpShapeError(f"optimizer slot {i} has shape {fmt_shape(shapes[i])}, "
                                   f"expected {fmt_shape(param)}")
        return param, dtypes[0]
    return rule


def _in_unit(v):
    return is_number(v) and 0 <= v < 1


_decay = Attr(0.0, lambda v: is_number(v) and v >= 0, "a weight decay >= 0")
_eps = Attr(1e-8, lambda v: is_number(v) and v > 0, "a positive epsilon")

register(OpDef(
    "sgd_update", None, _update_shape((3,)), kind="update", mutates=(0, 3),
    optimizers=("sgd",), slots=("momentum",),
    attrs={"momentum": Attr(0.0, _in_unit, "a momentum in [0, 1)"),
           "nesterov": Attr(False, lambda v: isinstance(v, bool), "True or False"),
           "weight_decay": _decay},
    flops=lambda ins, out, a: 4 * _n(ins[0]),
    doc="(param, grad, lr[, velocity]): SGD with optional (Nesterov) momentum."))

register(OpDef(
    "adam_update", 6, _update_shape((3, 4)), kind="update",
    optimizers=("adam", "adamw"), slots=("adam_m", "adam_v", "adam_t"),
    mutates=(0, 3, 4, 5),
    attrs={"beta1": Attr(0.9, _in_unit, "beta1 in [0, 1)"),
           "beta2": Attr(0.999, _in_unit, "beta2 in [0, 1)"),
           "eps": _eps, "weight_decay": _decay},
    flops=lambda ins, out, a: 12 * _n(ins[0]),
    doc="(param, grad, lr, m, v, t): Adam with bias correction; t counts steps. A "
        "weight_decay is decoupled (AdamW)."))

def _rmsprop_shape(shapes, dtypes, attrs):
    expected = 4 + bool(attrs["centered"]) + bool(attrs["momentum"] > 0)
    if len(shapes) != expected:
        raise OpShapeError(f"expected {expected} operands (param, grad, lr, v"
                           f"{', mean grad' * bool(attrs['centered'])}"
                           f"{', momentum buffer' * bool(attrs['momentum'] > 0)}), got {len(shapes)}")
    return _update_shape((3, 4, 5))(shapes, dtypes, attrs)


register(OpDef(
    "rmsprop_update", None, _rmsprop_shape, kind="update", optimizers=("rmsprop",),
    slots=("rms_v", "rms_mean_grad", "rms_momentum"),    # the last two only when asked for
    mutates=(0, 3, 4, 5),
    attrs={"rho": Attr(0.9, _in_unit, "rho in [0, 1)"), "eps": _eps,
           "momentum": Attr(0.0, _in_unit, "a momentum in [0, 1)"),
           "centered": Attr(False, lambda v: isinstance(v, bool), "True or False")},
    flops=lambda ins, out, a: 6 * _n(ins[0]),
    doc="(param, grad, lr, v[, mean grad if centered][, momentum buffer if momentum > 0]): "
        "RMSprop."))
register(OpDef(
    "adagrad_update", 4, _update_shape((3,)), kind="update", optimizers=("adagrad",),
    slots=("adagrad_sum",),
    mutates=(0, 3), attrs={"eps": _eps},
    flops=lambda ins, out, a: 5 * _n(ins[0]), doc="(param, grad, lr, sum of squares): Adagrad."))
register(OpDef(
    "adadelta_update", 5, _update_shape((3, 4)), kind="update", optimizers=("adadelta",),
    slots=("adadelta_g2", "adadelta_dx2"),
    mutates=(0, 3, 4),
    attrs={"rho": Attr(0.9, _in_unit, "rho in [0, 1)"), "eps": Attr(1e-6, lambda v: is_number(v) and v > 0)},
    flops=lambda ins, out, a: 12 * _n(ins[0]), doc="(param, grad, lr, E[g^2], E[dx^2]): Adadelta."))


def _clip_shape(shapes, dtypes, attrs):
    return (), dtypes[0]


register(OpDef(
    "clip_scale", None, _clip_shape, kind="gradient", fusion="reduce",
    attrs={"max_norm": Attr(check=lambda v: is_number(v) and v > 0, expect="a positive norm")},
    flops=lambda ins, out, a: sum(2 * _n(s) for s in ins),
    doc="min(1, max_norm / (global norm of all operands + 1e-6)): the factor that "
        "clips gradients by their global norm."))


def _n(shape):
    n = 1
    for d in shape:
        n *= d
    return n
