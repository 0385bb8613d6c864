"""Kernels of the LSTM scan ops (compiler/ops/lstm_scan.py).

S (T 6U + (T + 1) K', N), K' = F + 1 + U, holds the gate region, per step t a
contiguous (6U, N) block [i, f, o, g, c_t-1, tanh c_t], and the stacks (K', T + 1, N),
whose column block t is [x_t; 1; h_t-1] (block T: [0; 1; h_T-1]); without ``keep``
(evaluation, prediction) only the stacks, the gate blocks taking turns in scratch.
Either way h is S's last U (T + 1) rows, which is all the readers need. A step is one
GEMM, WS^T [x_t; 1; h_t-1], into its gate block, then elementwise passes over
contiguous (U, N) blocks; the sigmoid gates' columns of WS are halved, so one tanh
over the four gates gives sigmoid(z) = (1 + tanh(z / 2)) / 2 (see
runtime/kernels/recurrent.py). c_t-1 sits right after g so that [i; f] * [g; c_t-1]
is one pass (and its gradient, dc [g; c_t-1], another). The stacks, side by side,
are the left operand of the weights' gradient GEMM, (K, T N) @ D^T.

These kernels run whole on the calling thread, BLAS with its own threads: a loop is
hundreds of small NumPy calls, each releasing and retaking the GIL, so parts of the
batch on pool threads wait on each other more than they gain (measured:
docs/architecture.md, "An LSTM scan, a GRU step: one op each").

>>> import numpy as np
>>> ws, x = np.zeros((4, 8)), np.ones((2, 1, 3))
>>> s = np.empty((6 * 2 + 2 * 6, 2)); lstm_scan([ws, x], [s, np.empty((6, 2))])()
>>> s[:8, 0]                     # i, f, o = sigmoid(0) = 0.5, g = tanh(0) = 0
array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0. , 0. ])
"""
from __future__ import annotations

import numpy as np

from .base import kernel


def _gates(s, units, steps):
    """The gate blocks, (T, 6U, N)."""
    return s[:steps * 6 * units].reshape(steps, 6 * units, s.shape[1])


def _stacks(s, units, steps):
    """The stacks of an S that keeps its gate blocks, (K', T + 1, N)."""
    return s[steps * 6 * units:].reshape(-1, steps + 1, s.shape[1])


def _h_rows(s, steps, units):
    """h of every step, (U, T + 1, N): the stacks' last U rows, S's last U (T + 1)."""
    return s[s.shape[0] - units * (steps + 1):].reshape(units, steps + 1, s.shape[1])


def _blocks(a, units, *ks):
    return [a[k * units:(k + 1) * units] for k in ks]


@kernel(operands=2)
def lstm_scan(ins, outs, keep=True):
    """Every step, first to last, into S (see the module's docstring); scratch
    [i g; f c_t-1] and the last c (and without ``keep`` the two gate blocks).

    >>> ws, x = np.zeros((2, 4)), np.ones((3, 1, 1))       # 1 unit, 1 step, 1 feature
    >>> s = np.empty((6 + 2 * 3, 3)); lstm_scan([ws, x], [s, np.empty((3, 3))])()
    >>> s[6:].reshape(3, 2, 3)[:, 0, 0]                     # step 0's stack [x_0; 1; h_-1]
    array([1., 1., 0.])
    """
    ws, x = ins
    s, scratch = outs
    units, steps, features = ws.shape[1] // 4, x.shape[1], x.shape[2]
    products, c_last = scratch[:2 * units], scratch[2 * units:3 * units]
    if keep:
        gates, stacks = _gates(s, units, steps), _stacks(s, units, steps)
    else:                                                    # two blocks taking turns
        gates = [scratch[(3 + 6 * (t % 2)) * units:(9 + 6 * (t % 2)) * units] for t in range(steps)]
        stacks = s.reshape(-1, steps + 1, s.shape[1])
    weights, rows = ws.T, ws.shape[0]
    plan = []
    for t in range(steps):
        block = gates[t]
        c = gates[t + 1][4 * units:5 * units] if t + 1 < steps else c_last     # c_t: the next block's c_t-1
        plan.append((stacks[:rows, t], block[:4 * units], block[:3 * units], block[:2 * units],
                     block[3 * units:5 * units], c, block[5 * units:], block[2 * units:3 * units],
                     stacks[features + 1:, t + 1]))

    def run():
        np.copyto(stacks[:features, :steps], x.transpose(2, 1, 0))
        stacks[:features, steps].fill(0.0)
        stacks[features].fill(1.0)
        stacks[features + 1:, 0].fill(0.0)                  # h_-1
        gates[0][4 * units:5 * units].fill(0.0)             # c_-1
        for stack, z, v, i_f, g_c, c, tc, o, h in plan:
            np.matmul(weights, stack, out=z)
            np.tanh(z, out=z)
            np.multiply(v, 0.5, out=v)                       # sigmoid = (1 + tanh(z'/2)) / 2
            np.add(v, 0.5, out=v)
            np.multiply(i_f, g_c, out=products)              # [i g; f c_t-1]
            np.add(products[:units], products[units:], out=c)
            np.tanh(c, out=tc)
            np.multiply(o, tc, out=h)                        # into the next step's stack
    return run


