"""The LSTM's stacked weights, and the step-op plumbing the GRU's cells share.

- ``WS = lstm_weights(W, b[, U])``: W, b and U stacked into one (K, 4U) matrix,
  K = F + 1 (+ U when T > 1), the gates' columns in the order i, f, o, g (the
  sigmoid gates side by side) and the sigmoid gates' halved, so that
  sigmoid(z) = (1 + tanh(z / 2)) / 2 costs one tanh over all gates. The LSTM's
  steps read it as one op over the sequence (compiler/ops/lstm_scan.py).
- For unrolled step ops (``gru_cell``, compiler/ops/gru.py), a state per step,
  feature-major: ``cell_shape``, ``cell_scratch``, ``cell_vjp``, ``cell_grad_shape``
  and the outputs ``register_outputs``. A step's gradient block gives x_t's
  gradient (``step_input_grad``) and the stacked weights' as a running sum,
  ``step_weights_sum``, one per step from the last step back, each adding its
  product [x_t; 1; h_prev] dz_t^T while dz_t is fresh (step 0's is the whole
  gradient): no T products kept for an ``add_n``. Both read only [x_t; 1; h_prev]
  and the block's first 4U rows.

>>> from graphnn.compiler.ops import OPS
>>> OPS["lstm_weights"].infer([(3, 8), (8,), (2, 8)], ["float32"] * 3, {})
((6, 8), 'float32')
>>> OPS["gru_cell"].infer([(6, 8), (None, 4, 3), (10, None)], ["float32"] * 3, {"step": 1})
((10, None), 'float32')
"""
from __future__ import annotations

from ..errors import OpShapeError
from ..ir import consumers, operands
from .base import Attr, OpDef, fmt_shape, register, same_dtype

# Gradient producers whose result is zero in a state's gate and tanh(c) rows: a
# step fed by them only needs the c and h rows of its output's gradient.
STATE_GRADIENTS = ("gru_state_grad", "gru_last_grad", "gru_sequence_grad")
CELLS = ("gru_cell",)            # step ops using the gradient's plumbing below

_step = Attr(check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
             expect="a time step (int >= 0)")
_count = Attr(check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
              expect="a positive int")


def _units(gates: int, where: str) -> int:
    if gates % 4:
        raise OpShapeError(f"{where} has {gates} gate columns, not a multiple of 4")
    return gates // 4


def state_check(rows: int, label: str):
    """A check that a shape is a state of ``rows`` rows per unit (5 for the
    GRU), raising an error that names the operand ``what``.

    >>> state_check(5, "a GRU")((10, None), 2, None, "the state")
    """
    def check(shape, units, batch, what):
        if tuple(shape) != (rows * units, batch):
            raise OpShapeError(f"{what} has shape {fmt_shape(shape)}, expected {label} state "
                               f"{fmt_shape((rows * units, batch))} of {units} units")
    return check



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


def _weights_vjp(ctx, ins, out, dy, attrs):
    features = ctx.shape(ins[0])[0]
    return [ctx.emit("lstm_weights_grad", [dy], part=k, features=features) for k in range(len(ins))]


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

def cell_shape(rows: int, check, stacked: str):
    """The shape rule of a step op (``gru_cell``) whose state has
    ``rows`` rows per unit: operands the stacked weights (named ``stacked`` in
    errors), x (N, T, features) and optionally the previous state.

    >>> shape = cell_shape(5, state_check(5, "a GRU"), "GS")             # the GRU's rule
    >>> shape([(6, 8), (None, 4, 3), (10, None)], ["float32"] * 3, {"step": 1})    # U = 2: (5U, N)
    ((10, None), 'float32')
    >>> shape([(6, 8), (None, 4, 3)], ["float32"] * 2, {"step": 4})
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.OpShapeError: step 4 is past the 4 steps of x
    """
    def shape(shapes, dtypes, attrs):
        if len(shapes) not in (2, 3):
            raise OpShapeError(f"expected {stacked}, x and optionally the previous state, "
                               f"got {len(shapes)} operands")
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
                               f"({x[2]} features, the bias"
                               f"{', ' + str(units) + ' units' if len(shapes) == 3 else ''})")
        if len(shapes) == 3:
            check(shapes[2], units, x[0], "the previous state")
        return (rows * units, x[0]), same_dtype(dtypes, *range(len(shapes)))
    return shape


