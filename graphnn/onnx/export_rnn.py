"""ONNX forms of the LSTM scan (compiler/ops/lstm_scan.py) and the GRU cell ops
(compiler/ops/gru.py), step by step.

The stacked weights WS = [W; b; U] (gate columns i, f, o, g; the sigmoid gates'
halved) are computed from parameters alone, so the exporter writes them as one
initializer; each step reads its rows with Slice. A step is written batch-major
with plain ops: z' = x_t W' + b' + h U', one Tanh over the gates, sigmoid =
0.5 tanh + 0.5, c = f c_prev + i g, h = o tanh(c) (the GRU's likewise). Only these
converters read a state: in the ONNX graph the scan is its steps' h
(``<scan>/h<t>``) and c, a GRU state its h (named after the cell node).

>>> from graphnn import Graph, Model
>>> from graphnn.onnx.exporter import export_model
>>> g = Graph(); x = g.input("x", (None, 2, 3))
>>> m = Model(g, x, g.lstm(x, 4, name="rnn"))
>>> sorted({n.op_type for n in export_model(m).graph.node})
['Add', 'Flatten', 'Identity', 'MatMul', 'Mul', 'Slice', 'Tanh']
"""
from __future__ import annotations

import numpy as np


def _rows(w, node, ws, start, stop, tag):
    """Rows [start, stop) of the stacked weights, sliced once for all the steps
    (named after the weights node; ``node`` only says who asks first)."""
    name = f"{ws}/{tag}"
    if name not in w.shared:
        w.shared.add(name)
        w.node("Slice", [ws, w.ints(f"{name}_starts", [start]), w.ints(f"{name}_ends", [stop]),
                         w.ints(f"{name}_axes", [0])], name)
    return name


def _cols(w, node, v, start, stop, tag):
    return w.node("Slice", [v, w.ints(f"{node}/{tag}_starts", [start]), w.ints(f"{node}/{tag}_ends", [stop]),
                            w.ints(f"{node}/{tag}_axes", [1])], f"{node}/{tag}")


def _preactivation(w, node, stacked, x, prev, t, units, features):
    """[x_t; 1; h_prev] times the stacked weights' rows, as ONNX ops: x_t W + b
    (+ h_prev U), (N, gate columns)."""
    xt = w.node("Flatten", [_cols(w, node, x, t, t + 1, "x_t")], f"{node}/x", axis=1)     # (N, F)
    z = w.node("MatMul", [xt, _rows(w, node, stacked, 0, features, "W")], f"{node}/xW")
    z = w.node("Add", [z, _rows(w, node, stacked, features, features + 1, "b")], f"{node}/xWb")
    if prev is not None:
        hu = w.node("MatMul", [prev, _rows(w, node, stacked, features + 1, features + 1 + units, "U")],
                    f"{node}/hU")
        z = w.node("Add", [z, hu], f"{node}/z")
    return z


def lstm_scan(w, node, ins, a):
    """Every step unrolled: step t's h is ``<node>/h<t>`` (what lstm_last and
    lstm_sequence read) and its c ``<node>/c<t>``. The exported model, run by
    onnx's reference evaluator, gives what the model does:

    >>> import numpy as np
    >>> from onnx.reference import ReferenceEvaluator
    >>> from graphnn import Graph, Model
    >>> from graphnn.onnx.exporter import export_model
    >>> g = Graph(); x = g.input("x", (None, 2, 3)); m = Model(g, x, g.lstm(x, 4, name="rnn"))
    >>> proto = export_model(m)
    >>> sorted(n.name for n in proto.graph.node if n.name.startswith(("rnn/scan/h", "rnn/scan/c")))
    ['rnn/scan/h0', 'rnn/scan/h1']
    >>> xs = np.random.default_rng(0).normal(size=(5, 2, 3)).astype("float32")
    >>> np.allclose(ReferenceEvaluator(proto).run(None, {"x": xs})[0], m.predict(xs), atol=1e-5)
    True
    """
    ws, x = ins
    units, (steps, features) = w.shape(ws)[1] // 4, w.shape(x)[1:]
    half = w.const(f"{node}/half", np.asarray(0.5, dtype=w.dtype(node)))
    h = c = None
    for t in range(steps):
        step = f"{node}/{t}"
        z = _preactivation(w, step, ws, x, h, t, units, features)
        tz = w.node("Tanh", [z], f"{step}/tanh_z")
        s = w.node("Add", [w.node("Mul", [tz, half], f"{step}/half_tanh"), half], f"{step}/sigmoid")
        i, f, o = (_cols(w, step, s, k * units, (k + 1) * units, name) for k, name in ((0, "i"), (1, "f"), (2, "o")))
        ig = w.node("Mul", [i, _cols(w, step, tz, 3 * units, 4 * units, "g")], f"{step}/ig")
        c = ig if c is None else w.node("Add", [w.node("Mul", [f, c], f"{step}/fc"), ig], f"{step}/c")
        h = w.node("Mul", [o, w.node("Tanh", [c], f"{step}/tanh_c")], f"{node}/h{t}")


