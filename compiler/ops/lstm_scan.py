"""The LSTM as one op over the whole sequence: a scan, and its reverse (BPTT).

``graphnn/recurrent.py`` builds an LSTM of U units over x (N, T, F) as

- ``WS = lstm_weights(W, b[, U])`` (compiler/ops/recurrent.py): [W; b; U] stacked,
  (K, 4U), K = F + 1 (+ U when T > 1), gate columns i, f, o, g, the sigmoid
  gates' halved;
- ``S = lstm_scan(WS, x)``: every step at once. S (T 6U + (T + 1) K', N), K' =
  F + 1 + U, batch last, holds what the backward pass reads, in two regions:

  * the gates: per step t a (6U, N) block [i, f, o, g, c_t-1, tanh c_t];
  * the stacks: (K', T + 1, N), column block t is [x_t; 1; h_t-1], the operand of
    step t's product WS^T [x_t; 1; h_t-1] (h_-1 = 0), and block T holds h_T-1.

  For evaluation and prediction (``keep=False``, the ``inference`` hook) S is the
  stacks alone: the gate blocks take turns in scratch;
- ``lstm_last(S)`` (N, U) or ``lstm_sequence(S)`` (N, T, U): h, read from the stacks.

Its gradient: ``lstm_scan_grad`` runs the steps backwards and keeps every step's
gate pre-activation gradients dz, D (4U, T, N); then the stacked weights' gradient
is one GEMM over all T N columns, stacks (K, T N) times D^T
(``lstm_scan_weights_grad``), and x's is one more, WS's x rows times D
(``lstm_scan_input_grad``). Nothing else reads S's gate region.

>>> from graphnn.compiler.ops import OPS
>>> OPS["lstm_scan"].infer([(6, 8), (None, 3, 3)], ["float32"] * 2, {"keep": True})
((60, None), 'float32')
>>> OPS["lstm_last"].infer([(60, None)], ["float32"], {"steps": 3, "units": 2})
((None, 2), 'float32')
"""
from __future__ import annotations

from ..errors import GraphError, OpShapeError, Problem
from ..ir import operands
from .base import Attr, OpDef, fmt_shape, register, same_dtype

_count = Attr(check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
              expect="a positive int")
SOURCES = ("last", "sequence", "state")     # what lstm_scan_grad's third operand is


def scan_rows(steps: int, units: int, features: int, keep: bool = True) -> int:
    """Rows of a scan's S: T blocks of 6U gate rows (when it keeps them for the
    backward pass), then T + 1 stacks of F + 1 + U.

    >>> scan_rows(3, 2, 3), scan_rows(3, 2, 3, keep=False)
    (60, 24)
    """
    return steps * 6 * units * keep + (steps + 1) * (features + 1 + units)


def scan_features(rows: int, steps: int, units: int) -> int | None:
    """The features F of a scan's S with ``rows`` rows, or None when no F fits.

    >>> scan_features(60, 3, 2)
    3
    """
    stacks, rest = divmod(rows - steps * 6 * units, steps + 1)
    features = stacks - 1 - units
    return features if rest == 0 and features > 0 else None


def _units(ws) -> int:
    if len(ws) != 2 or ws[1] % 4:
        raise OpShapeError(f"the stacked weights must be (rows, 4 units), got {fmt_shape(ws)}")
    return ws[1] // 4


def _check_ws(ws, x):
    """(units, steps, features) of the stacked weights ``ws`` over the sequence ``x``."""
    units = _units(ws)
    if len(x) != 3 or None in x[1:]:
        raise OpShapeError(f"x must be a sequence (N, T, features), got {fmt_shape(x)}")
    steps, features = x[1], x[2]
    need = features + 1 + (units if steps > 1 else 0)
    if ws[0] != need:
        raise OpShapeError(f"the stacked weights have {ws[0]} rows, expected {need} ({features} "
                           f"features, the bias{', ' + str(units) + ' units' if steps > 1 else ''})")
    return units, steps, features


def _scan_shape(shapes, dtypes, attrs):
    if len(shapes) != 2:
        raise OpShapeError(f"expected WS and x, got {len(shapes)} operands")
    units, steps, features = _check_ws(*shapes)
    return (scan_rows(steps, units, features, attrs["keep"]), shapes[1][0]), same_dtype(dtypes, 0, 1)


def _scan_scratch(in_shapes, out_shape, attrs, dtype):
    """[i g; f c_t-1] and the last c; without ``keep``, two gate blocks taking turns."""
    units = _units(in_shapes[0])
    return [(((3 + 12 * (not attrs["keep"])) * units, in_shapes[1][0]), dtype)]


