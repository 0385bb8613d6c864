"""Kernels of the GRU cell ops (compiler/ops/gru.py): the LSTM's layout
(runtime/kernels/recurrent.py), a state (5U, N) with rows [r, z, n, b', h], where
b' = h_prev Un + bhn is kept because r multiplies it alone.

>>> import numpy as np
>>> W, b, bh = np.full((1, 3), 2.0), np.ones(3), np.full(3, 3.0)
>>> GS = np.empty((2, 4)); gru_weights([W, b, bh], [GS])(); GS
array([[1., 1., 2., 0.],
       [2., 2., 1., 3.]])
"""
from __future__ import annotations

import numpy as np

from .base import kernel
from .recurrent import _inputs, register_outputs


@kernel(operands=None)
def gru_weights(ins, outs):
    (gs,) = outs
    w, b, bh = ins[:3]
    features, u = w.shape[0], w.shape[1] // 3
    x_rows, bias, h_rows = gs[:features], gs[features], gs[features + 1:]
    recurrent = ins[3] if len(ins) == 4 else None

    def run():
        np.multiply(w[:, :2 * u], 0.5, out=x_rows[:, :2 * u])
        np.copyto(x_rows[:, 2 * u:3 * u], w[:, 2 * u:])
        x_rows[:, 3 * u:].fill(0.0)
        np.add(b[:2 * u], bh[:2 * u], out=bias[:2 * u])
        np.multiply(bias[:2 * u], 0.5, out=bias[:2 * u])
        np.copyto(bias[2 * u:3 * u], b[2 * u:])
        np.copyto(bias[3 * u:], bh[2 * u:])
        if recurrent is not None:
            np.multiply(recurrent[:, :2 * u], 0.5, out=h_rows[:, :2 * u])
            h_rows[:, 2 * u:3 * u].fill(0.0)
            np.copyto(h_rows[:, 3 * u:], recurrent[:, 2 * u:])
    return run


@kernel(operands=1)
def gru_weights_grad(ins, outs, part=0, features=1):
    (dgs,), (d,) = ins, outs
    u = dgs.shape[1] // 4
    rows = (dgs[:features], dgs[features], dgs[features], dgs[features + 1:])[part]
    n_column = slice(3 * u, 4 * u) if part in (2, 3) else slice(2 * u, 3 * u)   # h's n, or x's

    def run():
        np.multiply(rows[..., :2 * u], 0.5, out=d[..., :2 * u])
        np.copyto(d[..., 2 * u:], rows[..., n_column])
    return run


@kernel(operands=None)
def gru_cell(ins, outs, step=0):
    gs, x, prev = ins[0], ins[1], (ins[2] if len(ins) == 3 else None)
    s, scratch = outs
    units = gs.shape[1] // 4
    stack, t = scratch[:-units], scratch[-units:]
    weights = gs[:len(stack)].T
    r, z, n, b, h = (s[k * units:(k + 1) * units] for k in range(5))
    rz = s[:2 * units]
    h_prev = None if prev is None else prev[4 * units:]

    def run():
        _inputs(stack, x, step, prev, units)
        np.matmul(weights, stack, out=s[:4 * units])     # r', z', x's n part, b'
        np.tanh(rz, out=rz)
        np.multiply(rz, 0.5, out=rz)
        np.add(rz, 0.5, out=rz)
        np.multiply(r, b, out=t)
        np.add(n, t, out=n)
        np.tanh(n, out=n)
        if h_prev is None:                               # h' = n - z n
            np.multiply(z, n, out=t)
            np.subtract(n, t, out=h)
        else:                                            # h' = n + z (h - n)
            np.subtract(h_prev, n, out=t)
            np.multiply(t, z, out=t)
            np.add(n, t, out=h)
    return run


def _incoming(ins, source, units, dh):
    """(state, previous state or None, dh, a pre-step or None, the state's whole
    gradient or None) for each source of a GRU step's gradient."""
    if source == "next":
        delta, gs, s, prev = ins[0], ins[1], ins[2], (ins[3] if len(ins) == 4 else None)
        recurrent = gs[gs.shape[0] - units:]

        def pre():
            np.matmul(recurrent, delta[:4 * units], out=dh)
            np.add(dh, delta[4 * units:], out=dh)
        return s, prev, dh, pre, None
    s, prev = ins[1], (ins[2] if len(ins) == 3 else None)
    if source == "last":
        return s, prev, ins[0].T, None, None
    return s, prev, ins[0][4 * units:], None, ins[0]


@kernel(operands=None)
def gru_cell_grad(ins, outs, fast=False, source="state"):
    """The gradients of the scaled pre-activations [r', z', a, b'] (the sigmoid
    gates' factor is 2 y (1 - y)), then h_prev's direct part z dh."""
    d, scratch = outs
    units = ins[2 if source == "next" else 1].shape[0] // 5
    dh_own, t, wide = scratch[:units], scratch[units:2 * units], scratch[:2 * units]
    s, prev, dh, pre, ds = _incoming(ins, source, units, dh_own)
    direct = ds if (ds is not None and not fast) else None
    r, z, n, b = (s[k * units:(k + 1) * units] for k in range(4))
    dr, dz, da, db = (d[k * units:(k + 1) * units] for k in range(4))
    h_prev = None if prev is None else prev[4 * units:]

    def run():
        if pre is not None:
            pre()
        np.subtract(1.0, z, out=t)
        np.multiply(dh, t, out=da)                   # dn
        if h_prev is None:                           # dz = dh (h_prev - n), h_prev = 0
            np.multiply(dh, n, out=dz)
            np.negative(dz, out=dz)
        else:
            np.subtract(h_prev, n, out=t)
            np.multiply(dh, t, out=dz)
            np.multiply(dh, z, out=d[4 * units:])    # h_prev's direct part
        if direct is not None:
            np.add(da, direct[2 * units:3 * units], out=da)
            np.add(dz, direct[units:2 * units], out=dz)
        np.multiply(n, n, out=t)
        np.subtract(1.0, t, out=t)
        np.multiply(da, t, out=da)                   # through tanh: the gradient of a
        np.multiply(da, r, out=db)
        np.multiply(da, b, out=dr)
        if direct is not None:
            np.add(db, direct[3 * units:4 * units], out=db)
            np.add(dr, direct[:units], out=dr)
        y, dy = s[:2 * units], d[:2 * units]         # the sigmoid gates: times 2 y (1 - y)
        np.subtract(1.0, y, out=wide)
        np.multiply(wide, y, out=wide)
        np.multiply(dy, wide, out=dy)
        np.add(dy, dy, out=dy)
    return run


@kernel(operands=2)
def gru_state_grad(ins, outs):
    (delta, gs), (ds,) = ins, outs
    units = ds.shape[0] // 5
    recurrent = gs[gs.shape[0] - units:]

    def run():
        ds[:4 * units].fill(0.0)
        np.matmul(recurrent, delta[:4 * units], out=ds[4 * units:])
        np.add(ds[4 * units:], delta[4 * units:], out=ds[4 * units:])
    return run


register_outputs("gru", 5)
