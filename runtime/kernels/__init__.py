"""All runtime kernels by name, one module per op family; each kernel declares
what it needs (``base.kernel``) and is in the table from its declaration on.

>>> "matmul" in KERNELS and "relu_grad" in KERNELS
True
>>> KERNELS["relu_grad"].operands, list(KERNELS["relu_grad"].scratch)
(2, ['mask'])
"""
from . import (  # noqa: F401
    activation,
    collective,
    conv,
    elementwise,
    fused,
    gru,
    linalg,
    loss,
    lstm_scan,
    norm,
    pool,
    recurrent,
    reduce,
    select,
    shape,
    special,
    update,
)
from .base import KERNELS, bind  # noqa: F401
