"""The GRU cell ops: the LSTM's layout (compiler/ops/recurrent.py) for PyTorch's GRU.

r = s(x Wr + br + h Ur + bhr), z = s(x Wz + bz + h Uz + bhz),
n = tanh(x Wn + bn + r (h Un + bhn)), h' = n + z (h - n).

- ``GS = gru_weights(W, b, b_recurrent[, U])`` (K, 4U), K = F + 1 (+ U): the columns
  [r, z, a, b'] where a = x Wn + bn and b' = h Un + bhn must stay apart (r multiplies
  b' alone), so the x rows hold [Wr, Wz, Wn, 0], the bias row [br + bhr, bz + bhz,
  bn, bhn] and the h rows [Ur, Uz, 0, Un]; the sigmoid gates' columns are halved
  (one tanh then gives both sigmoids, as for the LSTM);
- ``S_t = gru_cell(GS, x[, S_prev], step=t)``: the state (5U, N), rows [r, z, n, b', h];
- ``gru_last`` / ``gru_sequence``: h of the last state / of every state.

A step's gradient block is ``gru_cell_grad``: the gradients of the four scaled
pre-activation rows and, with a previous state, h_prev's direct part z dh. The
weights' running sum (``step_weights_sum``) and x_t's gradient (``step_input_grad``)
are the LSTM's ops: both read only [x_t; 1; h_prev] and the block's first 4U rows.

>>> from graphnn.compiler.ops import OPS
>>> OPS["gru_weights"].infer([(3, 6), (6,), (6,), (2, 6)], ["float32"] * 4, {})
((6, 8), 'float32')
>>> OPS["gru_cell"].infer([(6, 8), (None, 4, 3), (10, None)], ["float32"] * 3, {"step": 1})
((10, None), 'float32')
"""
from __future__ import annotations

from ..errors import OpShapeError
from .base import Attr, OpDef, fmt_shape, register, same_dtype
from .recurrent import (
    GRADIENT_SOURCES,
    _count,
    _step,
    cell_grad_shape,
    cell_scratch,
    cell_shape,
    cell_vjp,
    register_outputs,
    state_check,
)


def _units(shape, what):
    if len(shape) != 2 or shape[1] % 3:
        raise OpShapeError(f"{what} must be (rows, 3 units), got {fmt_shape(shape)}")
    return shape[1] // 3


def _weights_shape(shapes, dtypes, attrs):
    if len(shapes) not in (3, 4):
        raise OpShapeError(f"expected W, b, b_recurrent and optionally U, got {len(shapes)} operands")
    w = shapes[0]
    units = _units(w, "W")
    for b, what in zip(shapes[1:3], ("b", "b_recurrent")):
        if tuple(b) != (3 * units,):
            raise OpShapeError(f"{what} has shape {fmt_shape(b)}, expected ({3 * units},)")
    if len(shapes) == 4 and tuple(shapes[3]) != (units, 3 * units):
        raise OpShapeError(f"U has shape {fmt_shape(shapes[3])}, expected {fmt_shape((units, 3 * units))}")
    rows = w[0] + 1 + (units if len(shapes) == 4 else 0)
    return (rows, 4 * units), same_dtype(dtypes, *range(len(shapes)))


def _weights_vjp(ctx, ins, out, dy, attrs):
    features = ctx.shape(ins[0])[0]
    return [ctx.emit("gru_weights_grad", [dy], part=k, features=features) for k in range(len(ins))]


def _weights_grad_shape(shapes, dtypes, attrs):
    (rows, gates), = shapes
    units, f = gates // 4, attrs["features"]
    return ((f, 3 * units), (3 * units,), (3 * units,), (rows - f - 1, 3 * units))[attrs["part"]], dtypes[0]


register(OpDef("gru_weights", None, _weights_shape, vjp=_weights_vjp,
               flops=lambda ins, out, a: out[0] * out[1],
               doc="[W; b + b_recurrent; U] stacked (K, 4U) as columns r, z, x's n, h's n "
                   "(zeros where a part does not enter), the sigmoid gates' halved."))
register(OpDef("gru_weights_grad", 1, _weights_grad_shape, kind="gradient",
               attrs={"part": Attr(check=lambda v: v in (0, 1, 2, 3),
                                   expect="0 (W), 1 (b), 2 (b_recurrent) or 3 (U)"),
                      "features": _count},
               doc="The gradient of W, b, b_recurrent or U from the stacked weights' gradient."))


_state = state_check(5, "a GRU")


_cell_shape = cell_shape(5, _state, "GS")


register(OpDef("gru_cell", None, _cell_shape, vjp=cell_vjp, attrs={"step": _step},
               scratch=cell_scratch, flops=lambda ins, out, a: 2 * ins[0][0] * ins[0][1] + 10 * ins[0][1],
               doc="One GRU step: the state (5U, N) [r, z, n, h U_n + b_hn, h] from "
                   "GS^T [x_t; 1; h_prev] and h_prev."))


_cell_grad_shape = cell_grad_shape(5, _state)


def _cell_grad_scratch(in_shapes, out_shape, attrs, dtype):
    units = in_shapes[GRADIENT_SOURCES[attrs["source"]]][0] // 5
    return [((2 * units, out_shape[1]), dtype)]               # dh, then one block


register(OpDef("gru_cell_grad", None, _cell_grad_shape, kind="gradient",
               attrs={"fast": Attr(False, lambda v: isinstance(v, bool), "True or False"),
                      "source": Attr("state", lambda v: v in GRADIENT_SOURCES,
                                     f"one of {sorted(GRADIENT_SOURCES)}")},
               scratch=_cell_grad_scratch, flops=lambda ins, out, a: 16 * out[0],
               doc="A GRU step's gradient block (5U, N): the four scaled pre-activation rows' "
                   "gradients and h_prev's direct part z dh (absent without a previous "
                   "state); the source says what the first operands are: the state's gradient, the next "
                   "step's block and GS (dh = U' dz there), or h's gradient (N, U) alone."))


def _state_grad_shape(shapes, dtypes, attrs):
    delta, gs = shapes
    units = gs[1] // 4
    if len(delta) != 2 or delta[0] != 5 * units:
        raise OpShapeError(f"the step gradient has shape {fmt_shape(delta)}, expected ({5 * units}, N)")
    return (5 * units, delta[1]), same_dtype(dtypes, 0, 1)


register(OpDef("gru_state_grad", 2, _state_grad_shape, kind="gradient",
               flops=lambda ins, out, a: 2 * ins[1][1] * (ins[1][1] // 4),
               doc="The previous GRU state's gradient: zero but h's, U_stacked dz + z dh."))


register_outputs("gru", 5, "a GRU")
