"""The fused kernel: bind the anchor's kernel to the result buffer, then each
epilogue kernel to that same buffer (in place), and run them back to back.

``outs`` is [result, scratch of the anchor..., scratch of each epilogue op...];
each part's attributes say how many scratch buffers it takes.

>>> import numpy as np
>>> x, w, y = np.ones((2, 3)), np.ones((3, 2)), np.empty((2, 2))
>>> run = fused([x, w, np.array([-5.0, 1.0])], [y],
...             anchor={"kernel": "matmul", "attrs": {}, "scratch": 0},
...             epilogue=[{"kernel": "bias_add", "attrs": {}, "extra": 1, "scratch": 0},
...                       {"kernel": "relu", "attrs": {}, "extra": 0, "scratch": 0}])
>>> run(); y[0]
array([0., 4.])
"""
from __future__ import annotations


def fused(ins, outs, anchor, epilogue):
    from . import KERNELS          # the table holds this kernel too
    out, scratch = outs[0], list(outs[1:])
    n = len(ins) - sum(p["extra"] for p in epilogue)

    def take(k):
        taken = scratch[:k]
        del scratch[:k]
        return taken

    calls = [KERNELS[anchor["kernel"]](list(ins[:n]), [out, *take(anchor["scratch"])], **anchor["attrs"])]
    for part in epilogue:
        extra = list(ins[n:n + part["extra"]])
        n += part["extra"]
        calls.append(KERNELS[part["kernel"]]([out, *extra], [out, *take(part["scratch"])],
                                             **part["attrs"]))
    def run():
        for call in calls:
            call()
    return run


KERNELS = {"fused": fused}
