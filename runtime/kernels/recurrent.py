"""Kernels of the LSTM's stacked weights and the step ops' shared plumbing
(compiler/ops/recurrent.py); the LSTM's scan is runtime/kernels/lstm_scan.py.

States are feature-major, a contiguous (U, N) block per gate, so each elementwise
pass is one NumPy call over contiguous memory (a gate column block of a
batch-major (N, 4U) array is strided, and NumPy runs those about twice as
slowly). The stacked weights WS (K, 4U) are
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


@kernel(operands=2)
def step_input_grad(ins, outs, features=1):
    (delta, ws), (dx,) = ins, outs
    gates = ws.shape[1]
    inputs = ws[:features]

    def run():
        np.matmul(inputs, delta[:gates], out=dx[:, 0, :].T)
    return run


@kernel(operands=None)
def step_weights_sum(ins, outs, step=0, rows=1, accumulate=False):
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

