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


@kernel(operands=1, batched=(0,), epilogue=(0,))
def relu(ins, outs):
    """max(x, 0).

    >>> y = np.empty(3); _ = relu([np.array([-1.0, 0.0, 2.0])], [y])(); y
    array([0., 0., 2.])
    """
    return partial(np.maximum, ins[0], 0, out=outs[0])


@kernel(operands=2, scratch={"mask": ("out", "bool")}, batched=(0, 1), epilogue=(0, 1))
def relu_grad(ins, outs, *, mask):                      # dx = dy * (y > 0)
    """dx = dy * (y > 0), from the output y (so it runs after relu in place).

    >>> dy, y, dx = np.full(3, 5.0), np.array([0.0, 1.0, 2.0]), np.empty(3)
    >>> relu_grad([dy, y], [dx], mask=np.empty(3, bool))(); dx
    array([0., 5., 5.])
    """
    (dy, y), (dx,) = ins, outs

    def run():
        np.greater(y, 0, out=mask)              # a bool mask: the fastest form measured
        np.multiply(dy, mask, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def leaky_relu(ins, outs, alpha=0.01, *, t):         # y = max(x, alpha x), for 0 <= alpha < 1
    """max(x, alpha x), for 0 <= alpha < 1.

    >>> y = np.empty(2); leaky_relu([np.array([-10.0, 3.0])], [y], alpha=0.1, t=np.empty(2))(); y
    array([-1.,  3.])
    """
    (x,), (y,) = ins, outs

    def run():
        np.multiply(x, alpha, out=t)
        np.maximum(x, t, out=y)
    return run


@kernel(operands=2, scratch={"mask": ("out", "bool"), "t": ("out", "same")})
def leaky_relu_grad(ins, outs, alpha=0.01, *, mask, t):    # dx = dy * (1 if y > 0 else alpha)
    """dx = dy where y > 0, alpha dy elsewhere (from the output y).

    >>> def leaky_relu_of(v):
    ...     out = np.empty_like(v); leaky_relu([v], [out], t=np.empty_like(v), alpha=0.1)(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> leaky_relu_grad([np.ones(4), leaky_relu_of(x)], [dx], alpha=0.1,
    ...                 mask=np.empty(4, bool), t=np.empty(4))()
    >>> np.allclose(dx, (leaky_relu_of(x + h) - leaky_relu_of(x - h)) / (2 * h))   # central differences
    True
    """
    (dy, y), (dx,) = ins, outs

    def run():
        np.greater(y, 0, out=mask)
        np.multiply(mask, 1.0 - alpha, out=t)
        np.add(t, alpha, out=t)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1)
def tanh(ins, outs):
    """tanh(x).

    >>> y = np.empty(2); _ = tanh([np.array([0.0, 20.0])], [y])(); y
    array([0., 1.])
    """
    return partial(np.tanh, ins[0], out=outs[0])


@kernel(operands=2, scratch={"t": ("out", "same")})
def tanh_grad(ins, outs, *, t):                      # dx = dy * (1 - y^2)
    """dx = dy (1 - y^2), from the output y.

    >>> def tanh_of(v):
    ...     out = np.empty_like(v); tanh([v], [out])(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> tanh_grad([np.ones(4), tanh_of(x)], [dx], t=np.empty(4))()
    >>> np.allclose(dx, (tanh_of(x + h) - tanh_of(x - h)) / (2 * h))   # central differences
    True
    """
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
    """1 / (1 + e^-x), accurate at both ends, with no overflow warning far below 0.

    >>> y = np.empty(3); sigmoid([np.array([-1000.0, 0.0, 40.0])], [y])(); y
    array([0. , 0.5, 1. ])
    """
    return partial(_sigmoid_into, ins[0], outs[0])


@kernel(operands=2, scratch={"t": ("out", "same")})
def sigmoid_grad(ins, outs, *, t):                   # dx = dy * y * (1 - y)
    """dx = dy y (1 - y), from the output y.

    >>> def sigmoid_of(v):
    ...     out = np.empty_like(v); sigmoid([v], [out])(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> sigmoid_grad([np.ones(4), sigmoid_of(x)], [dx], t=np.empty(4))()
    >>> np.allclose(dx, (sigmoid_of(x + h) - sigmoid_of(x - h)) / (2 * h))   # central differences
    True
    """
    (dy, y), (dx,) = ins, outs

    def run():
        np.subtract(1.0, y, out=t)
        np.multiply(t, y, out=t)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1)