def cell_scratch(in_shapes, out_shape, attrs, dtype):
    """A step op's scratch: [x_t; 1; h_prev], then one block of U rows.

    >>> cell_scratch([(6, 8), (5, 4, 3), (10, 5)], (10, 5), {"step": 1}, "float32")   # 3 + 1 + 2, + 2
    [((8, 5), 'float32')]
    """
    units, features = in_shapes[0][1] // 4, in_shapes[1][2]
    rows = features + 1 + (units if len(in_shapes) == 3 else 0)
    return [((rows + units, in_shapes[1][0]), dtype)]



def _zero_in_gates(g, dy) -> bool:
    """Whether ``dy`` (a state's gradient) is zero in the gate and tanh(c) rows by
    construction: made by one of STATE_GRADIENTS, or a sum of such."""
    op = g.nodes[dy]["op"]
    if op == "add_n":
        return all(g.nodes[p]["op"] in STATE_GRADIENTS for p in operands(g, dy))
    return op in STATE_GRADIENTS


def _step_gradient(ctx, dy, out, prev):
    """The step's <kind>_cell_grad. When ``dy`` is the next step's <kind>_state_grad
    (or <kind>_last's gradient) alone, read what that was made from instead: the next
    step's gradient block and WS (dh = U' dz there), or the output's gradient; the
    padded state gradient then has no reader and is pruned."""
    made_by, kind = ctx.g.nodes[dy]["op"], ctx.g.nodes[out]["op"].split("_")[0]
    if made_by == f"{kind}_state_grad":
        return ctx.emit(f"{kind}_cell_grad", [*operands(ctx.g, dy), out, *prev], source="next")
    if made_by == f"{kind}_last_grad":
        return ctx.emit(f"{kind}_cell_grad", [*operands(ctx.g, dy), out, *prev], source="last")
    return ctx.emit(f"{kind}_cell_grad", [dy, out, *prev], fast=_zero_in_gates(ctx.g, dy))


def _same_layer(g, cell, step, ws, x) -> bool:
    d = g.nodes[cell]
    return d["op"] in CELLS and d["step"] == step and operands(g, cell)[:2] == [ws, x]


def _running_sum(ctx, out, t, ws, x):
    """The next step's step_weights_sum (its VJP runs first), or None when no
    later step of this layer is on the gradient's path."""
    for reader in consumers(ctx.g, out):
        if _same_layer(ctx.g, reader, t + 1, ws, x) and f"{reader}/grad_step_weights_sum" in ctx.g:
            return f"{reader}/grad_step_weights_sum"
    return None


def cell_vjp(ctx, ins, out, dy, attrs):
    """The step's gradient block, then WS's gradient as a running sum over the
    steps (last step first: each step adds its part while its block is fresh),
    handed to autodiff by the earliest step, whose sum holds them all; x_t's
    and the previous state's. A step op keeps h in its state's last rows and
    writes a (4U [+ U], N) gradient block.

    What autodiff emits for a two-step GRU: step 1 reads the output's gradient;
    step 0 reads step 1's block and adds its part to step 1's running sum.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2, 3))
    >>> m = Model(g, inputs=x, outputs=g.gru(x, 4)); m.compile(loss="mse", optimizer="sgd")
    >>> passes = {}; _ = m.program("train", 2, trace=lambda name, result: passes.setdefault(name, result))
    >>> d = passes["autodiff"]
    >>> for n in sorted(n for n in d if n.startswith("gru/cell1/grad_")): print(n, operands(d, n))
    gru/cell1/grad_gru_cell_grad ['loss/grad_mse_grad', 'gru/cell1', 'gru/cell0']
    gru/cell1/grad_gru_state_grad ['gru/cell1/grad_gru_cell_grad', 'gru/weights']
    gru/cell1/grad_slice_grad ['gru/cell1/grad_step_input_grad']
    gru/cell1/grad_step_input_grad ['gru/cell1/grad_gru_cell_grad', 'gru/weights']
    gru/cell1/grad_step_weights_sum ['gru/cell1/grad_gru_cell_grad', 'x', 'gru/cell0']
    >>> operands(d, "gru/cell0/grad_gru_cell_grad"), operands(d, "gru/cell0/grad_step_weights_sum")[2]
    (['gru/cell1/grad_gru_cell_grad', 'gru/weights', 'gru/cell0'], 'gru/cell1/grad_step_weights_sum')
    """
    kind = ctx.g.nodes[out]["op"].split("_")[0]
    ws, x, prev = ins[0], ins[1], ins[2:]
    t, steps = attrs["step"], ctx.shape(x)[1]
    delta = _step_gradient(ctx, dy, out, prev)
    later = _running_sum(ctx, out, t, ws, x)
    total = ctx.emit("step_weights_sum", [delta, x, *prev, *([later] if later else [])], step=t,
                     rows=ctx.shape(ws)[0], accumulate=later is not None)
    earlier = prev and _same_layer(ctx.g, prev[0], t - 1, ws, x)     # it carries the sum on
    dx = ctx.emit("slice_grad", [ctx.emit("step_input_grad", [delta, ws], features=ctx.shape(x)[2])],
                  axis=1, start=t, stop=t + 1, size=steps)
    return [None if earlier else total, dx] + ([ctx.emit(f"{kind}_state_grad", [delta, ws])] if prev else [])


