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
    """[W; b; U] stacked into WS (K, 4U): gate columns from i, f, g, o to i, f, o, g,
    the sigmoid gates' halved.

    >>> W, b, U = np.array([[1.0, 2, 3, 4]]), np.array([10.0, 20, 30, 40]), np.array([[5.0, 6, 7, 8]])
    >>> WS = np.empty((3, 4)); lstm_weights([W, b, U], [WS])(); WS
    array([[ 0.5,  1. ,  2. ,  3. ],
           [ 5. , 10. , 20. , 30. ],
           [ 2.5,  3. ,  4. ,  7. ]])
    """
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
    """The gradient of W (``part`` 0), b (1) or U (2) from the stacked weights':
    lstm_weights' adjoint, <dWS, WS(W, b, U)> = <dW, W> + <db, b> + <dU, U>.

    >>> dWS = np.arange(12.0).reshape(3, 4)
    >>> dW = np.empty((1, 4)); lstm_weights_grad([dWS], [dW], part=0, features=1)(); dW   # i, f, g, o
    array([[0. , 0.5, 3. , 1. ]])
    >>> rng = np.random.default_rng(0)
    >>> W, b, U = rng.normal(size=(1, 4)), rng.normal(size=4), rng.normal(size=(1, 4))
    >>> WS = np.empty((3, 4)); lstm_weights([W, b, U], [WS])()
    >>> grads = [np.empty_like(a) for a in (W, b, U)]
    >>> for k, d in enumerate(grads): lstm_weights_grad([dWS], [d], part=k, features=1)()
    >>> bool(np.isclose((dWS * WS).sum(), sum((d * a).sum() for d, a in zip(grads, (W, b, U)))))
    True
    """
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
    """x_t's gradient (N, 1, F): the stacked weights' x rows times the block's
    first 4U rows, dz, transposed.

    >>> ws, delta = np.arange(12.0).reshape(3, 4), np.ones((5, 1))      # F = 2, U = 1, N = 1
    >>> dx = np.empty((1, 1, 2)); step_input_grad([delta, ws], [dx], features=2)(); dx   # ws[:2]'s row sums
    array([[[ 6., 22.]]])
    """
    (delta, ws), (dx,) = ins, outs
    gates = ws.shape[1]
    inputs = ws[:features]

    def run():
        np.matmul(inputs, delta[:gates], out=dx[:, 0, :].T)
    return run


@kernel(operands=None)
def step_weights_sum(ins, outs, step=0, rows=1, accumulate=False):
    """The stacked weights' gradient from step ``step``: [x_t; 1; h_prev] dz^T (rows
    past the inputs it has zero), plus the later steps' sum (``accumulate``).
    ``outs`` is the sum and the scratch for [x_t; 1; h_prev].

    >>> x, prev = np.array([[[2.0], [3.0]]]), np.arange(5.0).reshape(5, 1)     # a GRU state: h = 4
    >>> delta, total, stack = np.array([[1.0], [2], [3], [4], [9]]), np.empty((3, 4)), np.empty((3, 1))
    >>> step_weights_sum([delta, x, prev], [total, stack], step=1, rows=3)(); total     # [3; 1; 4] dz^T
    array([[ 3.,  6.,  9., 12.],
           [ 1.,  2.,  3.,  4.],
           [ 4.,  8., 12., 16.]])
    >>> step_weights_sum([delta, x, total.copy()], [total, stack[:2]], step=0, rows=3, accumulate=True)()
    >>> total                               # step 0's [2; 1; 0] dz^T added
    array([[ 5., 10., 15., 20.],
           [ 2.,  4.,  6.,  8.],
           [ 4.,  8., 12., 16.]])
    """
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
    gradients, for a state of ``rows`` rows per unit whose last U rows are h.
    The GRU's (rows 5) are registered when runtime/kernels/gru.py is imported:

    >>> from graphnn.runtime.kernels.base import KERNELS
    >>> s, y = np.arange(10.0).reshape(5, 2), np.empty((2, 1))             # U = 1, N = 2: h = [8, 9]
    >>> KERNELS["gru_last"]([s], [y])(); y.T
    array([[8., 9.]])
    >>> ds = np.empty((5, 2)); KERNELS["gru_last_grad"]([np.array([[1.0], [2.0]])], [ds])(); ds.T
    array([[0., 0., 0., 0., 1.],
           [0., 0., 0., 0., 2.]])
    >>> seq = np.empty((2, 2, 1)); KERNELS["gru_sequence"]([s, s + 1], [seq])(); seq[:, :, 0]  # (N, T)
    array([[ 8.,  9.],
           [ 9., 10.]])
    """
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

