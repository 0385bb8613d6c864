"""The fused kernel: bind the anchor's kernel to the result buffer, then each
epilogue kernel to that same buffer (in place), and run them back to back.

``outs`` is [result, scratch of the anchor..., scratch of each epilogue op...],
each part's in the order its own kernel declares them.

>>> import numpy as np
>>> x, w, y = np.ones((2, 3)), np.ones((3, 2)), np.empty((2, 2))
>>> run = fused([x, w, np.array([-5.0, 1.0])], [y],
...             anchor={"kernel": "matmul", "attrs": {}},
...             epilogue=[{"kernel": "bias_add", "attrs": {}, "extra": 1},
...                       {"kernel": "relu", "attrs": {}, "extra": 0}])
>>> run(); y[0]
array([0., 4.])
"""
from __future__ import annotations

from .base import KERNELS, bind, kernel


@kernel(operands=None)
def fused(ins, outs, anchor, epilogue):
    """The anchor kernel on its operands (the first ones), then each epilogue
    kernel on the result and its ``extra`` operands, in place.

    >>> import numpy as np
    >>> x, w, b = np.array([[1.0, -2.0]]), np.eye(2), np.array([0.5, 0.5])
    >>> y = np.empty((1, 2)); fused([x, w, b], [y], anchor={"kernel": "matmul", "attrs": {}},
    ...                             epilogue=[{"kernel": "bias_add", "attrs": {}, "extra": 1},
    ...                                       {"kernel": "relu", "attrs": {}, "extra": 0}])()
    >>> y, np.maximum(x @ w + b, 0)         # relu(x @ w + b)
    (array([[1.5, 0. ]]), array([[1.5, 0. ]]))
    """
    out, scratch = outs[0], list(outs[1:])
    n = len(ins) - sum(p["extra"] for p in epilogue)

    def part(spec, operands):
        factory = KERNELS[spec["kernel"]]
        k = len(factory.scratch)
        taken = scratch[:k]
        del scratch[:k]
        return bind(factory, operands, [out, *taken], spec["attrs"])

    calls = [part(anchor, list(ins[:n]))]
    for spec in epilogue:
        calls.append(part(spec, [out, *ins[n:n + spec["extra"]]]))
        n += spec["extra"]

    def run():
        for call in calls:
            call()
    return run
