"""The LSTM cell ops: one op per time step, laid out for few, contiguous kernels.

``graphnn/recurrent.py`` builds an LSTM of units U over (N, T, F) as

- ``WS = lstm_weights(W, b[, U])``: W, b and U stacked into one (K, 4U) matrix,
  K = F + 1 (+ U when T > 1), the gates' columns in the order i, f, o, g (the
  sigmoid gates side by side) and the sigmoid gates' halved, so that
  sigmoid(z) = (1 + tanh(z / 2)) / 2 costs one tanh over all gates;
- ``S_t = lstm_cell(WS, x[, S_prev], step=t)``: one step. Its state is feature-major,
  (7U, N): the rows of the activated gates i, f, o, g, then c, tanh(c) and h, each a
  contiguous (U, N) block, so every elementwise pass runs over contiguous memory and
  the step's product is one GEMM, WS^T @ [x_t; 1; h_prev];
- ``lstm_last(S)`` (N, U) or ``lstm_sequence(S_0, ...)`` (N, T, U): the outputs.

The gradient of a step is ``lstm_cell_grad`` (the gates' pre-activation gradients
dz and the carried dc, one (5U, N) block), from which ``lstm_state_grad`` (the
previous state's), ``lstm_input_grad`` (x_t's) and ``lstm_weights_piece`` (WS's)
follow. ``lstm_weights``' own gradient gathers the T pieces into one GEMM over all
steps (``lstm_weights_grad_all``) instead of T products and their sum.

>>> from graphnn.compiler.ops import OPS
>>> OPS["lstm_weights"].infer([(3, 8), (8,), (2, 8)], ["float32"] * 3, {})
((6, 8), 'float32')
>>> OPS["lstm_cell"].infer([(6, 8), (None, 4, 3), (14, None)], ["float32"] * 3, {"step": 1})
((14, None), 'float32')
"""
from __future__ import annotations

from ..errors import OpShapeError
from ..ir import operands
from .base import Attr, OpDef, fmt_shape, register, same_dtype

# Gradient producers whose result is zero in a state's gate and tanh(c) rows: a
# step fed by them only needs the c and h rows of its output's gradient.
STATE_GRADIENTS = ("lstm_state_grad", "lstm_last_grad", "lstm_sequence_grad")

_step = Attr(check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
             expect="a time step (int >= 0)")
_count = Attr(check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
              expect="a positive int")


def _units(gates: int, where: str) -> int:
    if gates % 4:
        raise OpShapeError(f"{where} has {gates} gate columns, not a multiple of 4")
    return gates // 4


def _state_shape(shape, units, batch, what):
    if tuple(shape) != (7 * units, batch):
        raise OpShapeError(f"{what} has shape {fmt_shape(shape)}, expected a state "
                           f"{fmt_shape((7 * units, batch))} of {units} units")


# ------------------------------------------------------------------ weights

def _weights_shape(shapes, dtypes, attrs):
    if len(shapes) not in (2, 3):
        raise OpShapeError(f"expected W, b and optionally U, got {len(shapes)} operands")
    w, b = shapes[:2]
    if len(w) != 2:
        raise OpShapeError(f"W must be (features, 4 units), got {fmt_shape(w)}")
    units = _units(w[1], "W")
    if b != (w[1],):
        raise OpShapeError(f"b has shape {fmt_shape(b)}, expected ({w[1]},)")
    rows = w[0] + 1
    if len(shapes) == 3:
        if shapes[2] != (units, w[1]):
            raise OpShapeError(f"U has shape {fmt_shape(shapes[2])}, expected {fmt_shape((units, w[1]))}")
        rows += units
    return (rows, w[1]), same_dtype(dtypes, *range(len(shapes)))


def _gather_pieces(ctx, dy):
    """One lstm_weights_grad_all for the T steps' pieces summed in ``dy``, or None
    when ``dy`` is not exactly those pieces (then it is used as it is)."""
    g = ctx.g
    parts = operands(g, dy) if g.nodes[dy]["op"] == "add_n" else []
    if not parts or any(g.nodes[p]["op"] != "lstm_weights_piece" for p in parts):
        return None
    pieces = sorted((g.nodes[p]["step"], operands(g, p)) for p in parts)
    x = pieces[0][1][1]
    steps = g.nodes[x]["shape"][1]
    if [s for s, _ in pieces] != list(range(steps)) or any(ins[1] != x for _, ins in pieces):
        return None
    deltas = [ins[0] for _, ins in pieces]
    states = [ins[2] for _, ins in pieces[1:]]
    return ctx.emit("lstm_weights_grad_all", [x, *deltas, *states])


