"""Kernels of the LSTM cell ops (compiler/ops/recurrent.py).

A state is feature-major, (7U, N): rows [i, f, o, g, c, tanh c, h], each a
contiguous (U, N) block, so each elementwise pass below is one NumPy call over
contiguous memory (a gate column block of a batch-major (N, 4U) array is strided,
and NumPy runs those about twice as slowly). The stacked weights WS (K, 4U) are
[W; b; U] with the gates' columns reordered from PyTorch's i, f, g, o to i, f, o, g
(the three sigmoid gates side by side) and the sigmoid gates' columns halved:
z' = WS^T [x_t; 1; h] is z / 2 for those gates, so one tanh over all four gates
gives sigmoid(z) = (1 + tanh(z/2)) / 2 and tanh(g). Scratch buffers come after the
result in ``outs`` (shapes from the op records' scratch rules).

>>> import numpy as np
>>> W, b = np.array([[1.0, 2.0, 3.0, 4.0]]), np.zeros(4)
>>> WS = np.empty((2, 4)); lstm_weights([W, b], [WS])(); WS[0]
array([0.5, 1. , 2. , 3. ])
"""
from __future__ import annotations

import numpy as np

from .base import kernel


def _rows(a, units, *blocks):
    return [a[k * units:(k + 1) * units] for k in blocks]


def _reorder(gates, to_stacked: bool):
    """[(source columns, destination columns, factor)] moving PyTorch's gate
    columns i, f, g, o into the stacked order i, f, o, g (sigmoid gates halved),
    or back (``to_stacked=False``: the gradient's factors are the same)."""
    u = gates // 4
    moves = [(slice(0, 2 * u), slice(0, 2 * u), 0.5), (slice(3 * u, 4 * u), slice(2 * u, 3 * u), 0.5),
             (slice(2 * u, 3 * u), slice(3 * u, 4 * u), 1.0)]
    return moves if to_stacked else [(dst, src, k) for src, dst, k in moves]


@kernel(operands=None)
def lstm_weights(ins, outs):
    (ws,) = outs
    features = ins[0].shape[0]
    parts = [(ins[0], ws[:features]), (ins[1], ws[features])]
    if len(ins) == 3:
        parts.append((ins[2], ws[features + 1:]))
    moves = [(src[..., a], dst[..., b], k) for src, dst in parts for a, b, k in _reorder(ws.shape[1], True)]

    def run():
        for src, dst, k in moves:
            np.multiply(src, k, out=dst)
    return run


@kernel(operands=1)
def lstm_weights_grad(ins, outs, part=0, features=1):
    (dws,), (d,) = ins, outs
    src = (dws[:features], dws[features], dws[features + 1:])[part]
    moves = [(src[..., a], d[..., b], k) for a, b, k in _reorder(dws.shape[1], False)]

    def run():
        for a, b, k in moves:
            np.multiply(a, k, out=b)
    return run


def _inputs(stack, x, step, prev, units):
    """Fill ``stack`` with [x_t^T; 1; h_prev] (the rows it has)."""
    features = x.shape[2]
    np.copyto(stack[:features], x[:, step, :].T)
    stack[features].fill(1.0)
    if prev is not None:
        np.copyto(stack[features + 1:], prev[len(prev) - units:])    # h: a state's last rows


def _activate(s, units):
    """tanh over the four gates' rows, then (1 + t) / 2 on the sigmoid gates'."""
    z, v = s[:4 * units], s[:3 * units]
    np.tanh(z, out=z)
    np.multiply(v, 0.5, out=v)
    np.add(v, 0.5, out=v)


@kernel(operands=None)
def lstm_cell(ins, outs, step=0):
    ws, x, prev = ins[0], ins[1], (ins[2] if len(ins) == 3 else None)
    s, scratch = outs
    units = ws.shape[1] // 4
    stack, t = scratch[:-units], scratch[-units:]
    weights = ws[:len(stack)].T            # (4U, K): the rows this step's inputs use
    i, f, o, g, c, tc, h = _rows(s, units, *range(7))
    c_prev = None if prev is None else prev[4 * units:5 * units]

    def run():
        _inputs(stack, x, step, prev, units)
        np.matmul(weights, stack, out=s[:4 * units])
        _activate(s, units)
        if c_prev is None:
            np.multiply(i, g, out=c)
        else:
            np.multiply(f, c_prev, out=c)
            np.multiply(i, g, out=t)
            np.add(c, t, out=c)
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=h)
    return run


def _incoming(ins, source, units, dh):
    """(the state, the previous state or None, dc from later steps or None, dh, a
    pre-step computing dh or None, the gradient of the gate rows and of tanh(c) or
    None) for each source of a step's gradient (compiler/ops/recurrent.py)."""
    if source == "next":
        delta, ws, s, prev = ins[0], ins[1], ins[2], (ins[3] if len(ins) == 4 else None)
        recurrent, dz = ws[ws.shape[0] - units:], delta[:4 * units]

        def pre():
            np.matmul(recurrent, dz, out=dh)
        return s, prev, delta[4 * units:], dh, pre, None
    s, prev = ins[1], (ins[2] if len(ins) == 3 else None)
    if source == "last":
        return s, prev, None, ins[0].T, None, None
    ds = ins[0]
    return s, prev, ds[4 * units:5 * units], ds[6 * units:], None, ds


