"""Activation kernels and their gradients, each pair side by side.

Every kernel writes into its preallocated result and is safe when the result is
the same buffer as operand 0 (the planner runs them in place): it reads
operand 0 before overwriting it, or goes through a planned scratch buffer,
which arrives after the result in ``outs``.

>>> import numpy as np
>>> x, y = np.array([-1.0, 2.0]), np.empty(2)
>>> _ = relu([x], [y])(); y
array([0., 2.])
"""
from __future__ import annotations

from functools import partial

import numpy as np


def relu(ins, outs):
    return partial(np.maximum, ins[0], 0, out=outs[0])


def relu_grad(ins, outs):                      # dx = dy * (y > 0)
    (dy, y), (dx, mask) = ins, outs

    def run():
        np.greater(y, 0, out=mask)              # a bool mask: the fastest form measured
        np.multiply(dy, mask, out=dx)
    return run


def leaky_relu(ins, outs, alpha=0.01):         # y = max(x, alpha x), for 0 <= alpha < 1
    (x,), (y, t) = ins, outs

    def run():
        np.multiply(x, alpha, out=t)
        np.maximum(x, t, out=y)
    return run


def leaky_relu_grad(ins, outs, alpha=0.01):    # dx = dy * (1 if y > 0 else alpha)
    (dy, y), (dx, mask, t) = ins, outs

    def run():
        np.greater(y, 0, out=mask)
        np.multiply(mask, 1.0 - alpha, out=t)
        np.add(t, alpha, out=t)
        np.multiply(dy, t, out=dx)
    return run


def tanh(ins, outs):
    return partial(np.tanh, ins[0], out=outs[0])


def tanh_grad(ins, outs):                      # dx = dy * (1 - y^2)
    (dy, y), (dx, t) = ins, outs

    def run():
        np.multiply(y, y, out=t)
        np.subtract(1.0, t, out=t)
        np.multiply(dy, t, out=dx)
    return run


def _sigmoid_into(x, y):
    # exp(-log(1 + exp(-x))): no overflow and full relative precision at both ends.
    np.negative(x, out=y)
    np.logaddexp(0.0, y, out=y)
    np.negative(y, out=y)
    np.exp(y, out=y)


def sigmoid(ins, outs):
    return partial(_sigmoid_into, ins[0], outs[0])


def sigmoid_grad(ins, outs):                   # dx = dy * y * (1 - y)
    (dy, y), (dx, t) = ins, outs

    def run():
        np.subtract(1.0, y, out=t)
        np.multiply(t, y, out=t)
        np.multiply(dy, t, out=dx)
    return run


def softplus(ins, outs):                       # log(1 + e^x), stable
    return partial(np.logaddexp, 0.0, ins[0], out=outs[0])


def softplus_grad(ins, outs):                  # dx = dy * sigmoid(x)
    (dy, x), (dx, t) = ins, outs

    def run():
        _sigmoid_into(x, t)
        np.multiply(dy, t, out=dx)
    return run


def softmax(ins, outs, axis=-1):
    (x,), (y,) = ins, outs

    def run():
        np.subtract(x, x.max(axis=axis, keepdims=True), out=y)
        np.exp(y, out=y)
        np.divide(y, y.sum(axis=axis, keepdims=True), out=y)
    return run


def softmax_grad(ins, outs, axis=-1):          # dx = y * (dy - sum(dy * y))
    (dy, y), (dx, t) = ins, outs

    def run():
        np.multiply(dy, y, out=t)
        np.subtract(dy, t.sum(axis=axis, keepdims=True), out=dx)
        np.multiply(dx, y, out=dx)
    return run


KERNELS = {f.__name__: f for f in (relu, relu_grad, leaky_relu, leaky_relu_grad, tanh,
                                    tanh_grad, sigmoid, sigmoid_grad, softplus, softplus_grad,
                                    softmax, softmax_grad)}
