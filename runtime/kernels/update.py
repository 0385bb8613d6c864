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

# Each update makes 5 to 16 passes over its parameter's arrays. On a large
# parameter every pass streams all of them from L3 or memory; cut into pieces
# of this many bytes per array, the passes over one piece stay in the core's
# L2 (Adam, 784 x 512 float32: 1.19 -> 0.94 ms). Small parameters are one piece.
CHUNK_BYTES = 256 * 1024


def _pieces(*arrays) -> list[tuple]:
    """The arrays (one shape, contiguous) cut into the same consecutive flat
    pieces of CHUNK_BYTES: [(piece of each array), ...]. Views, made once.

    >>> a, b = np.zeros(100_000, "float32"), np.ones(100_000, "float32")
    >>> [len(p[0]) for p in _pieces(a, b)]
    [65536, 34464]
    """
    if not all(a.flags.c_contiguous for a in arrays):
        return [arrays]                           # (arena views always are)
    flat = [a.reshape(-1) for a in arrays]
    n, step = flat[0].size, max(1, CHUNK_BYTES // flat[0].itemsize)
    return [tuple(f[i:i + step] for f in flat) for i in range(0, n, step)] or [tuple(flat)]


@kernel(operands=None, scratch={"step": (0, "same")}, flat=True)
def sgd_update(ins, outs, momentum=0.0, nesterov=False, weight_decay=0.0, *, step):
    """p -= lr g; with ``momentum`` mu and a velocity v (the fourth operand),
    v = mu v + g, p -= lr v (``nesterov``: p -= lr (g + mu v)); ``weight_decay``
    adds wd p to g first.

    >>> p, g, lr, v = np.ones(2), np.full(2, 0.5), np.array(0.1), np.zeros(2)
    >>> run = sgd_update([p, g, lr, v], [p], momentum=0.9, step=np.empty(2))
    >>> run(); p                            # v = 0.5, p = 1 - 0.1 * 0.5
    array([0.95, 0.95])
    >>> run(); v, p                         # v = 0.9 * 0.5 + 0.5, p = 0.95 - 0.1 * 0.95
    (array([0.95, 0.95]), array([0.855, 0.855]))
    """
    p, g, lr = ins[:3]
    v = ins[3] if len(ins) > 3 else None
    pieces = _pieces(p, g, step, *([] if v is None else [v]))

    def piece(p, g, step, v=None):
        if weight_decay:                           # g + wd p, in the scratch buffer
            np.multiply(p, weight_decay, out=step)
            np.add(step, g, out=step)
            g = step
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

    def run():
        for arrays in pieces:
            piece(*arrays)
    return run


@kernel(operands=6, scratch={"s": (0, "same")})
def adam_update(ins, outs, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, *, s):
    """Adam (AdamW with ``weight_decay``): operands p, g, lr, m, v and the step
    count t, a 0-d array it increments. The first step moves p by about lr
    against the sign of g (m_hat = g, v_hat = g^2):

    >>> p, g, lr = np.ones(2), np.array([0.5, -2.0]), np.array(0.1)
    >>> m, v, t = np.zeros(2), np.zeros(2), np.zeros(())
    >>> adam_update([p, g, lr, m, v, t], [p], s=np.empty(2))()
    >>> p.round(6), float(t)
    (array([0.9, 1.1]), 1.0)
    """
    p, g, lr, m, v, t = ins
    pieces = _pieces(p, g, m, v, s)

    def piece(p, g, m, v, s, decay, scale, rate):
        if weight_decay:                           # AdamW: decoupled decay first
            np.multiply(p, decay, out=p)
        np.subtract(g, m, out=s)                   # m = b1 m + (1 - b1) g, as m + (1 - b1)(g - m)
        np.multiply(s, 1.0 - beta1, out=s)
        np.add(m, s, out=m)
        np.multiply(v, beta2, out=v)               # v = b2 v + (1 - b2) g^2
        np.multiply(g, g, out=s)
        np.multiply(s, 1.0 - beta2, out=s)
        np.add(v, s, out=v)
        np.sqrt(v, out=s)                          # sqrt(v_hat) + eps
        np.multiply(s, scale, out=s)
        np.add(s, eps, out=s)
        np.divide(m, s, out=s)                     # p -= lr m_hat / (...)
        np.multiply(s, rate, out=s)
        np.subtract(p, s, out=p)

    def run():
        t[...] += 1.0
        c1, c2 = 1.0 - beta1 ** t.item(), 1.0 - beta2 ** t.item()
        # Python floats: no float64 promotion of float32 arrays
        decay, scale, rate = 1.0 - lr.item() * weight_decay, 1.0 / sqrt(c2), lr.item() / c1
        for arrays in pieces:
            piece(*arrays, decay, scale, rate)
    return run


@kernel(operands=None, scratch={"s": (0, "same")}, flat=True)
def rmsprop_update(ins, outs, rho=0.9, eps=1e-8, momentum=0.0, centered=False, *, s):
    """RMSprop: v = rho v + (1 - rho) g^2, p -= lr g / (sqrt(v) + eps); ``centered``
    takes a running mean a of g (operand 5) and divides by sqrt(v - a^2);
    ``momentum`` keeps a buffer (the last operand).

    >>> p, g, lr, v = np.ones(2), np.array([0.5, -2.0]), np.array(0.1), np.zeros(2)
    >>> rmsprop_update([p, g, lr, v], [p], s=np.empty(2))()
    >>> np.allclose(p, 1 - 0.1 * g / (np.sqrt(0.1 * g ** 2) + 1e-8)), p.round(4)
    (True, array([0.6838, 1.3162]))
    """
    p, g, lr, v = ins[:4]
    a = ins[4] if centered else None               # running mean of the gradients
    b = ins[-1] if momentum else None              # momentum buffer
    pieces = _pieces(p, g, v, s, *[x for x in (a, b) if x is not None])

    def piece(p, g, v, s, *more):
        a, b = (more[0] if centered else None), (more[-1] if momentum else None)
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

    def run():
        for arrays in pieces:
            piece(*arrays)
    return run


@kernel(operands=4, scratch={"s": (0, "same")}, flat=True)
def adagrad_update(ins, outs, eps=1e-8, *, s):
    """Adagrad: acc += g^2, p -= lr g / (sqrt(acc) + eps).

    >>> p, g, lr, acc = np.ones(2), np.array([0.5, -2.0]), np.array(0.1), np.zeros(2)
    >>> run = adagrad_update([p, g, lr, acc], [p], s=np.empty(2))
    >>> run(); p.round(6), acc              # the first step: lr against g's sign
    (array([0.9, 1.1]), array([0.25, 4.  ]))
    >>> run(); p.round(6)                   # then lr g / sqrt(2 g^2) = lr / sqrt(2)
    array([0.829289, 1.170711])
    """
    p, g, lr, acc = ins
    pieces = _pieces(p, g, acc, s)

    def piece(p, g, acc, s, rate):
        np.multiply(g, g, out=s)                   # acc += g^2
        np.add(acc, s, out=acc)
        np.sqrt(acc, out=s)                        # p -= lr g / (sqrt(acc) + eps)
        np.add(s, eps, out=s)
        np.divide(g, s, out=s)
        np.multiply(s, rate, out=s)
        np.subtract(p, s, out=p)

    def run():
        for arrays in pieces:
            piece(*arrays, lr.item())
    return run


@kernel(operands=5, scratch={"s": (0, "same"), "d": (0, "same")}, flat=True)
def adadelta_update(ins, outs, rho=0.9, eps=1e-6, *, s, d):
    """Adadelta: E[g^2] = rho E[g^2] + (1 - rho) g^2, d = sqrt(E[dx^2] + eps) /
    sqrt(E[g^2] + eps) g, E[dx^2] = rho E[dx^2] + (1 - rho) d^2, p -= lr d.

    >>> p, g, lr = np.ones(2), np.array([0.5, -2.0]), np.array(1.0)
    >>> eg2, edx2 = np.zeros(2), np.zeros(2)
    >>> adadelta_update([p, g, lr, eg2, edx2], [p], s=np.empty(2), d=np.empty(2))()
    >>> d = np.sqrt(1e-6) / np.sqrt(0.1 * g ** 2 + 1e-6) * g
    >>> np.allclose(p, 1 - d), np.allclose(edx2, 0.1 * d ** 2)
    (True, True)
    """
    p, g, lr, eg2, edx2 = ins
    pieces = _pieces(p, g, eg2, edx2, s, d)

    def piece(p, g, eg2, edx2, s, d, rate):
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
        np.multiply(d, rate, out=d)                # p -= lr d
        np.subtract(p, d, out=p)

    def run():
        for arrays in pieces:
            piece(*arrays, lr.item())
    return run


@kernel(operands=None)
def clip_scale(ins, outs, max_norm):
    """The factor that scales the gradients to a global norm of at most
    ``max_norm``: min(1, max_norm / (norm + 1e-6)).

    >>> grads, scale = [np.array([3.0]), np.array([[4.0]])], np.empty(())
    >>> clip_scale(grads, [scale], max_norm=1.0)(); round(float(scale), 6)    # norm 5
    0.2
    >>> clip_scale(grads, [scale], max_norm=10.0)(); float(scale)
    1.0
    """
    (out,) = outs
    flat = [g.reshape(-1) for g in ins]

    def run():
        norm = sqrt(sum(float(np.dot(g, g)) for g in flat))
        out[...] = min(1.0, max_norm / (norm + 1e-6))
    return run