GRADIENT_SOURCES = {"state": 1, "next": 2, "last": 1}     # where the state operand is


def cell_grad_shape(rows: int, check):
    """The shape rule of a step's gradient block (``gru_cell_grad``) for a state of ``rows`` rows per unit: (4U or 5U, N),
    the fifth block only with a previous state. Operands by ``source``: the
    state's gradient, the next step's block and stacked weights, or the
    output's gradient; then the state and optionally the previous one.

    >>> shape = cell_grad_shape(5, state_check(5, "a GRU"))               # U = 2, N = 7
    >>> shape([(7, 2), (10, 7), (10, 7)], ["float32"] * 3, {"source": "last"})
    ((10, 7), 'float32')
    >>> shape([(10, 7), (10, 7)], ["float32"] * 2, {"source": "state"})     # no previous state: 4U rows
    ((8, 7), 'float32')
    """
    def shape(shapes, dtypes, attrs):
        source = attrs["source"]
        at = GRADIENT_SOURCES[source]
        if len(shapes) not in (at + 1, at + 2):
            raise OpShapeError(f"expected {at} gradient operand(s), the state and optionally the previous "
                               f"state, got {len(shapes)} operands")
        units, batch = shapes[at][0] // rows, shapes[at][1]
        for s, what in zip(shapes[at:], ("the state", "the previous state")):
            check(s, units, batch, what)
        if source == "state":
            check(shapes[0], units, batch, "the state's gradient")
        elif source == "last" and tuple(shapes[0]) != (batch, units):
            raise OpShapeError(f"the output's gradient has shape {fmt_shape(shapes[0])}, expected "
                               f"{fmt_shape((batch, units))}")
        elif source == "next" and (tuple(shapes[0]) != (5 * units, batch) or shapes[1][1] != 4 * units):
            raise OpShapeError(f"expected the next step's gradient block {fmt_shape((5 * units, batch))} and "
                               f"the stacked weights (K, {4 * units}), got {fmt_shape(shapes[0])} and "
                               f"{fmt_shape(shapes[1])}")
        carried = len(shapes) == at + 2
        return ((5 if carried else 4) * units, batch), same_dtype(dtypes, *range(len(shapes)))
    return shape


def _delta_units(delta, carried: bool):
    """Units of a step gradient block: 5U rows with the carried dc, else 4U."""
    parts = 5 if carried else 4
    if len(delta) != 2 or delta[0] % parts:
        raise OpShapeError(f"the step gradient has shape {fmt_shape(delta)}, expected "
                           f"({parts}U, N)")
    return delta[0] // parts


def _x_grad_shape(shapes, dtypes, attrs):
    delta, ws = shapes
    units = ws[1] // 4
    if len(delta) != 2 or delta[0] not in (4 * units, 5 * units):
        raise OpShapeError(f"the step gradient has shape {fmt_shape(delta)}, expected "
                           f"({4 * units} or {5 * units}, N)")
    return (delta[1], 1, attrs["features"]), same_dtype(dtypes, 0, 1)


register(OpDef("step_input_grad", 2, _x_grad_shape, kind="gradient", attrs={"features": _count},
               flops=lambda ins, out, a: 2 * ins[1][1] * a["features"],
               doc="x_t's gradient (N, 1, F): W_scaled dz, transposed."))


