"""Optimizer update kernels: they write the parameter and its slots in place.

Operands arrive in the op's port order (param, grad, lr, slots...); ``outs``
holds the buffers written in place; the planned scratch buffers shaped like the
parameter that each kernel declares arrive by name. The learning rate is a 0-d array read at every call, so a
schedule can change it without recompiling.

>>> import numpy as np
>>> p, g, lr = np.ones(2), np.full(2, 0.5), np.array(0.1)
>>> sgd_update([p, g, lr], [p], step=np.empty(2))(); p
array([0.95, 0.95])
"""
from __future__ import annotations

from math import sqrt

import numpy as np

from .base import kernel


@kernel(operands=None, scratch={"step": (0, "same")})
def sgd_update(ins, outs, momentum=0.0, nesterov=False, weight_decay=0.0, *, step):
    p, g, lr = ins[:3]
    v = ins[3] if len(ins) > 3 else None
    if weight_decay:                               # g + wd p, in the scratch buffer
        raw = g
        g = step

    def run():
        if weight_decay:
            np.multiply(p, weight_decay, out=g)
            np.add(g, raw, out=g)
        if v is None:
            np.multiply(g, lr, out=step)
        else:
            np.multiply(v, momentum, out=v)        # v = mu v + g
            np.add(v, g, out=v)
            if nesterov:                           # p -= lr g, then p -= lr mu v
                # g may live in ``step`` (weight decay): scale it there before
                # reusing the buffer for the momentum term, never overwrite it.
                np.multiply(g, lr, out=step)
                np.subtract(p, step, out=p)
                np.multiply(v, momentum * lr.item(), out=step)
            else:
                np.multiply(v, lr, out=step)
        np.subtract(p, step, out=p)
    return run


@kernel(operands=6, scratch={"s": (0, "same")})
def adam_update(ins, outs, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, *, s):
    p, g, lr, m, v, t = ins

    def run():
        if weight_decay:                           # AdamW: decoupled decay first
            np.multiply(p, 1.0 - lr.item() * weight_decay, out=p)
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


@kernel(operands=None, scratch={"s": (0, "same")})
def rmsprop_update(ins, outs, rho=0.9, eps=1e-8, momentum=0.0, centered=False, *, s):
    p, g, lr, v = ins[:4]
    a = ins[4] if centered else None               # running mean of the gradients
    b = ins[-1] if momentum else None              # momentum buffer

    def run():
        np.multiply(v, rho, out=v)                 # v = rho v + (1 - rho) g^2
        np.multiply(g, g, out=s)
        np.multiply(s, 1.0 - rho, out=s)
        np.add(v, s, out=v)
        if a is None:
            np.sqrt(v, out=s)
        else:                                      # sqrt(v - a^2), a = rho a + (1 - rho) g
            np.multiply(a, rho, out=a)
            np.multiply(g, 1.0 - rho, out=s)
            np.add(a, s, out=a)
            np.multiply(a, a, out=s)
            np.subtract(v, s, out=s)
            np.sqrt(s, out=s)
        np.add(s, eps, out=s)                      # g / (sqrt(...) + eps)
        np.divide(g, s, out=s)
        if b is not None:                          # b = mu b + g / (...); the step is lr b
            np.multiply(b, momentum, out=b)
            np.add(b, s, out=b)
            np.multiply(b, lr.item(), out=s)
        else:
            np.multiply(s, lr.item(), out=s)
        np.subtract(p, s, out=p)
    return run


@kernel(operands=4, scratch={"s": (0, "same")})
def adagrad_update(ins, outs, eps=1e-8, *, s):
    p, g, lr, acc = ins

    def run():
        np.multiply(g, g, out=s)                   # acc += g^2
        np.add(acc, s, out=acc)
        np.sqrt(acc, out=s)                        # p -= lr g / (sqrt(acc) + eps)
        np.add(s, eps, out=s)
        np.divide(g, s, out=s)
        np.multiply(s, lr.item(), out=s)
        np.subtract(p, s, out=p)
    return run


@kernel(operands=5, scratch={"s": (0, "same"), "d": (0, "same")})
def adadelta_update(ins, outs, rho=0.9, eps=1e-6, *, s, d):
    p, g, lr, eg2, edx2 = ins

    def run():
        np.multiply(eg2, rho, out=eg2)             # E[g^2] = rho E[g^2] + (1 - rho) g^2
        np.multiply(g, g, out=s)
        np.multiply(s, 1.0 - rho, out=s)
        np.add(eg2, s, out=eg2)
        np.add(edx2, eps, out=d)                   # d = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) g
        np.sqrt(d, out=d)
        np.add(eg2, eps, out=s)
        np.sqrt(s, out=s)
        np.divide(d, s, out=d)
        np.multiply(d, g, out=d)
        np.multiply(edx2, rho, out=edx2)           # E[dx^2] = rho E[dx^2] + (1 - rho) d^2
        np.multiply(d, d, out=s)
        np.multiply(s, 1.0 - rho, out=s)
        np.add(edx2, s, out=edx2)
        np.multiply(d, lr.item(), out=d)           # p -= lr d
        np.subtract(p, d, out=p)
    return run


@kernel(operands=None)
def clip_scale(ins, outs, max_norm):
    (out,) = outs
    flat = [g.reshape(-1) for g in ins]

    def run():
        norm = sqrt(sum(float(np.dot(g, g)) for g in flat))
        out[...] = min(1.0, max_norm / (norm + 1e-6))
    return run

