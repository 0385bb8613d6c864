"""Activations and their gradients, side by side.

Each gradient op reads the least it needs: relu, tanh and sigmoid read their
output (so the input can be freed), softplus reads its input.

>>> from graphnn.compiler.ops import OPS
>>> OPS["softmax"].infer([(None, 10)], ["float32"], {"axis": -1})
((None, 10), 'float32')
"""
from __future__ import annotations

from ..errors import OpShapeError
from .base import Attr, OpDef, elementwise_flops, fmt_shape, is_number, like_input, register, same_dtype

_same = like_input(0)


def _unary(name, grad_op, reads, flops=1, attrs=None, doc=""):
    """Register an elementwise activation whose gradient is `grad_op(dy, reads)`.

    Both kernels may write over their operand 0 (the gradient over dy); the
    scratch buffers they need for that are declared by the kernels."""
    attrs = attrs or {}

    def vjp(ctx, ins, out, dy, a):
        saved = out if reads == "output" else ins[0]
        return [ctx.emit(grad_op, [dy, saved], **a)]

    register(OpDef(name, 1, _same, fusion="elementwise", vjp=vjp, inplace=True, role="activation",
                   attrs=attrs, flops=elementwise_flops(flops), doc=doc))
    register(OpDef(grad_op, 2, _same, fusion="elementwise", inplace=True,
                   kind="gradient", attrs=attrs, flops=elementwise_flops(2),
                   doc=f"Gradient of {name}: dy times {name}' (from its {reads})."))


_slope = Attr(0.01, lambda v: is_number(v) and 0 <= v < 1, "a slope in [0, 1)")

_unary("relu", "relu_grad", "output", doc="max(x, 0)")
_unary("leaky_relu", "leaky_relu_grad", "output", attrs={"alpha": _slope},
       doc="x if x > 0 else alpha * x")
_unary("tanh", "tanh_grad", "output", flops=4, doc="tanh(x); tanh' = 1 - y^2")
_unary("sigmoid", "sigmoid_grad", "output", flops=4, doc="1 / (1 + exp(-x)); y' = y (1 - y)")
_unary("softplus", "softplus_grad", "input", flops=4, doc="log(1 + exp(x)); its derivative is sigmoid(x)")


_alpha = Attr(1.0, lambda v: is_number(v) and v > 0, "a positive alpha")
_unary("elu", "elu_grad", "output", flops=4, attrs={"alpha": _alpha},
       doc="x if x > 0 else alpha (exp(x) - 1)")
_unary("swish", "swish_grad", "input", flops=5, doc="x sigmoid(x) (SiLU)")
_unary("gelu", "gelu_grad", "input", flops=9,
       doc="0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): the tanh form of GELU, "
           "PyTorch's approximate='tanh' (PyTorch and Keras default to the exact erf form)")
_unary("hardswish", "hardswish_grad", "input", flops=4, doc="x relu6(x + 3) / 6 (MobileNetV3's hard swish)")


def _identity_vjp(ctx, ins, out, dy, attrs):
    return [dy]


register(OpDef("linear", 1, _same, fusion="elementwise", vjp=_identity_vjp, role="activation",
               view=True, doc="The identity activation (a view: no kernel runs)."))

_axis = Attr(-1, lambda v: isinstance(v, int) and not isinstance(v, bool), "an int axis")


def _softmax_shape(shapes, dtypes, attrs):
    (x,) = shapes
    if not -len(x) <= attrs["axis"] < len(x):
        raise OpShapeError(f"axis {attrs['axis']} is out of range for shape {fmt_shape(x)}")
    return x, same_dtype(dtypes, 0)


def _softmax_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("softmax_grad", [dy, out], axis=attrs["axis"])]


register(OpDef("softmax", 1, _softmax_shape, fusion="reduce", vjp=_softmax_vjp, role="activation",
               attrs={"axis": _axis}, flops=elementwise_flops(5), inplace=True,
               doc="exp(x) / sum(exp(x)) along axis, computed from x - max(x)."))
register(OpDef("log_softmax", 1, _softmax_shape, fusion="reduce", role="activation",
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("log_softmax_grad", [dy, out], axis=a["axis"])],
               attrs={"axis": _axis}, flops=elementwise_flops(5), inplace=True, doc="x - log(sum(exp(x))) along axis, stably."))
register(OpDef("log_softmax_grad", 2, _same, fusion="reduce",
               kind="gradient", inplace=True, attrs={"axis": _axis},
               flops=elementwise_flops(4), doc="dy - exp(y) * sum(dy) along axis."))
register(OpDef("softmax_grad", 2, _same, fusion="reduce",
               kind="gradient", inplace=True, attrs={"axis": _axis},
               flops=elementwise_flops(4),
               doc="y * (dy - sum(dy * y)) along axis."))
