"""Batch normalization kernels: per-channel statistics, normalize, their gradients,
the running averages, and the folding of a normalization into a layer's weights.

Per-channel vectors are viewed with shape (1, C, 1, ...) so that one broadcast
expression covers every layout.

>>> import numpy as np
>>> x, m = np.arange(12.0).reshape(3, 4), np.empty(4)
>>> _ = batch_mean([x], [m], axis=1)(); m
array([4., 5., 6., 7.])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel


def _layout(x, axis):
    axis %= x.ndim
    shape = [1] * x.ndim
    shape[axis] = -1
    return axis, tuple(i for i in range(x.ndim) if i != axis), shape


@kernel(operands=1)
def batch_mean(ins, outs, axis=1):
    """Per-channel mean over every axis but ``axis`` (batch and space).

    >>> m = np.empty(2); _ = batch_mean([np.arange(16.0).reshape(2, 2, 2, 2)], [m], axis=1)(); m
    array([5.5, 9.5])
    """
    (x,), (mean,) = ins, outs
    axis, others, _shape = _layout(x, axis)
    return partial(np.mean, x, axis=others, out=mean)


@kernel(operands=1)
def batch_mean_grad(ins, outs, axis=1, shape=None):
    """Each channel's gradient spread evenly over the values it averaged.

    >>> dx = np.empty((2, 2)); _ = batch_mean_grad([np.array([4.0, 8.0])], [dx], axis=1)(); dx
    array([[2., 4.],
           [2., 4.]])
    """
    (dmean,), (dx,) = ins, outs
    axis, _others, layout = _layout(dx, axis)
    count = dx.size // dx.shape[axis]
    return partial(np.multiply, dmean.reshape(layout), 1.0 / count, out=dx)


@kernel(operands=2, scratch={"centred": (0, "same")})
def batch_var(ins, outs, axis=1, *, centred):
    """Per-channel variance (biased: divided by the count), given the mean.

    >>> x = np.array([[1.0, 0.0], [3.0, 0.0]]); v = np.empty(2)
    >>> batch_var([x, x.mean(0)], [v], axis=1, centred=np.empty((2, 2)))(); v
    array([1., 0.])
    """
    (x, mean), (var,) = ins, outs
    axis, others, shape = _layout(x, axis)
    m = mean.reshape(shape)

    def run():
        np.subtract(x, m, out=centred)
        np.multiply(centred, centred, out=centred)
        np.mean(centred, axis=others, out=var)
    return run


@kernel(operands=3, scratch={"centred": (1, "same")})
def batch_var_grad(ins, outs, axis=1, wrt=0, *, centred):
    """d var / d x = 2 (x - mean) dvar / M (``wrt=0``); d var / d mean =
    -2 sum(x - mean) dvar / M (``wrt=1``), zero at the true mean.

    >>> x, c = np.array([[1.0], [3.0]]), np.empty((2, 1)); d, dm = np.empty((2, 1)), np.empty(1)
    >>> batch_var_grad([np.ones(1), x, np.array([2.0])], [d], wrt=0, centred=c)(); d.ravel()
    array([-1.,  1.])
    >>> batch_var_grad([np.ones(1), x, np.array([1.0])], [dm], wrt=1, centred=c)(); dm   # -2 (0 + 2) / 2
    array([-2.])
    """
    (dvar, x, mean), (d,) = ins, outs
    axis, others, shape = _layout(x, axis)
    count = x.size // x.shape[axis]
    m, dv = mean.reshape(shape), dvar.reshape(shape)

    def run():
        np.subtract(x, m, out=centred)
        if wrt == 0:                                    # 2 (x - mean) dvar / M
            np.multiply(centred, dv, out=d)
            np.multiply(d, 2.0 / count, out=d)
        else:                                           # -2 sum(x - mean) dvar / M
            np.sum(centred, axis=others, out=d)
            np.multiply(d, dvar, out=d)
            np.multiply(d, -2.0 / count, out=d)
    return run


@kernel(operands=5, scratch={"scale": (1, "same"), "shift": (1, "same")})
def normalize(ins, outs, axis=1, eps=1e-3, *, scale, shift):
    """gamma (x - mean) / sqrt(var + eps) + beta, per channel (as one scale and shift).

    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]]); y = np.empty((2, 2))
    >>> normalize([x, x.mean(0), x.var(0), np.ones(2), np.array([0.0, 5.0])], [y], eps=0.0,
    ...           scale=np.empty(2), shift=np.empty(2))(); y
    array([[-1.,  4.],
           [ 1.,  6.]])
    """
    (x, mean, var, gamma, beta), (y,) = ins, outs
    axis, _others, shape = _layout(x, axis)
    s, t = scale.reshape(shape), shift.reshape(shape)

    def run():
        np.add(var, eps, out=scale)                     # scale = gamma / sqrt(var + eps)
        np.sqrt(scale, out=scale)
        np.divide(gamma, scale, out=scale)
        np.multiply(mean, scale, out=shift)             # shift = beta - mean scale
        np.subtract(beta, shift, out=shift)
        np.multiply(x, s, out=y)
        np.add(y, t, out=y)
    return run


@kernel(operands=5, scratch={"work": (1, "same"), "inv": (4, "same")})
def normalize_grad(ins, outs, axis=1, eps=1e-3, wrt=0, *, work, inv):
    """The gradient of normalize with respect to operand ``wrt``: x (0), mean
    (1), var (2), gamma (3) or beta (4), the mean and variance taken as inputs
    (their own gradients flow through batch_mean and batch_var).

    >>> x = np.array([[1.0], [3.0]]); dy = np.array([[1.0], [2.0]]); d = np.empty((2, 1)); g = np.empty(1)
    >>> args = [dy, x, np.array([2.0]), np.array([1.0]), np.array([3.0])]
    >>> work = dict(eps=0.0, work=np.empty((2, 1)), inv=np.empty(1))
    >>> normalize_grad(args, [d], wrt=0, **work)(); d.ravel()               # dy gamma / sqrt(var)
    array([3., 6.])
    >>> normalize_grad(args, [g], wrt=3, **work)(); g                        # sum(dy (x - mean) / sqrt(var))
    array([1.])
    >>> normalize_grad(args, [g], wrt=4, **work)(); g                        # sum(dy)
    array([3.])
    """
    (dy, x, mean, var, gamma), (d,) = ins, outs
    axis, others, shape = _layout(x, axis)
    m, g, i = mean.reshape(shape), gamma.reshape(shape), inv.reshape(shape)

    def run():
        np.add(var, eps, out=inv)                       # inv = 1 / sqrt(var + eps)
        np.sqrt(inv, out=inv)
        np.divide(1.0, inv, out=inv)
        if wrt == 0:                                    # dy gamma inv
            np.multiply(dy, g, out=d)
            np.multiply(d, i, out=d)
        elif wrt == 1:                                  # -sum(dy) gamma inv
            np.sum(dy, axis=others, out=d)
            np.multiply(d, gamma, out=d)
            np.multiply(d, inv, out=d)
            np.negative(d, out=d)
        elif wrt == 2:                                  # -1/2 sum(dy (x - mean)) gamma inv^3
            np.subtract(x, m, out=work)
            np.multiply(work, dy, out=work)
            np.sum(work, axis=others, out=d)
            np.multiply(d, gamma, out=d)
            np.multiply(d, inv ** 3, out=d)             # a per-channel vector: small
            np.multiply(d, -0.5, out=d)
        elif wrt == 3:                                  # sum(dy (x - mean) inv)
            np.subtract(x, m, out=work)
            np.multiply(work, i, out=work)
            np.multiply(work, dy, out=work)
            np.sum(work, axis=others, out=d)
        else:                                           # sum(dy)
            np.sum(dy, axis=others, out=d)
    return run


@kernel(operands=2)
def moving_average(ins, outs, momentum=0.99):
    """running = momentum running + (1 - momentum) value, in place (it writes its operand 0).

    >>> running = np.array([1.0, 0.0])
    >>> moving_average([running, np.array([3.0, 10.0])], [], momentum=0.75)(); running
    array([1.5, 2.5])
    """
    running, value = ins

    def run():
        np.multiply(running, momentum, out=running)
        np.add(running, (1.0 - momentum) * value, out=running)   # per-channel: small
    return run


@kernel(operands=2)
def bn_fold_scale(ins, outs, eps=1e-3):
    """gamma / sqrt(running_var + eps): batch norm at inference, folded into the
    layer before it as a per-channel scale of its weight.

    >>> scale = np.empty(2); bn_fold_scale([np.array([2.0, 1.0]), np.array([4.0, 0.25])], [scale], eps=0.0)()
    >>> scale
    array([1., 2.])
    """
    (gamma, running_var), (scale,) = ins, outs

    def run():
        np.add(running_var, eps, out=scale)
        np.sqrt(scale, out=scale)
        np.divide(gamma, scale, out=scale)
    return run


@kernel(operands=4)
def bn_fold_shift(ins, outs):
    """(b - running_mean) scale + beta: the folded layer's new bias. Then
    x W scale + shift is normalize(x W + b) with the running statistics:

    >>> x, W, b = np.array([[1.0, 2.0]]), np.array([[1.0], [1.0]]), np.array([0.5])
    >>> mean, var, gamma, beta = np.array([1.0]), np.array([4.0]), np.array([3.0]), np.array([0.1])
    >>> scale, shift = np.empty(1), np.empty(1)
    >>> bn_fold_scale([gamma, var], [scale], eps=0.0)(); bn_fold_shift([b, mean, scale, beta], [shift])()
    >>> float((x @ (W * scale) + shift)[0, 0]), float(((x @ W + b - mean) / 2.0 * 3.0 + 0.1)[0, 0])
    (3.85, 3.85)
    """
    (b, running_mean, scale, beta), (shift,) = ins, outs

    def run():
        np.subtract(b, running_mean, out=shift)
        np.multiply(shift, scale, out=shift)
        np.add(shift, beta, out=shift)
    return run