def _lean(rw, node, ins, attrs):
    """Evaluation and prediction: no backward pass reads the gate blocks, so the
    scan keeps two in scratch (the stacks, which hold h, stay in S)."""
    rw.become(node, "lstm_scan", ins, keep=False)


def _check_kept(g, scan):
    """A scan on the gradient's path must keep its gate blocks (a hand-built
    graph may say keep=False, which only the inference hook should)."""
    d = g.nodes[scan]
    if d["op"] == "lstm_scan" and not d.get("keep", True):
        raise GraphError([Problem(scan, "lstm_scan", "keep=False keeps no gate blocks for the backward "
                                  "pass; a scan that is trained needs keep=True (the default: evaluation "
                                  "and prediction drop them themselves)", d.get("source"))])


def _scan_vjp(ctx, ins, out, dy, attrs):
    """lstm_scan_grad, then the weights' and x's gradients from its D. When S's
    gradient is only its h's (lstm_last's or lstm_sequence's), the scan's
    gradient reads that directly and the padded S-sized gradient is pruned."""
    ws, _x = ins
    _check_kept(ctx.g, out)
    made_by = ctx.g.nodes[dy]["op"]
    if made_by in ("lstm_last_grad", "lstm_sequence_grad"):
        source, grad = made_by.split("_")[1], operands(ctx.g, dy)[0]
    else:
        source, grad = "state", dy
    d = ctx.emit("lstm_scan_grad", [ws, out, grad], source=source, steps=ctx.shape(ins[1])[1])
    dws = ctx.emit("lstm_scan_weights_grad", [out, d], rows=ctx.shape(ws)[0])
    dx = ctx.emit("lstm_scan_input_grad", [ws, d] + ([grad] if source == "state" else []))
    return [dws, dx]


register(OpDef("lstm_scan", 2, _scan_shape, vjp=_scan_vjp, scratch=_scan_scratch, inference=_lean,
               loops="steps",
               attrs={"keep": Attr(True, lambda v: isinstance(v, bool), "True or False")},
               flops=lambda ins, out, a: ins[1][1] * (2 * ins[0][0] * ins[0][1] + 3 * ins[0][1]),
               doc="Every LSTM step over x (N, T, F): the gate states [i f o g c_t-1 tanh c_t] of each "
                   "step, then the steps' stacks [x_t; 1; h_t-1] and h_T-1, (T 6U + (T+1)(F+1+U), N)."))


# ------------------------------------------------------------------ outputs

def _state_layout(s, steps, units, lean_too=False):
    """The features of a scan state ``s`` of ``steps`` and ``units`` (kept gate
    blocks, or with ``lean_too`` none), or an error."""
    features = scan_features(s[0], steps, units) if len(s) == 2 else None
    if features is None and lean_too and len(s) == 2 and s[0] % (steps + 1) == 0:
        features = s[0] // (steps + 1) - 1 - units
        features = features if features > 0 else None
    if features is None:
        raise OpShapeError(f"expected an LSTM scan state of {steps} steps and {units} units, "
                           f"got {fmt_shape(s)}")
    return features


def _last_shape(shapes, dtypes, attrs):
    (s,) = shapes
    _state_layout(s, attrs["steps"], attrs["units"], lean_too=True)
    return (s[1], attrs["units"]), dtypes[0]


def _sequence_shape(shapes, dtypes, attrs):
    (s,) = shapes
    _state_layout(s, attrs["steps"], attrs["units"], lean_too=True)
    return (s[1], attrs["steps"], attrs["units"]), dtypes[0]


def _reader_vjp(name):
    def vjp(ctx, ins, out, dy, attrs):
        _check_kept(ctx.g, ins[0])                  # before a padded gradient of the wrong size
        return [ctx.emit(f"{name}_grad", [dy], rows=ctx.shape(ins[0])[0], steps=attrs["steps"])]
    return vjp


def _padded_shape(shapes, dtypes, attrs):
    dy = shapes[0]
    units, steps = dy[-1], attrs["steps"]
    if scan_features(attrs["rows"], steps, units) is None:
        raise OpShapeError(f"{attrs['rows']} rows fit no LSTM scan state of {steps} steps and {units} units")
    return (attrs["rows"], dy[0]), dtypes[0]