def _sum_shape(shapes, dtypes, attrs):
    accumulate = attrs["accumulate"]
    recurrent = len(shapes) - 2 - accumulate          # the previous state, or none
    if recurrent not in (0, 1):
        raise OpShapeError(f"expected the step gradient, x, optionally the previous state"
                           f"{' and the running sum' * accumulate}, got {len(shapes)} operands")
    units = _delta_units(shapes[0], recurrent)
    out = (attrs["rows"], 4 * units)
    if accumulate and tuple(shapes[-1]) != out:
        raise OpShapeError(f"the running sum has shape {fmt_shape(shapes[-1])}, expected {fmt_shape(out)}")
    return out, same_dtype(dtypes, *range(len(shapes)))


def _sum_scratch(in_shapes, out_shape, attrs, dtype):
    units, (batch, _, features) = out_shape[1] // 4, in_shapes[1]
    recurrent = len(in_shapes) - 2 - attrs["accumulate"]
    return [((features + 1 + units * recurrent, batch), dtype)]       # [x_t; 1; h_prev]


register(OpDef("step_weights_sum", None, _sum_shape, kind="gradient",
               attrs={"step": _step, "rows": _count,
                      "accumulate": Attr(False, lambda v: isinstance(v, bool), "True or False")},
               scratch=_sum_scratch, flops=lambda ins, out, a: 2 * out[0] * out[1],
               doc="The stacked weights' gradient summed from step t on: [x_t; 1; h_prev] dz_t^T "
                   "(rows past the inputs it has are zero), plus the later steps' sum "
                   "(accumulate)."))


# ------------------------------------------------------------------ outputs

def register_outputs(prefix: str, rows: int, label: str) -> None:
    """``{prefix}_last`` and ``{prefix}_sequence`` (h of the last state, of every
    state) and their gradients, for a state of ``rows`` rows per unit, h last.
    The GRU's (rows 5), registered by compiler/ops/gru.py:

    >>> from graphnn.compiler.ops import OPS
    >>> OPS["gru_last"].infer([(10, 7)], ["float32"], {})                   # (5U, N) -> (N, U)
    ((7, 2), 'float32')
    >>> OPS["gru_sequence"].infer([(10, 7)] * 3, ["float32"] * 3, {})      # (N, T, U)
    ((7, 3, 2), 'float32')
    >>> OPS["gru_last_grad"].infer([(7, 2)], ["float32"], {})
    ((10, 7), 'float32')
    """
    def last_shape(shapes, dtypes, attrs):
        (s,) = shapes
        if len(s) != 2 or s[0] % rows:
            raise OpShapeError(f"expected {label} state ({rows}U, N), got {fmt_shape(s)}")
        return (s[1], s[0] // rows), dtypes[0]

    def sequence_shape(shapes, dtypes, attrs):
        for s in shapes:
            if s != shapes[0]:
                raise OpShapeError(f"the states differ in shape: {fmt_shape(s)} and {fmt_shape(shapes[0])}")
        (batch, units), _dtype = last_shape(shapes[:1], dtypes, attrs)
        return (batch, len(shapes), units), same_dtype(dtypes, *range(len(shapes)))

    register(OpDef(f"{prefix}_last", 1, last_shape, fusion="injective",
                   vjp=lambda ctx, ins, out, dy, a: [ctx.emit(f"{prefix}_last_grad", [dy])],
                   doc=f"h of {label} state, (N, U)."))
    register(OpDef(f"{prefix}_sequence", None, sequence_shape, fusion="injective",
                   vjp=lambda ctx, ins, out, dy, a: [ctx.emit(f"{prefix}_sequence_grad", [dy], step=t)
                                                     for t in range(len(ins))],
                   doc="h of every step's state, (N, T, U)."))
    register(OpDef(f"{prefix}_last_grad", 1, lambda s, d, a: ((rows * s[0][1], s[0][0]), d[0]),
                   kind="gradient", fusion="injective",
                   doc="A state's gradient from its h's: zero but the h rows."))
    register(OpDef(f"{prefix}_sequence_grad", 1, lambda s, d, a: ((rows * s[0][2], s[0][0]), d[0]),
                   kind="gradient", fusion="injective", attrs={"step": _step},
                   doc="Step t's state gradient from the sequence's: zero but the h rows."))