def _weights_vjp(ctx, ins, out, dy, attrs):
    gathered = _gather_pieces(ctx, dy) or dy
    features = ctx.shape(ins[0])[0]
    return [ctx.emit("lstm_weights_grad", [gathered], part=k, features=features)
            for k in range(len(ins))]


def _weights_grad_shape(shapes, dtypes, attrs):
    (rows, gates), = shapes
    f = attrs["features"]
    return ((f, gates), (gates,), (rows - f - 1, gates))[attrs["part"]], dtypes[0]


register(OpDef("lstm_weights", None, _weights_shape, vjp=_weights_vjp,
               flops=lambda ins, out, a: out[0] * out[1],
               doc="[W; b; U] stacked (K, 4U), gate columns in the order i, f, o, g, the "
                   "sigmoid gates' halved."))
register(OpDef("lstm_weights_grad", 1, _weights_grad_shape, kind="gradient",
               attrs={"part": Attr(check=lambda v: v in (0, 1, 2), expect="0 (W), 1 (b) or 2 (U)"),
                      "features": _count},
               flops=lambda ins, out, a: 0,
               doc="The gradient of W, b or U from the stacked weights' gradient."))


# ------------------------------------------------------------------ one step

def _cell_shape(shapes, dtypes, attrs):
    if len(shapes) not in (2, 3):
        raise OpShapeError(f"expected WS, x and optionally the previous state, got {len(shapes)} operands")
    ws, x = shapes[:2]
    if len(ws) != 2:
        raise OpShapeError(f"the stacked weights must be 2-D, got {fmt_shape(ws)}")
    units = _units(ws[1], "the stacked weights")
    if len(x) != 3 or None in x[1:]:
        raise OpShapeError(f"x must be a sequence (N, T, features), got {fmt_shape(x)}")
    if attrs["step"] >= x[1]:
        raise OpShapeError(f"step {attrs['step']} is past the {x[1]} steps of x")
    need = x[2] + 1 + (units if len(shapes) == 3 else 0)
    if ws[0] != need and not (len(shapes) == 2 and ws[0] == need + units):
        raise OpShapeError(f"the stacked weights have {ws[0]} rows, expected {need} "
                           f"({x[2]} features, the bias{', ' + str(units) + ' units' if len(shapes) == 3 else ''})")
    if len(shapes) == 3:
        _state_shape(shapes[2], units, x[0], "the previous state")
    return (7 * units, x[0]), same_dtype(dtypes, *range(len(shapes)))


def _cell_scratch(in_shapes, out_shape, attrs, dtype):
    units, features = in_shapes[0][1] // 4, in_shapes[1][2]
    rows = features + 1 + (units if len(in_shapes) == 3 else 0)
    return [((rows + units, in_shapes[1][0]), dtype)]      # [x_t; 1; h_prev], then c's scratch


def _zero_in_gates(g, dy) -> bool:
    """Whether ``dy`` (a state's gradient) is zero in the gate and tanh(c) rows by
    construction: made by one of STATE_GRADIENTS, or a sum of such."""
    op = g.nodes[dy]["op"]
    if op == "add_n":
        return all(g.nodes[p]["op"] in STATE_GRADIENTS for p in operands(g, dy))
    return op in STATE_GRADIENTS


def _step_gradient(ctx, dy, out, prev):
    """The step's lstm_cell_grad. When ``dy`` is the next step's lstm_state_grad
    (or lstm_last's gradient) alone, read what that was made from instead: the next
    step's gradient block and WS (dh = U' dz there), or the output's gradient; the
    padded state gradient then has no reader and is pruned."""
    made_by = ctx.g.nodes[dy]["op"]
    if made_by == "lstm_state_grad":
        return ctx.emit("lstm_cell_grad", [*operands(ctx.g, dy), out, *prev], source="next")
    if made_by == "lstm_last_grad":
        return ctx.emit("lstm_cell_grad", [*operands(ctx.g, dy), out, *prev], source="last")
    return ctx.emit("lstm_cell_grad", [dy, out, *prev], fast=_zero_in_gates(ctx.g, dy))


def _cell_vjp(ctx, ins, out, dy, attrs):
    ws, x, prev = ins[0], ins[1], ins[2:]
    t, steps = attrs["step"], ctx.shape(x)[1]
    delta = _step_gradient(ctx, dy, out, prev)
    dws = ctx.emit("lstm_weights_piece", [delta, x, *prev], step=t, rows=ctx.shape(ws)[0])
    dx = ctx.emit("slice_grad", [ctx.emit("lstm_input_grad", [delta, ws], features=ctx.shape(x)[2])],
                  axis=1, start=t, stop=t + 1, size=steps)
    return [dws, dx] + ([ctx.emit("lstm_state_grad", [delta, ws])] if prev else [])