@kernel(operands=None)
def lstm_cell_grad(ins, outs, fast=False, source="state"):
    """dz' for the four gates (the gradient of z' = z / 2 for the sigmoid gates,
    so their factor is 2 y (1 - y)), then dc_prev = dc f."""
    d, scratch = outs
    units = ins[2 if source == "next" else 1].shape[0] // 7
    dc, dh_own, t1 = scratch[:units], scratch[units:2 * units], scratch[2 * units:3 * units]
    wide = scratch[:3 * units]                       # once dc and dh are spent
    s, prev, dc_in, dh, pre, ds = _incoming(ins, source, units, dh_own)
    direct = ds if (ds is not None and not fast) else None    # gate and tanh(c) rows to add
    i, f, o, g, _c, tc, _h = _rows(s, units, *range(7))
    di, df, do, dg = _rows(d, units, 0, 1, 2, 3)
    c_prev = None if prev is None else prev[4 * units:5 * units]

    def run():
        if pre is not None:
            pre()
        np.multiply(tc, tc, out=t1)
        np.subtract(1.0, t1, out=t1)                 # tanh'(c)
        np.multiply(dh, o, out=dc)
        if direct is not None:
            np.add(dc, direct[5 * units:6 * units], out=dc)
        np.multiply(dc, t1, out=dc)
        if dc_in is not None:
            np.add(dc, dc_in, out=dc)                # dc, all of it
        np.multiply(dc, i, out=dg)
        if c_prev is not None:
            np.multiply(dc, f, out=d[4 * units:])
        np.add(dc, dc, out=t1)                       # 2 dc: the sigmoid gates' factor 2
        np.multiply(t1, g, out=di)
        if c_prev is None:
            df.fill(0.0)
        else:
            np.multiply(t1, c_prev, out=df)
        np.multiply(dh, tc, out=do)
        np.add(do, do, out=do)
        if direct is not None:                       # the state's own gate rows' gradient
            np.multiply(direct[:3 * units], 2.0, out=wide)
            np.add(d[:3 * units], wide, out=d[:3 * units])
            np.add(dg, direct[3 * units:4 * units], out=dg)
        y, dy = s[:3 * units], d[:3 * units]         # the sigmoid gates: times y (1 - y)
        np.subtract(1.0, y, out=wide)
        np.multiply(wide, y, out=wide)
        np.multiply(dy, wide, out=dy)
        np.multiply(g, g, out=t1)                    # the cell gate: times 1 - g^2
        np.subtract(1.0, t1, out=t1)
        np.multiply(dg, t1, out=dg)
    return run


@kernel(operands=2)
def lstm_state_grad(ins, outs):
    (delta, ws), (ds,) = ins, outs
    units = ds.shape[0] // 7
    recurrent = ws[ws.shape[0] - units:]            # U, scaled as z' is: dh = U' dz'
    zero, tanh_rows = ds[:4 * units], ds[5 * units:6 * units]

    def run():
        zero.fill(0.0)
        tanh_rows.fill(0.0)
        np.copyto(ds[4 * units:5 * units], delta[4 * units:])
        np.matmul(recurrent, delta[:4 * units], out=ds[6 * units:])
    return run


@kernel(operands=2)
def lstm_input_grad(ins, outs, features=1):
    (delta, ws), (dx,) = ins, outs
    gates = ws.shape[1]
    inputs = ws[:features]

    def run():
        np.matmul(inputs, delta[:gates], out=dx[:, 0, :].T)
    return run


@kernel(operands=None)
def lstm_weights_sum(ins, outs, step=0, rows=1, accumulate=False):
    delta, x = ins[0], ins[1]
    prev = ins[2] if len(ins) - accumulate == 3 else None
    later = ins[-1] if accumulate else None
    total, stack = outs
    units = total.shape[1] // 4
    used, rest, dz = total[:len(stack)], total[len(stack):], delta[:4 * units]

    def run():
        _inputs(stack, x, step, prev, units)
        np.matmul(stack, dz.T, out=used)
        rest.fill(0.0)
        if later is not None:
            np.add(total, later, out=total)
    return run


def register_outputs(prefix: str, rows: int) -> None:
    """The kernels of ``{prefix}_last``, ``{prefix}_sequence`` and their
    gradients, for a state of ``rows`` rows per unit whose last U rows are h."""
    def last(ins, outs):
        (s,), (y,) = ins, outs
        h = s[(rows - 1) * (s.shape[0] // rows):]

        def run():
            np.copyto(y, h.T)
        return run

    def last_grad(ins, outs):
        (dy,), (ds,) = ins, outs
        units = ds.shape[0] // rows

        def run():
            ds[:(rows - 1) * units].fill(0.0)
            np.copyto(ds[(rows - 1) * units:], dy.T)
        return run

    def sequence(ins, outs):
        (y,) = outs
        units = y.shape[2]
        pairs = [(y[:, t, :], s[(rows - 1) * units:].T) for t, s in enumerate(ins)]

        def run():
            for dst, src in pairs:
                np.copyto(dst, src)
        return run

    def sequence_grad(ins, outs, step=0):
        (dy,), (ds,) = ins, outs
        units = ds.shape[0] // rows

        def run():
            ds[:(rows - 1) * units].fill(0.0)
            np.copyto(ds[(rows - 1) * units:], dy[:, step, :].T)
        return run

    kernel(operands=1, name=f"{prefix}_last")(last)
    kernel(operands=1, name=f"{prefix}_last_grad")(last_grad)
    kernel(operands=None, name=f"{prefix}_sequence")(sequence)
    kernel(operands=1, name=f"{prefix}_sequence_grad")(sequence_grad)


register_outputs("lstm", 7)
