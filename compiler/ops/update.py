"""Optimizer updates: nodes that write new values into a parameter and its slots.

An update reads the gradient and the learning rate (a scalar ``state`` node, so
a schedule can change it between steps without recompiling) and writes, in
place, the operands listed in ``mutates``. Published rules:

- SGD (PyTorch's form): v = mu v + g;  p -= lr (g + mu v) with Nesterov, lr v without.
- Adam (Kingma and Ba, 2015): m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  p -= lr m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t).

>>> from compiler.ops import OPS
>>> OPS["adam_update"].mutates
(0, 3, 4, 5)
"""
from __future__ import annotations

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, is_number, register, scratch_like


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


register(OpDef(
    "sgd_update", None, _update_shape((3,)), kernel="sgd_update", kind="update", mutates=(0, 3),
    scratch=scratch_like(0),
    attrs={"momentum": Attr(0.0, _in_unit, "a momentum in [0, 1)"),
           "nesterov": Attr(False, lambda v: isinstance(v, bool), "True or False")},
    flops=lambda ins, out, a: 4 * _n(ins[0]),
    doc="(param, grad, lr[, velocity]): SGD with optional (Nesterov) momentum."))

register(OpDef(
    "adam_update", 6, _update_shape((3, 4)), kernel="adam_update", kind="update",
    mutates=(0, 3, 4, 5), scratch=scratch_like(0),
    attrs={"beta1": Attr(0.9, _in_unit, "beta1 in [0, 1)"),
           "beta2": Attr(0.999, _in_unit, "beta2 in [0, 1)"),
           "eps": Attr(1e-8, lambda v: is_number(v) and v > 0, "a positive epsilon")},
    flops=lambda ins, out, a: 12 * _n(ins[0]),
    doc="(param, grad, lr, m, v, t): Adam with bias correction; t counts steps."))


def _n(shape):
    n = 1
    for d in shape:
        n *= d
    return n
