"""All runtime kernels by name, one module per op family.

>>> "matmul" in KERNELS and "relu_grad" in KERNELS
True
"""
from . import activation, collective, conv, elementwise, fused, linalg, loss, norm, shape, update

KERNELS = {}
for _family in (linalg, activation, elementwise, shape, conv, norm, loss, update, fused, collective):
    KERNELS.update(_family.KERNELS)