def gru_cell(w, node, ins, a):
    """GS's columns: r, z (halved), x's n part, h's n part (compiler/ops/gru.py).
    Each step's h is named after its cell node; checked with onnx's reference evaluator:

    >>> import numpy as np
    >>> from onnx.reference import ReferenceEvaluator
    >>> from graphnn import Graph, Model
    >>> from graphnn.onnx.exporter import export_model
    >>> g = Graph(); x = g.input("x", (None, 3, 2))
    >>> m = Model(g, x, g.gru(x, 4, name="rnn", return_sequences=True)); proto = export_model(m)
    >>> [(n.name, n.op_type) for n in proto.graph.node if n.name in ("rnn/cell0", "rnn/cell1")]
    [('rnn/cell0', 'Sub'), ('rnn/cell1', 'Add')]
    >>> xs = np.random.default_rng(0).normal(size=(5, 3, 2)).astype("float32")
    >>> np.allclose(ReferenceEvaluator(proto).run(None, {"x": xs})[0], m.predict(xs), atol=1e-5)
    True
    """
    gs, x, prev = ins[0], ins[1], (ins[2] if len(ins) == 3 else None)
    units, features = w.shape(gs)[1] // 4, w.shape(x)[2]
    half = w.const(f"{node}/half", np.asarray(0.5, dtype=w.dtype(node)))
    z = _preactivation(w, node, gs, x, prev, a["step"], units, features)
    rz = w.node("Tanh", [_cols(w, node, z, 0, 2 * units, "rz_in")], f"{node}/tanh_rz")
    rz = w.node("Add", [w.node("Mul", [rz, half], f"{node}/half_tanh"), half], f"{node}/rz")
    r, u = _cols(w, node, rz, 0, units, "r"), _cols(w, node, rz, units, 2 * units, "u")
    gated = w.node("Mul", [r, _cols(w, node, z, 3 * units, 4 * units, "hn")], f"{node}/r_hn")
    n = w.node("Tanh", [w.node("Add", [_cols(w, node, z, 2 * units, 3 * units, "xn"), gated],
                               f"{node}/n_in")], f"{node}/n")
    if prev is None:                                    # h' = n - z n
        return w.node("Sub", [n, w.node("Mul", [u, n], f"{node}/zn")], node)
    diff = w.node("Sub", [prev, n], f"{node}/h_minus_n")
    return w.node("Add", [n, w.node("Mul", [u, diff], f"{node}/zd")], node)


def _last(w, node, ins, a):
    return w.node("Identity", ins, node)


def _sequence(w, node, ins, a):
    axis = w.ints(f"{node}/axis", [1])
    rows = [w.node("Unsqueeze", [h, axis], f"{node}/{k}") for k, h in enumerate(ins)]
    return w.node("Concat", rows, node, axis=1) if len(rows) > 1 else w.node("Identity", rows, node)


def lstm_last(w, node, ins, a):
    """The scan's last h, ``<scan>/h<T-1>``, under the node's name.

    >>> from graphnn import Graph, Model
    >>> from graphnn.onnx.exporter import export_model
    >>> g = Graph(); x = g.input("x", (None, 2, 3)); m = Model(g, x, g.lstm(x, 4, name="rnn"))
    >>> [(n.op_type, list(n.input)) for n in export_model(m).graph.node if n.name == "rnn/h"]
    [('Identity', ['rnn/scan/h1'])]
    """
    return _last(w, node, [f"{ins[0]}/h{a['steps'] - 1}"], a)


def lstm_sequence(w, node, ins, a):
    """Every step's h, (N, T, U): each unsqueezed at axis 1, then concatenated.

    >>> from graphnn import Graph, Model
    >>> from graphnn.onnx.exporter import export_model
    >>> g = Graph(); x = g.input("x", (None, 2, 3))
    >>> proto = export_model(Model(g, x, g.lstm(x, 4, name="rnn", return_sequences=True)))
    >>> [(n.op_type, list(n.input)) for n in proto.graph.node if n.name.startswith("rnn/sequence")]
    [('Unsqueeze', ['rnn/scan/h0', 'rnn/sequence/axis']), ('Unsqueeze', ['rnn/scan/h1', 'rnn/sequence/axis']),
     ('Concat', ['rnn/sequence/0', 'rnn/sequence/1'])]
    """
    return _sequence(w, node, [f"{ins[0]}/h{t}" for t in range(a["steps"])], a)


EXPORTERS = {"lstm_scan": lstm_scan, "lstm_last": lstm_last, "lstm_sequence": lstm_sequence,
             "gru_cell": gru_cell, "gru_last": _last, "gru_sequence": _sequence}
