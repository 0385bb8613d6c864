"""The op table: every op the compiler knows, one record each.

>>> OPS["relu"].kind, OPS["relu"].fusion
('compute', 'elementwise')
"""
from . import (  # noqa: F401  # noqa: F401,E402
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
    source,
    special,
    update,
    window,
)
from .base import OPS, Attr, OpDef, concrete, fmt_shape, kernel_problems, numel, register, with_role  # noqa: F401

if kernel_problems():           # a record and its kernel disagree: fail on import, not on bind
    raise ImportError("op table and runtime kernels disagree:\n  " + "\n  ".join(kernel_problems()))
