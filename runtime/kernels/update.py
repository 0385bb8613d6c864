"""Optimizer update kernels: they write the parameter and its slots in place.

Operands arrive in the op's port order (param, grad, lr, slots...); ``outs``
holds the buffers written in place, then one planned scratch buffer shaped like
the parameter. The learning rate is a 0-d array read at every call, so a
schedule can change it without recompiling.

>>> from math import sqrt

import numpy as np
>>> p, g, lr = np.ones(2), np.full(2, 0.5), np.array(0.1)
>>> sgd_update([p, g, lr], [p, np.empty(2)])(); p
array([0.95, 0.95])
"""
from __future__ import annotations

from math import sqrt

import numpy as np


def sgd_update(ins, outs, momentum=0.0, nesterov=False):
    p, g, lr = ins[:3]
    v = ins[3] if len(ins) > 3 else None
    step = outs[-1]

    def run():
        if v is None:
            np.multiply(g, lr, out=step)
        else:
            np.multiply(v, momentum, out=v)        # v = mu v + g
            np.add(v, g, out=v)
            if nesterov:                           # step = lr (g + mu v)
                np.multiply(v, momentum, out=step)
                np.add(step, g, out=step)
                np.multiply(step, lr, out=step)
            else:
                np.multiply(v, lr, out=step)
        np.subtract(p, step, out=p)
    return run


def adam_update(ins, outs, beta1=0.9, beta2=0.999, eps=1e-8):
    p, g, lr, m, v, t = ins
    s = outs[-1]

    def run():
        t[...] += 1.0
        c1, c2 = 1.0 - beta1 ** t.item(), 1.0 - beta2 ** t.item()
        np.multiply(m, beta1, out=m)               # m = b1 m + (1 - b1) g
        np.multiply(g, 1.0 - beta1, out=s)
        np.add(m, s, out=m)
        np.multiply(v, beta2, out=v)               # v = b2 v + (1 - b2) g^2
        np.multiply(g, g, out=s)
        np.multiply(s, 1.0 - beta2, out=s)
        np.add(v, s, out=v)
        np.sqrt(v, out=s)                          # sqrt(v_hat) + eps
        np.multiply(s, 1.0 / sqrt(c2), out=s)     # Python floats: no float64 promotion
        np.add(s, eps, out=s)
        np.divide(m, s, out=s)                     # p -= lr m_hat / (...)
        np.multiply(s, lr.item() / c1, out=s)
        np.subtract(p, s, out=p)
    return run


KERNELS = {"sgd_update": sgd_update, "adam_update": adam_update}
