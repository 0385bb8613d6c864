"""Kernels for erf and its gradient.

NumPy has no erf. The kernel calls Python's ``math.erf`` on each element
(through ``np.frompyfunc``): accurate to float64's last bits (its relative
error is below 1e-15 against an arbitrary-precision erf), at the cost of one
Python call per element, fine for the graphs that use it (imported ONNX
models with an exact GELU), slow for large ones.

>>> import numpy as np
>>> x, y = np.array([0.0, 0.5, -2.0]), np.empty(3)
>>> _ = erf([x], [y])(); np.round(y, 8)
array([ 0.        ,  0.52049988, -0.99532227])
"""
from __future__ import annotations

import math

import numpy as np

from .base import kernel

_ERF = np.frompyfunc(math.erf, 1, 1)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@kernel(operands=1)
def erf(ins, outs):
    """The error function, elementwise, through ``math.erf`` (see the module docstring).

    >>> y = np.empty(2); erf([np.array([-30.0, 1.0])], [y])(); y.round(8)
    array([-1.        ,  0.84270079])
    """
    (x,), (y,) = ins, outs

    def run():
        np.copyto(y, _ERF(x), casting="unsafe")     # frompyfunc gives objects: back to floats
    return run


@kernel(operands=2)
def erf_grad(ins, outs):
    """dx = dy 2 / sqrt(pi) e^(-x^2), from the input x.

    >>> x, h, dx, f = np.array([-1.0, 0.0, 0.5]), 1e-6, np.empty(3), np.frompyfunc(math.erf, 1, 1)
    >>> erf_grad([np.ones(3), x], [dx])()
    >>> np.allclose(dx, (f(x + h) - f(x - h)).astype(float) / (2 * h))   # central differences
    True
    """
    (dy, x), (dx,) = ins, outs

    def run():
        np.multiply(x, x, out=dx)
        np.negative(dx, out=dx)
        np.exp(dx, out=dx)
        np.multiply(dx, _TWO_OVER_SQRT_PI, out=dx)
        np.multiply(dx, dy, out=dx)
    return run