def softplus(ins, outs):                       # log(1 + e^x), stable
    """log(1 + e^x), without overflow for large x.

    >>> y = np.empty(2); _ = softplus([np.array([0.0, 1000.0])], [y])(); [round(float(v), 6) for v in y]
    [0.693147, 1000.0]
    """
    return partial(np.logaddexp, 0.0, ins[0], out=outs[0])


@kernel(operands=2, scratch={"t": ("out", "same")})
def softplus_grad(ins, outs, *, t):                  # dx = dy * sigmoid(x)
    """dx = dy sigmoid(x), from the input x.

    >>> def softplus_of(v):
    ...     out = np.empty_like(v); softplus([v], [out])(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> softplus_grad([np.ones(4), x], [dx], t=np.empty(4))()
    >>> np.allclose(dx, (softplus_of(x + h) - softplus_of(x - h)) / (2 * h))   # central differences
    True
    """
    (dy, x), (dx,) = ins, outs

    def run():
        _sigmoid_into(x, t)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1)
def softmax(ins, outs, axis=-1):
    """exp(x) normalized along ``axis``; the maximum is subtracted first, so large inputs do not overflow.

    >>> y = np.empty((1, 3)); softmax([np.array([[1000.0, 1000.0, 0.0]])], [y])(); y.round(6)
    array([[0.5, 0.5, 0. ]])
    """
    (x,), (y,) = ins, outs

    def run():
        np.subtract(x, x.max(axis=axis, keepdims=True), out=y)
        np.exp(y, out=y)
        np.divide(y, y.sum(axis=axis, keepdims=True), out=y)
    return run