def _incoming(g, source, units, steps):
    """Per step, last first: what adds to dh from outside the recurrence (h's
    gradient), and for source 'state' the gate blocks' own gradient (T, 6U, N)."""
    if source == "last":
        return [g.T] + [None] * (steps - 1), None
    if source == "sequence":
        return [g[:, t].T for t in reversed(range(steps))], None
    stacks = _stacks(g, units, steps)
    return [stacks[stacks.shape[0] - units:, t + 1] for t in reversed(range(steps))], _gates(g, units, steps)


@kernel(operands=3)
def lstm_scan_grad(ins, outs, source="last", steps=1):
    """Backpropagation through the steps, last first: dz' for the four gates (the
    gradient of z' = z / 2 for the sigmoid gates, so their factor is 2 y (1 - y)),
    dc carried back as dc f, dh_t-1 = U' dz'_t.

    >>> ws, x = np.full((2, 4), 0.5), np.ones((1, 1, 1))    # 1 unit, 1 step, 1 feature
    >>> s = np.empty((12, 1)); lstm_scan([ws, x], [s, np.empty((3, 1))])()
    >>> d = np.empty((4, 1, 1)); grad = lstm_scan_grad([ws, s, np.ones((1, 1))], [d, np.empty((15, 1))])
    >>> grad(); bool(d[1, 0, 0] == 0.0)                     # no c_-1: no gradient for f
    True
    """
    ws, s, g = ins
    d, scratch = outs
    units = ws.shape[1] // 4
    gates = _gates(s, units, steps)
    dz, wide, fresh = scratch[:4 * units], scratch[8 * units:11 * units], scratch[11 * units:15 * units]
    dh, dc, carry, t1 = _blocks(scratch, units, 4, 5, 6, 7)
    dz_if, dz_o, dz_g = dz[:2 * units].reshape(2, units, -1), dz[2 * units:3 * units], dz[3 * units:]
    recurrent = ws[ws.shape[0] - units:]                  # U's rows, scaled as z' is
    outside, direct = _incoming(g, source, units, steps)
    plan = []
    for k, t in enumerate(reversed(range(steps))):
        block = gates[t]
        i, f, o, gg, _c_prev, tc = _blocks(block, units, *range(6))
        own = None if direct is None else (direct[t], direct[t + 1][4 * units:5 * units] if t + 1 < steps else None)
        plan.append((k > 0, t > 0, i, f, o, gg, block[3 * units:5 * units].reshape(2, units, -1), tc,
                     block[:3 * units], outside[k], d[:, t], own))

    def run():
        for later, earlier, i, f, o, gg, g_c, tc, y, extra, out, own in plan:
            grad_h = dh
            if not later:                                 # the last step: h's gradient alone
                grad_h = extra
            else:
                np.matmul(recurrent, fresh, out=dh)       # the later step's dz', still in scratch
                if extra is not None:
                    np.add(dh, extra, out=dh)
            np.multiply(tc, tc, out=t1)
            np.subtract(1.0, t1, out=t1)                  # tanh'(c)
            np.multiply(grad_h, o, out=dc)
            if own is not None:
                np.add(dc, own[0][5 * units:], out=dc)    # tanh(c)'s own gradient
            np.multiply(dc, t1, out=dc)
            if later:
                np.add(dc, carry, out=dc)                 # dc from the later steps
            if own is not None and own[1] is not None:
                np.add(dc, own[1], out=dc)                # c's own (the next block's c_t-1 rows)
            np.multiply(dc, g_c, out=dz_if)               # [dc g; dc c_t-1]
            np.multiply(dc, i, out=dz_g)
            if earlier:
                np.multiply(dc, f, out=carry)
            np.multiply(grad_h, tc, out=dz_o)
            if own is not None:                           # the gate rows' own gradient
                np.add(dz, own[0][:4 * units], out=dz)
            np.multiply(y, -2.0, out=wide)                # the sigmoid gates: times 2 y (1 - y)
            np.add(wide, 2.0, out=wide)
            np.multiply(wide, y, out=wide)
            np.multiply(dz[:3 * units], wide, out=fresh[:3 * units])
            np.multiply(gg, gg, out=t1)                   # the cell gate: times 1 - g^2
            np.subtract(1.0, t1, out=t1)
            np.multiply(dz_g, t1, out=fresh[3 * units:])
            # D's step block is strided (rows of N in a (4U, T N) matrix): the next
            # step's U' dz' GEMM reads the contiguous copy in scratch, about 15% faster
            np.copyto(out, fresh)
    return run


