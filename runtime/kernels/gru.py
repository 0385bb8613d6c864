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


def _example_step(features, units, batch):
    """For the examples: random GRU weights stacked (gs), x_t (N, 1, F), a previous
    state with random h, the cell as a function of (x, prev), its state s, an output
    gradient dy (N, U) and the step's gradient block d from it (source "last")."""
    rng = np.random.default_rng(0)
    F, U, N = features, units, batch
    W, R = rng.normal(size=(F, 3 * U)), rng.normal(size=(U, 3 * U))
    b, bh = rng.normal(size=3 * U), rng.normal(size=3 * U)
    gs = np.empty((F + 1 + U, 4 * U))
    gru_weights([W, b, bh, R], [gs])()
    x, prev = rng.normal(size=(N, 1, F)), np.zeros((5 * U, N))
    prev[4 * U:] = rng.normal(size=(U, N))

    def cell(x, prev):
        s = np.empty((5 * U, N))
        gru_cell([gs, x, prev], [s, np.empty((F + 1 + 2 * U, N))])()
        return s
    s, dy = cell(x, prev), rng.normal(size=(N, U))
    d = np.empty((5 * U, N))
    gru_cell_grad([dy, s, prev], [d, np.empty((2 * U, N))], source="last")()
    return gs, x, prev, cell, s, dy, d

@kernel(operands=None)
def gru_weights(ins, outs):
    """W, b, b_recurrent and U stacked into GS (K, 4U), columns [r, z, x's n, h's n]:
    x rows [Wr, Wz, Wn, 0] / 2 for the sigmoid gates, bias [br + bhr, bz + bhz, bn, bhn]
    (halved likewise), h rows [Ur, Uz, 0, Un].

    >>> W, b, bh, R = np.array([[2.0, 4, 6]]), np.ones(3), np.full(3, 3.0), np.array([[8.0, 10, 12]])
    >>> GS = np.empty((3, 4)); gru_weights([W, b, bh, R], [GS])(); GS
    array([[ 1.,  2.,  6.,  0.],
           [ 2.,  2.,  1.,  3.],
           [ 4.,  5.,  0., 12.]])
    """
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
    """The gradient of W (``part`` 0), b (1), b_recurrent (2) or U (3) from GS's:
    gru_weights' adjoint, <dGS, GS(W, b, bh, U)> = <dW, W> + <db, b> + <dbh, bh> + <dU, U>.

    >>> rng = np.random.default_rng(0); dGS = rng.normal(size=(3, 4))
    >>> params = [rng.normal(size=s) for s in ((1, 3), (3,), (3,), (1, 3))]
    >>> GS = np.empty((3, 4)); gru_weights(params, [GS])()
    >>> grads = [np.empty_like(a) for a in params]
    >>> for k, d in enumerate(grads): gru_weights_grad([dGS], [d], part=k, features=1)()
    >>> bool(np.isclose((dGS * GS).sum(), sum((d * a).sum() for d, a in zip(grads, params))))
    True
    """
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
    """One GRU step: the state (5U, N), rows [r, z, n, b', h], from GS, x's step
    ``step`` and the previous state; ``outs`` is the state and a scratch of
    (F + 1 + 2U, N) rows (U fewer without a previous state). Checked here against
    PyTorch's GRU formula in NumPy:

    >>> rng = np.random.default_rng(0); F, U, N = 2, 3, 4
    >>> W, R = rng.normal(size=(F, 3 * U)), rng.normal(size=(U, 3 * U))
    >>> b, bh = rng.normal(size=3 * U), rng.normal(size=3 * U)
    >>> gs = np.empty((F + 1 + U, 4 * U)); gru_weights([W, b, bh, R], [gs])()
    >>> x, prev = rng.normal(size=(N, 1, F)), np.zeros((5 * U, N)); prev[4 * U:] = rng.normal(size=(U, N))
    >>> def cell(x, prev):
    ...     s = np.empty((5 * U, N)); gru_cell([gs, x, prev], [s, np.empty((F + 1 + 2 * U, N))])()
    ...     return s
    >>> s, sig = cell(x, prev), lambda v: 1 / (1 + np.exp(-v))
    >>> a, c = x[:, 0] @ W + b, prev[4 * U:].T @ R + bh
    >>> r, z = sig(a[:, :U] + c[:, :U]), sig(a[:, U:2 * U] + c[:, U:2 * U])
    >>> n = np.tanh(a[:, 2 * U:] + r * c[:, 2 * U:])
    >>> np.allclose(s[4 * U:].T, (1 - z) * n + z * prev[4 * U:].T)
    True
    """
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
    gates' factor is 2 y (1 - y)), then h_prev's direct part z dh.

    With the output's gradient (``source="last"``), x_t's gradient that
    step_input_grad makes of the block matches central differences of gru_cell:

    >>> F, U, N = 2, 3, 4
    >>> gs, x, prev, cell, s, dy, d = _example_step(F, U, N)
    >>> from graphnn.runtime.kernels.recurrent import step_input_grad
    >>> dx = np.empty_like(x); step_input_grad([d, gs], [dx], features=F)()
    >>> loss = lambda x: (dy * cell(x, prev)[4 * U:].T).sum()
    >>> steps = np.eye(x.size).reshape(-1, *x.shape) * 1e-6
    >>> np.allclose(dx.ravel(), [(loss(x + e) - loss(x - e)) / 2e-6 for e in steps])
    True
    """
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
    """The previous state's gradient from a step's block: zero but the h rows,
    U' dz + h_prev's direct part. Against central differences of gru_cell in h_prev:

    >>> F, U, N = 2, 3, 4
    >>> gs, x, prev, cell, s, dy, d = _example_step(F, U, N)
    >>> ds = np.empty_like(prev); gru_state_grad([d, gs], [ds])()
    >>> loss = lambda prev: (dy * cell(x, prev)[4 * U:].T).sum()
    >>> steps = np.zeros((U * N, *prev.shape)); steps.reshape(U * N, -1)[:, 4 * U * N:] = np.eye(U * N) * 1e-6
    >>> np.allclose(ds[4 * U:].ravel(), [(loss(prev + e) - loss(prev - e)) / 2e-6 for e in steps])
    True
    >>> bool((ds[:4 * U] == 0).all())
    True
    """
    (delta, gs), (ds,) = ins, outs
    units = ds.shape[0] // 5
    recurrent = gs[gs.shape[0] - units:]

    def run():
        ds[:4 * units].fill(0.0)
        np.matmul(recurrent, delta[:4 * units], out=ds[4 * units:])
        np.add(ds[4 * units:], delta[4 * units:], out=ds[4 * units:])
    return run


register_outputs("gru", 5)