def _cell_flops(ins, out, attrs):
    rows, gates = ins[0]
    return 2 * rows * gates + 12 * gates        # per sample: the product, then the gates


register(OpDef("lstm_cell", None, _cell_shape, vjp=_cell_vjp, attrs={"step": _step},
               scratch=_cell_scratch, flops=_cell_flops,
               doc="One LSTM step: the state (7U, N) [i, f, o, g, c, tanh c, h] from "
                   "WS^T [x_t; 1; h_prev] and the previous state's c."))


GRADIENT_SOURCES = {"state": 1, "next": 2, "last": 1}     # where the state operand is


def _cell_grad_shape(shapes, dtypes, attrs):
    source = attrs["source"]
    at = GRADIENT_SOURCES[source]
    if len(shapes) not in (at + 1, at + 2):
        raise OpShapeError(f"expected {at} gradient operand(s), the state and optionally the previous "
                           f"state, got {len(shapes)} operands")
    units, batch = shapes[at][0] // 7, shapes[at][1]
    for s, what in zip(shapes[at:], ("the state", "the previous state")):
        _state_shape(s, units, batch, what)
    if source == "state":
        _state_shape(shapes[0], units, batch, "the state's gradient")
    elif source == "last" and tuple(shapes[0]) != (batch, units):
        raise OpShapeError(f"the output's gradient has shape {fmt_shape(shapes[0])}, expected "
                           f"{fmt_shape((batch, units))}")
    elif source == "next" and (tuple(shapes[0]) != (5 * units, batch) or shapes[1][1] != 4 * units):
        raise OpShapeError(f"expected the next step's gradient block {fmt_shape((5 * units, batch))} and "
                           f"the stacked weights (K, {4 * units}), got {fmt_shape(shapes[0])} and "
                           f"{fmt_shape(shapes[1])}")
    carried = len(shapes) == at + 2
    return ((5 if carried else 4) * units, batch), same_dtype(dtypes, *range(len(shapes)))


def _cell_grad_scratch(in_shapes, out_shape, attrs, dtype):
    units = in_shapes[GRADIENT_SOURCES[attrs["source"]]][0] // 7
    return [((4 * units, out_shape[1]), dtype)]           # dc, dh, then two blocks of scratch


register(OpDef("lstm_cell_grad", None, _cell_grad_shape, kind="gradient",
               attrs={"fast": Attr(False, lambda v: isinstance(v, bool), "True or False"),
                      "source": Attr("state", lambda v: v in GRADIENT_SOURCES,
                                     f"one of {sorted(GRADIENT_SOURCES)}")},
               scratch=_cell_grad_scratch, flops=lambda ins, out, a: 24 * out[0],
               doc="A step's gradient block (5U, N): the gradient of the scaled gate "
                   "pre-activations (4U rows) and of the previous c (U rows; absent at "
                   "step 0), from the state's gradient dS (source 'state'; fast: its gate "
                   "and tanh(c) rows are known zeros), from the next step's block and WS "
                   "(source 'next': dh = U' dz, dc = its carried rows), or from h's "
                   "gradient (N, U) alone (source 'last')."))


def _delta_units(delta, carried: bool):
    """Units of a step gradient block: 5U rows with the carried dc, else 4U."""
    parts = 5 if carried else 4
    if len(delta) != 2 or delta[0] % parts:
        raise OpShapeError(f"the step gradient has shape {fmt_shape(delta)}, expected "
                           f"({parts}U, N)")
    return delta[0] // parts


def _state_grad_shape(shapes, dtypes, attrs):
    delta, ws = shapes
    units = ws[1] // 4
    if len(delta) != 2 or delta[0] != 5 * units:
        raise OpShapeError(f"the step gradient has shape {fmt_shape(delta)}, expected "
                           f"{fmt_shape((5 * units, delta[-1]))}")
    return (7 * units, delta[1]), same_dtype(dtypes, 0, 1)


