"""The op table: every op the compiler knows, one record each.

>>> OPS["relu"].kind, OPS["relu"].fusion
('compute', 'elementwise')
"""
from .base import OPS, Attr, OpDef, concrete, fmt_shape, kernel_problems, numel, register, with_role  # noqa: F401
from . import source, linalg, activation, elementwise, shape, loss, update, window, conv, pool, norm, reduce, fused  # noqa: F401,E402
from . import collective, recurrent, gru, select, special  # noqa: F401,E402

if kernel_problems():           # a record and its kernel disagree: fail on import, not on bind
    raise ImportError("op table and runtime kernels disagree:\n  " + "\n  ".join(kernel_problems()))