_shape_attrs = {"steps": _count, "units": _count}
register(OpDef("lstm_last", 1, _last_shape, attrs=_shape_attrs, fusion="injective",
               vjp=_reader_vjp("lstm_last"), doc="h of an LSTM scan's last step, (N, U)."))
register(OpDef("lstm_sequence", 1, _sequence_shape, attrs=_shape_attrs, fusion="injective",
               vjp=_reader_vjp("lstm_sequence"), doc="h of every step of an LSTM scan, (N, T, U)."))
for _name in ("lstm_last", "lstm_sequence"):
    register(OpDef(f"{_name}_grad", 1, _padded_shape, kind="gradient", fusion="injective",
                   attrs={"rows": _count, "steps": _count},
                   doc=f"The scan state's gradient from {_name}'s: zero but the h rows "
                       "(pruned when the scan's gradient reads h's gradient itself)."))


# ------------------------------------------------------------------ gradients

def _grad_shape(shapes, dtypes, attrs):
    if len(shapes) != 3:
        raise OpShapeError(f"expected WS, the scan state and its gradient, got {len(shapes)} operands")
    ws, s, g = shapes
    units, steps, source = _units(ws), attrs["steps"], attrs["source"]
    features = _state_layout(s, steps, units)
    _check_ws(ws, (None, steps, features))
    expect = {"last": (s[1], units), "sequence": (s[1], steps, units), "state": tuple(s)}[source]
    if tuple(g) != expect:
        raise OpShapeError(f"the {source}'s gradient has shape {fmt_shape(g)}, expected {fmt_shape(expect)}")
    return (4 * units, steps, s[1]), same_dtype(dtypes, 0, 1, 2)


def _grad_scratch(in_shapes, out_shape, attrs, dtype):
    units = out_shape[0] // 4
    # dz, dh, dc, the carried dc, 4U temporaries, and the step's dz' contiguous (4U)
    return [((15 * units, out_shape[2]), dtype)]


register(OpDef("lstm_scan_grad", 3, _grad_shape, kind="gradient", scratch=_grad_scratch, loops="steps back",
               attrs={"source": Attr(check=lambda v: v in SOURCES, expect=f"one of {list(SOURCES)}"),
                      "steps": _count},
               flops=lambda ins, out, a: out[1] * 2 * out[0] * out[0] // 4,
               doc="Backpropagation through the scan's steps, last first: every step's scaled "
                   "gate pre-activation gradients, D (4U, T, N), from h's gradient (source 'last': "
                   "(N, U), 'sequence': (N, T, U)) or the whole state's ('state')."))


def _weights_grad_shape(shapes, dtypes, attrs):
    s, d = shapes
    if len(d) != 3 or d[0] % 4:
        raise OpShapeError(f"D must be (4U, T, N), got {fmt_shape(d)}")
    features = _state_layout(s, d[1], d[0] // 4)
    _check_ws((attrs["rows"], d[0]), (None, d[1], features))
    return (attrs["rows"], d[0]), same_dtype(dtypes, 0, 1)


register(OpDef("lstm_scan_weights_grad", 2, _weights_grad_shape, kind="gradient", attrs={"rows": _count},
               flops=lambda ins, out, a: 2 * out[0] * out[1] * ins[1][1],
               doc="The stacked weights' gradient: the stacks [x_t; 1; h_t-1] of all steps "
                   "(K, T N) times D^T, one GEMM."))


def _input_grad_shape(shapes, dtypes, attrs):
    if len(shapes) not in (2, 3):
        raise OpShapeError(f"expected WS, D and optionally the state's gradient, got {len(shapes)} operands")
    ws, d = shapes[:2]
    units = _units(ws)
    if len(d) != 3 or d[0] != 4 * units:
        raise OpShapeError(f"D has shape {fmt_shape(d)}, expected ({4 * units}, T, N)")
    features = ws[0] - 1 - (units if d[1] > 1 else 0)
    return (d[2], d[1], features), same_dtype(dtypes, *range(len(shapes)))


def _input_grad_scratch(in_shapes, out_shape, attrs, dtype):
    batch, steps, features = out_shape
    return [((features * steps, batch), dtype)]          # (F, T, N), then transposed into dx


register(OpDef("lstm_scan_input_grad", None, _input_grad_shape, kind="gradient",
               scratch=_input_grad_scratch,
               flops=lambda ins, out, a: 2 * out[2] * ins[0][1] * out[1],
               doc="x's gradient (N, T, F): WS's x rows times D, one GEMM (plus the x rows of "
                   "the state's own gradient, when given)."))