@kernel(operands=2, scratch={"t": ("out", "same")})
def softmax_grad(ins, outs, axis=-1, *, t):          # dx = y * (dy - sum(dy * y))
    """dx = y (dy - sum(dy y)) along ``axis``, from the output y. A gradient
    that is the same for every class changes nothing (the outputs sum to 1):

    >>> y = np.array([[0.2, 0.3, 0.5]]); dx = np.empty((1, 3))
    >>> softmax_grad([np.full((1, 3), 7.0), y], [dx], t=np.empty((1, 3)))(); bool(np.abs(dx).max() < 1e-12)
    True
    """
    (dy, y), (dx,) = ins, outs

    def run():
        np.multiply(dy, y, out=t)
        np.subtract(dy, t.sum(axis=axis, keepdims=True), out=dx)
        np.multiply(dx, y, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def elu(ins, outs, alpha=1.0, *, t):                 # x if x > 0 else alpha (e^x - 1)
    """x where x > 0, alpha (e^x - 1) elsewhere.

    >>> y = np.empty(3); elu([np.array([-50.0, 0.0, 2.0])], [y], alpha=0.5, t=np.empty(3))(); y
    array([-0.5,  0. ,  2. ])
    """
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
    """dx = dy where y > 0, dy (y + alpha) elsewhere (from the output y).

    >>> def elu_of(v):
    ...     out = np.empty_like(v); elu([v], [out], t=np.empty_like(v), alpha=0.5)(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> elu_grad([np.ones(4), elu_of(x)], [dx], positive=np.empty(4, bool), t=np.empty(4), alpha=0.5)()
    >>> np.allclose(dx, (elu_of(x + h) - elu_of(x - h)) / (2 * h))   # central differences
    True
    """
    (dy, y), (dx,) = ins, outs

    def run():
        np.greater(y, 0, out=positive)
        np.add(y, alpha, out=t)
        np.copyto(t, 1.0, where=positive)
        np.multiply(dy, t, out=dx)
    return run


@kernel(operands=1, scratch={"t": ("out", "same")})
def swish(ins, outs, *, t):                          # x sigmoid(x)
    """x sigmoid(x) (SiLU).

    >>> y = np.empty(3); swish([np.array([-30.0, 0.0, 30.0])], [y], t=np.empty(3))(); y.round(6)
    array([-0.,  0., 30.])
    """
    (x,), (y,) = ins, outs

    def run():
        _sigmoid_into(x, t)
        np.multiply(x, t, out=y)
    return run


@kernel(operands=2, scratch={"s": ("out", "same"), "u": ("out", "same")})
def swish_grad(ins, outs, *, s, u):                     # dx = dy * s (1 + x (1 - s)), s = sigmoid(x)
    """dx = dy s (1 + x (1 - s)) with s = sigmoid(x), from the input x.

    >>> def swish_of(v):
    ...     out = np.empty_like(v); swish([v], [out], t=np.empty_like(v))(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> swish_grad([np.ones(4), x], [dx], s=np.empty(4), u=np.empty(4))()
    >>> np.allclose(dx, (swish_of(x + h) - swish_of(x - h)) / (2 * h))   # central differences
    True
    """
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
    """GELU, tanh form: 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715
    (PyTorch's approximate='tanh').

    >>> y = np.empty(3); gelu([np.array([-10.0, 0.0, 10.0])], [y], t=np.empty(3))(); y.round(6)
    array([-0.,  0., 10.])
    """
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
    """The tanh form's derivative times dy, from the input x.

    >>> def gelu_of(v):
    ...     out = np.empty_like(v); gelu([v], [out], t=np.empty_like(v))(); return out
    >>> x, h, dx = np.array([-2.0, -0.5, 0.5, 2.0]), 1e-6, np.empty(4)
    >>> gelu_grad([np.ones(4), x], [dx], th=np.empty(4), u=np.empty(4), w=np.empty(4))()
    >>> np.allclose(dx, (gelu_of(x + h) - gelu_of(x - h)) / (2 * h))   # central differences
    True
    """
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
    """x min(max(x + 3, 0), 6) / 6: 0 below -3, x above 3.

    >>> y = np.empty(4); hardswish([np.array([-4.0, -1.5, 0.0, 4.0])], [y], t=np.empty(4))(); y
    array([-0.   , -0.375,  0.   ,  4.   ])
    """
    (x,), (y,) = ins, outs

    def run():
        np.add(x, 3.0, out=t)
        np.clip(t, 0.0, 6.0, out=t)
        np.multiply(t, 1.0 / 6.0, out=t)
        np.multiply(x, t, out=y)
    return run


@kernel(operands=2, scratch={"t": ("out", "same"), "outside": ("out", "bool")})
def hardswish_grad(ins, outs, *, t, outside):                 # dx = dy * (0 if x < -3, 1 if x > 3, else (2x + 3) / 6)
    """dx = dy times 0 below -3, 1 above 3, (2x + 3) / 6 between (from the input x).

    >>> def hardswish_of(v):
    ...     out = np.empty_like(v); hardswish([v], [out], t=np.empty_like(v))(); return out
    >>> x, h, dx = np.array([-4.0, -1.5, 0.5, 4.0]), 1e-6, np.empty(4)
    >>> hardswish_grad([np.ones(4), x], [dx], t=np.empty(4), outside=np.empty(4, bool))()
    >>> np.allclose(dx, (hardswish_of(x + h) - hardswish_of(x - h)) / (2 * h))   # central differences
    True
    """
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
    """log(softmax(x)) along ``axis``, stable for large inputs.

    >>> y = np.empty((1, 2)); log_softmax([np.array([[1000.0, 1000.0]])], [y], t=np.empty((1, 2)))()
    >>> y.round(6)
    array([[-0.693147, -0.693147]])
    """
    (x,), (y,) = ins, outs

    def run():
        np.subtract(x, x.max(axis=axis, keepdims=True), out=y)
        np.exp(y, out=t)
        np.subtract(y, np.log(t.sum(axis=axis, keepdims=True)), out=y)
    return run


@kernel(operands=2, scratch={"t": ("out", "same")})
def log_softmax_grad(ins, outs, axis=-1, *, t):      # dx = dy - exp(y) sum(dy)
    """dx = dy - exp(y) sum(dy) along ``axis``, from the output y.

    >>> y = np.log(np.array([[0.25, 0.75]])); dx = np.empty((1, 2))
    >>> log_softmax_grad([np.array([[1.0, 0.0]]), y], [dx], t=np.empty((1, 2)))(); dx   # dy picks class 0
    array([[ 0.75, -0.75]])
    """
    (dy, y), (dx,) = ins, outs

    def run():
        np.exp(y, out=t)
        np.multiply(t, dy.sum(axis=axis, keepdims=True), out=t)
        np.subtract(dy, t, out=dx)
    return run
