"""Activation kernels and their gradients, each pair side by side.

Every kernel writes into its preallocated result and is safe when the result is
the same buffer as operand 0 (the planner runs them in place): it reads
operand 0 before overwriting it, or goes through a planned scratch buffer,
which it declares (``@kernel(scratch=...)``) and receives by name.

>>> import numpy as np
>>> x, y = np.array([-1.0, 2.0]), np.empty(2)
>>> _ = relu([x], [y])(); y
array([0., 2.])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel


@kernel(operands=1)
def relu(ins, outs):
    return partial(np.maximum, ins[0], 0, out=outs[0])


@kernel(operands=2, scratch={"mask": ("out", "bool")})
def relu_grad(ins, outs, *, mask):                      # dx = dy * (y > 0)
    (dy, y), (dx,) = ins, outs

    def run():
        np.greater(y, 0, out=mask)              # a bool mask: the fastest form measured
        np.multiply(dy, mask, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def leaky_relu(ins, outs, alpha=0.01, *, t):         # y = max(x, alpha x), for 0 <= alpha < 1
    (x,), (y,) = ins, outs

    def run():
        np.multiply(x, alpha, out=t)
        np.maximum(x, t, out=y)
    return run


@kernel(operands=2, scratch={"mask": ("out", "bool"), "t": ("out", "same")})
def leaky_relu_grad(ins, outs, alpha=0.01, *, mask, t):    # dx = dy * (1 if y > 0 else alpha)
    (dy, y), (dx,) = ins, outs

    def run():
        np.greater(y, 0, out=mask)
        np.multiply(mask, 1.0 - alpha, out=t)
        np.add(t, alpha, out=t)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1)
def tanh(ins, outs):
    return partial(np.tanh, ins[0], out=outs[0])


@kernel(operands=2, scratch={"t": ("out", "same")})
def tanh_grad(ins, outs, *, t):                      # dx = dy * (1 - y^2)
    (dy, y), (dx,) = ins, outs

    def run():
        np.multiply(y, y, out=t)
        np.subtract(1.0, t, out=t)
        np.multiply(dy, t, out=dx)
    return run


def _sigmoid_into(x, y):
    # 1 / (1 + exp(-x)): full relative precision at both ends (exp(-x) is large and
    # exact-ish where the result is tiny). Where exp(-x) overflows (x < -88 in
    # float32) the result is 0 instead of a subnormal. An order of magnitude
    # faster than exp(-logaddexp(0, -x)): logaddexp has no vectorized loop.
    with np.errstate(over="ignore"):
        np.negative(x, out=y)
        np.exp(y, out=y)
    np.add(y, 1.0, out=y)
    np.reciprocal(y, out=y)


@kernel(operands=1)
def sigmoid(ins, outs):
    return partial(_sigmoid_into, ins[0], outs[0])


@kernel(operands=2, scratch={"t": ("out", "same")})
def sigmoid_grad(ins, outs, *, t):                   # dx = dy * y * (1 - y)
    (dy, y), (dx,) = ins, outs

    def run():
        np.subtract(1.0, y, out=t)
        np.multiply(t, y, out=t)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1)
def softplus(ins, outs):                       # log(1 + e^x), stable
    return partial(np.logaddexp, 0.0, ins[0], out=outs[0])


@kernel(operands=2, scratch={"t": ("out", "same")})
def softplus_grad(ins, outs, *, t):                  # dx = dy * sigmoid(x)
    (dy, x), (dx,) = ins, outs

    def run():
        _sigmoid_into(x, t)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1)
def softmax(ins, outs, axis=-1):
    (x,), (y,) = ins, outs

    def run():
        np.subtract(x, x.max(axis=axis, keepdims=True), out=y)
        np.exp(y, out=y)
        np.divide(y, y.sum(axis=axis, keepdims=True), out=y)
    return run


@kernel(operands=2, scratch={"t": ("out", "same")})
def softmax_grad(ins, outs, axis=-1, *, t):          # dx = y * (dy - sum(dy * y))
    (dy, y), (dx,) = ins, outs

    def run():
        np.multiply(dy, y, out=t)
        np.subtract(dy, t.sum(axis=axis, keepdims=True), out=dx)
        np.multiply(dx, y, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def elu(ins, outs, alpha=1.0, *, t):                 # x if x > 0 else alpha (e^x - 1)
    (x,), (y,) = ins, outs

    def run():
        np.minimum(x, 0.0, out=t)
        np.expm1(t, out=t)
        np.multiply(t, alpha, out=t)
        np.maximum(x, 0.0, out=y)
        np.add(y, t, out=y)
    return run


@kernel(operands=2, scratch={"positive": ("out", "bool"), "t": ("out", "same")})
def elu_grad(ins, outs, alpha=1.0, *, positive, t):            # dx = dy * (1 if y > 0 else y + alpha)
    (dy, y), (dx,) = ins, outs

    def run():
        np.greater(y, 0, out=positive)
        np.add(y, alpha, out=t)
        np.copyto(t, 1.0, where=positive)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def swish(ins, outs, *, t):                          # x sigmoid(x)
    (x,), (y,) = ins, outs

    def run():
        _sigmoid_into(x, t)
        np.multiply(x, t, out=y)
    return run


@kernel(operands=2, scratch={"s": ("out", "same"), "u": ("out", "same")})
def swish_grad(ins, outs, *, s, u):                     # dx = dy * s (1 + x (1 - s)), s = sigmoid(x)
    (dy, x), (dx,) = ins, outs

    def run():
        _sigmoid_into(x, s)
        np.subtract(1.0, s, out=u)
        np.multiply(u, x, out=u)
        np.add(u, 1.0, out=u)
        np.multiply(u, s, out=u)
        np.multiply(dy, u, out=dx)
    return run


GELU_K, GELU_C = float(np.sqrt(2.0 / np.pi)), 0.044715


@kernel(operands=1, scratch={"t": ("out", "same")})
def gelu(ins, outs, *, t):                           # 0.5 x (1 + tanh(k (x + c x^3)))
    (x,), (y,) = ins, outs

    def run():
        np.multiply(x, x, out=t)
        np.multiply(t, GELU_C, out=t)
        np.add(t, 1.0, out=t)
        np.multiply(t, x, out=t)
        np.multiply(t, GELU_K, out=t)
        np.tanh(t, out=t)
        np.add(t, 1.0, out=t)
        np.multiply(t, 0.5, out=t)
        np.multiply(x, t, out=y)
    return run


@kernel(operands=2, scratch={"th": ("out", "same"), "u": ("out", "same"), "w": ("out", "same")})
def gelu_grad(ins, outs, *, th, u, w):       # dx = dy (0.5 (1 + th) + 0.5 x (1 - th^2) k (1 + 3 c x^2))
    (dy, x), (dx,) = ins, outs

    def run():
        np.multiply(x, x, out=u)               # u = k x (1 + 3 c x^2)
        np.multiply(u, 3.0 * GELU_C, out=w)
        np.add(w, 1.0, out=w)
        np.multiply(u, GELU_C, out=th)         # th = tanh(k (x + c x^3))
        np.add(th, 1.0, out=th)
        np.multiply(th, x, out=th)
        np.multiply(th, GELU_K, out=th)
        np.tanh(th, out=th)
        np.multiply(w, x, out=u)
        np.multiply(u, GELU_K, out=u)
        np.multiply(th, th, out=w)             # w = 0.5 u (1 - th^2) + 0.5 (1 + th)
        np.subtract(1.0, w, out=w)
        np.multiply(w, u, out=w)
        np.add(w, th, out=w)
        np.add(w, 1.0, out=w)
        np.multiply(w, 0.5, out=w)
        np.multiply(dy, w, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def hardswish(ins, outs, *, t):                      # x min(max(x + 3, 0), 6) / 6
    (x,), (y,) = ins, outs

    def run():
        np.add(x, 3.0, out=t)
        np.clip(t, 0.0, 6.0, out=t)
        np.multiply(t, 1.0 / 6.0, out=t)
        np.multiply(x, t, out=y)
    return run


@kernel(operands=2, scratch={"t": ("out", "same"), "outside": ("out", "bool")})
def hardswish_grad(ins, outs, *, t, outside):                 # dx = dy * (0 if x < -3, 1 if x > 3, else (2x + 3) / 6)
    (dy, x), (dx,) = ins, outs

    def run():
        np.multiply(x, 1.0 / 3.0, out=t)
        np.add(t, 0.5, out=t)
        np.less(x, -3.0, out=outside)
        np.copyto(t, 0.0, where=outside)
        np.greater(x, 3.0, out=outside)
        np.copyto(t, 1.0, where=outside)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def log_softmax(ins, outs, axis=-1, *, t):
    (x,), (y,) = ins, outs

    def run():
        np.subtract(x, x.max(axis=axis, keepdims=True), out=y)
        np.exp(y, out=t)
        np.subtract(y, np.log(t.sum(axis=axis, keepdims=True)), out=y)
    return run


@kernel(operands=2, scratch={"t": ("out", "same")})
def log_softmax_grad(ins, outs, axis=-1, *, t):      # dx = dy - exp(y) sum(dy)
    (dy, y), (dx,) = ins, outs

    def run():
        np.exp(y, out=t)
        np.multiply(t, dy.sum(axis=axis, keepdims=True), out=t)
        np.subtract(dy, t, out=dx)
    return run