register(OpDef("lstm_state_grad", 2, _state_grad_shape, kind="gradient",
               flops=lambda ins, out, a: 2 * ins[1][1] * (ins[1][1] // 4),
               doc="The previous state's gradient: zero gate and tanh(c) rows, dc, and "
                   "dh = U_scaled dz."))


def _x_grad_shape(shapes, dtypes, attrs):
    delta, ws = shapes
    units = ws[1] // 4
    if len(delta) != 2 or delta[0] not in (4 * units, 5 * units):
        raise OpShapeError(f"the step gradient has shape {fmt_shape(delta)}, expected "
                           f"({4 * units} or {5 * units}, N)")
    return (delta[1], 1, attrs["features"]), same_dtype(dtypes, 0, 1)


register(OpDef("lstm_input_grad", 2, _x_grad_shape, kind="gradient", attrs={"features": _count},
               flops=lambda ins, out, a: 2 * ins[1][1] * a["features"],
               doc="x_t's gradient (N, 1, F): W_scaled dz, transposed."))


def _piece_shape(shapes, dtypes, attrs):
    if len(shapes) not in (2, 3):
        raise OpShapeError(f"expected the step gradient, x and optionally the previous state, "
                           f"got {len(shapes)} operands")
    delta, x = shapes[:2]
    units = _delta_units(delta, len(shapes) == 3)
    return (attrs["rows"], 4 * units), same_dtype(dtypes, *range(len(shapes)))


def _piece_scratch(in_shapes, out_shape, attrs, dtype):
    units, features = out_shape[1] // 4, in_shapes[1][2]
    return [((features + 1 + (units if len(in_shapes) == 3 else 0), in_shapes[1][0]), dtype)]


register(OpDef("lstm_weights_piece", None, _piece_shape, kind="gradient",
               attrs={"step": _step, "rows": _count}, scratch=_piece_scratch,
               flops=lambda ins, out, a: 2 * out[0] * out[1],
               doc="One step's part of the stacked weights' gradient: [x_t; 1; h_prev] dz^T "
                   "(rows past the inputs it has are zero)."))


def _grad_all_shape(shapes, dtypes, attrs):
    x = shapes[0]
    steps = x[1]
    if len(shapes) != 2 * steps:
        raise OpShapeError(f"expected x, {steps} step gradients and {steps - 1} states, got "
                           f"{len(shapes)} operands")
    units = _delta_units(shapes[1], False)
    rows = x[2] + 1 + (units if steps > 1 else 0)
    return (rows, 4 * units), same_dtype(dtypes, *range(len(shapes)))


def _grad_all_scratch(in_shapes, out_shape, attrs, dtype):
    batch, steps = in_shapes[0][:2]
    return [((out_shape[0], steps, batch), dtype), ((out_shape[1], steps, batch), dtype)]


register(OpDef("lstm_weights_grad_all", None, _grad_all_shape, kind="gradient",
               scratch=_grad_all_scratch, flops=lambda ins, out, a: 2 * out[0] * out[1] * ins[0][1],
               doc="The stacked weights' gradient over all steps as one product: "
                   "[x_t; 1; h_t-1] side by side for every t, times every step's dz."))


# ------------------------------------------------------------------ outputs

def _last_shape(shapes, dtypes, attrs):
    (s,) = shapes
    if len(s) != 2 or s[0] % 7:
        raise OpShapeError(f"expected an LSTM state (7U, N), got {fmt_shape(s)}")
    return (s[1], s[0] // 7), dtypes[0]


def _last_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("lstm_last_grad", [dy])]


def _sequence_shape(shapes, dtypes, attrs):
    for s in shapes:
        if s != shapes[0]:
            raise OpShapeError(f"the states differ in shape: {fmt_shape(s)} and {fmt_shape(shapes[0])}")
    (batch, units), dtype = _last_shape(shapes[:1], dtypes, attrs)
    return (batch, len(shapes), units), same_dtype(dtypes, *range(len(shapes)))


def _sequence_vjp(ctx, ins, out, dy, attrs):
    return [ctx.emit("lstm_sequence_grad", [dy], step=t) for t in range(len(ins))]


register(OpDef("lstm_last", 1, _last_shape, vjp=_last_vjp, fusion="injective",
               doc="h of an LSTM state, (N, U)."))
register(OpDef("lstm_sequence", None, _sequence_shape, vjp=_sequence_vjp, fusion="injective",
               doc="h of every step's state, (N, T, U)."))
register(OpDef("lstm_last_grad", 1, lambda s, d, a: ((7 * s[0][1], s[0][0]), d[0]), kind="gradient",
               fusion="injective", doc="A state's gradient from its h's: zero but the h rows."))
register(OpDef("lstm_sequence_grad", 1, lambda s, d, a: ((7 * s[0][2], s[0][0]), d[0]), kind="gradient",
               fusion="injective", attrs={"step": _step},
               doc="Step t's state gradient from the sequence's: zero but the h rows."))