@kernel(operands=2)
def lstm_scan_weights_grad(ins, outs, rows=1):
    """The stacked weights' gradient: the steps' stacks (rows, T N) times D^T.

    >>> s, d = np.zeros((6 + 2 * 3, 2)), np.ones((4, 1, 2))  # 1 unit, 1 step, 1 feature
    >>> s[6:].reshape(3, 2, 2)[:, 0] = [[2.0, 3.0], [1.0, 1.0], [0.0, 0.0]]   # [x_0; 1; h_-1]
    >>> dws = np.empty((2, 4)); lstm_scan_weights_grad([s, d], [dws], rows=2)(); dws[:, 0]
    array([5., 2.])
    """
    s, d = ins
    (dws,) = outs
    units, steps, batch = d.shape[0] // 4, d.shape[1], d.shape[2]
    stacks = s[steps * 6 * units:].reshape(-1, (steps + 1) * batch)[:rows, :steps * batch]
    dz = d.reshape(4 * units, steps * batch)

    def run():
        np.matmul(stacks, dz.T, out=dws)
    return run


@kernel(operands=None)
def lstm_scan_input_grad(ins, outs):
    """x's gradient (N, T, F): WS's x rows times D, plus the x rows of the
    state's own gradient when given.

    >>> ws, d = np.ones((2, 4)), np.ones((4, 1, 3))          # 1 unit, 1 step, 1 feature
    >>> dx = np.empty((3, 1, 1)); lstm_scan_input_grad([ws, d], [dx, np.empty((1, 3))])(); dx[:, 0, 0]
    array([4., 4., 4.])
    """
    ws, d = ins[:2]
    dx, scratch = outs
    batch, steps, features = dx.shape
    units = ws.shape[1] // 4
    product = scratch.reshape(features, steps * batch)
    spread = scratch.reshape(features, steps, batch).transpose(2, 1, 0)
    own = None
    if len(ins) == 3:
        own = _stacks(ins[2], units, steps)[:features, :steps].transpose(2, 1, 0)

    def run():
        np.matmul(ws[:features], d.reshape(4 * units, steps * batch), out=product)
        np.copyto(dx, spread)
        if own is not None:
            np.add(dx, own, out=dx)
    return run


# ------------------------------------------------------------------ outputs

@kernel(operands=1)
def lstm_last(ins, outs, steps=1, units=1):
    """h of the last step, (N, U): S's last U rows.

    >>> s = np.arange(24.0).reshape(12, 2); y = np.empty((2, 1))   # 1 unit, 1 step
    >>> lstm_last([s], [y])(); y.T
    array([[22., 23.]])
    """
    h = _h_rows(ins[0], steps, units)[:, steps].T

    def run():
        np.copyto(outs[0], h)
    return run


@kernel(operands=1)
def lstm_sequence(ins, outs, steps=1, units=1):
    """h of every step, (N, T, U): from S's last U (T + 1) rows.

    >>> s = np.arange(21.0)[:, None]; y = np.empty((1, 2, 1))      # 1 unit, 2 steps, 1 feature
    >>> lstm_sequence([s], [y], steps=2)(); y[0, :, 0]
    array([19., 20.])
    """
    h = _h_rows(ins[0], steps, units)[:, 1:].transpose(2, 1, 0)

    def run():
        np.copyto(outs[0], h)
    return run


def _padded(ins, outs, steps, pick):
    (dy,), (ds,) = ins, outs
    h = pick(_h_rows(ds, steps, dy.shape[-1]))

    def run():
        ds.fill(0.0)
        np.copyto(h, dy.T)
    return run


@kernel(operands=1)
def lstm_last_grad(ins, outs, rows=1, steps=1):
    """S's gradient from h_T-1's: zero but the last U rows.

    >>> ds = np.empty((12, 1)); lstm_last_grad([np.array([[5.0]])], [ds], rows=12)(); ds[-2:, 0]
    array([0., 5.])
    """
    return _padded(ins, outs, steps, lambda h: h[:, steps])


@kernel(operands=1)
def lstm_sequence_grad(ins, outs, rows=1, steps=1):
    """S's gradient from every step's h's: zero but the h rows of blocks 1..T.

    >>> ds = np.empty((21, 1)); lstm_sequence_grad([np.array([[[5.0], [6.0]]])], [ds], rows=21, steps=2)()
    >>> ds[-3:, 0]
    array([0., 5., 6.])
    """
    return _padded(ins, outs, steps, lambda h: h[:, 1:])
