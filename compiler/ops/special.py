"""Special functions: erf (the error function), from which the exact GELU,
0.5 x (1 + erf(x / sqrt 2)), is built (ONNX Gelu with approximate='none').

>>> from graphnn.compiler.ops import OPS
>>> OPS["erf"].infer([(None, 3)], ["float64"], {})
((None, 3), 'float64')
"""
from __future__ import annotations

from .base import OpDef, elementwise_flops, like_input, register

register(OpDef("erf", 1, like_input(0), fusion="elementwise",
               vjp=lambda ctx, ins, out, dy, a: [ctx.emit("erf_grad", [dy, ins[0]])],
               flops=elementwise_flops(20),
               doc="The error function, 2/sqrt(pi) times the integral of exp(-t^2) from 0 to x "
                   "(Python's math.erf per element: correctly rounded in float64, but slow)."))
register(OpDef("erf_grad", 2, like_input(0), fusion="elementwise", kind="gradient",
               flops=elementwise_flops(4), doc="dy times erf'(x) = 2/sqrt(pi) exp(-x^2)."))
