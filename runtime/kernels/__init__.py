"""All runtime kernels by name, one module per op family.

>>> "matmul" in KERNELS and "relu_grad" in KERNELS
True
"""
from . import activation, elementwise, linalg, loss, update

KERNELS = {}
for _family in (linalg, activation, elementwise, loss, update):
    KERNELS.update(_family.KERNELS)
