"""The LSTM's scan ops (compiler/ops/lstm_scan.py, runtime/kernels/lstm_scan.py):
the kernels against a plain float64 NumPy LSTM and its hand-written backward pass,
the gradient's three sources against each other, the training graph's shape (one
scan, one backward loop, one weights GEMM, no padded state gradient), stacked
layers, bad operands, and the views' loop. Finite differences over whole graphs:
tests/graphnn/test_recurrent.py, test_recurrent_cells.py; over the ops alone:
tests/compiler/test_op_table.py; PyTorch: tests/parity/test_recurrent.py."""
from __future__ import annotations

import re

import numpy as np
import pytest
from graphnn.compiler.errors import OpShapeError
from graphnn.compiler.ops import OPS
from graphnn.runtime.kernels import KERNELS, bind

from graphnn import Graph, Model, plot_model

N, T, F, U = 5, 4, 3, 6


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _reference(x, w, u, b, dh_seq):
    """A plain LSTM in PyTorch's layout (gates i, f, g, o, unscaled), forward and
    backward by hand: the hidden states (N, T, U) and the gradients of W, U, b and
    x for the loss sum(h * dh_seq)."""
    n, steps, _ = x.shape
    h, c = np.zeros((n, U)), np.zeros((n, U))
    saved, hs = [], []
    for t in range(steps):
        z = x[:, t] @ w + h @ u + b
        i, f, g, o = _sigmoid(z[:, :U]), _sigmoid(z[:, U:2 * U]), np.tanh(z[:, 2 * U:3 * U]), _sigmoid(z[:, 3 * U:])
        saved.append((h, c, i, f, g, o))
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    dw, du, db, dx = np.zeros_like(w), np.zeros_like(u), np.zeros_like(b), np.zeros_like(x)
    dh_next, dc_next = np.zeros((n, U)), np.zeros((n, U))
    for t in reversed(range(steps)):
        h_prev, c_prev, i, f, g, o = saved[t]
        c = f * c_prev + i * g
        dh = dh_seq[:, t] + dh_next
        dc = dh * o * (1 - np.tanh(c) ** 2) + dc_next
        dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                             dh * np.tanh(c) * o * (1 - o)], axis=1)
        dw += x[:, t].T @ dz
        du += h_prev.T @ dz
        db += dz.sum(0)
        dx[:, t] = dz @ w.T
        dh_next, dc_next = dz @ u.T, dc * f
    return np.stack(hs, axis=1), (dw, du, db, dx)


def _weights(rng):
    return rng.normal(scale=0.5, size=(F, 4 * U)), rng.normal(scale=0.5, size=(U, 4 * U)), rng.normal(size=4 * U)


def _run(name, ins, out_shape, attrs=None):
    attrs = attrs or {}
    factory = KERNELS[name]
    scratch = OPS[name].scratch_buffers([a.shape for a in ins], out_shape, attrs, "float64")
    out = np.full(out_shape, np.nan)
    bind(factory, ins, [out, *(np.full(s, np.nan) for s, _ in scratch)], attrs)()
    return out


def _scan(x, w, u, b):
    ws = _run("lstm_weights", [w, b, u], (F + 1 + U, 4 * U))
    rows = OPS["lstm_scan"].infer([ws.shape, (None, T, F)], ["float64"] * 2, {"keep": True})[0][0]
    return ws, _run("lstm_scan", [ws, x], (rows, N), {"keep": True})


@pytest.mark.parametrize("source", ["last", "sequence", "state"])
def test_the_kernels_match_a_numpy_lstm_and_its_backward_pass(source):
    """Forward h and the gradients of W, U, b and x, through the scan, its
    gradient, the weights' GEMM, the input GEMM and lstm_weights' gradient, from
    h's gradient given three ways: the last step's, every step's, or the whole
    state's (zero but its h rows)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, T, F))
    w, u, b = _weights(rng)
    dh_seq = rng.normal(size=(N, T, U))
    if source == "last":
        dh_seq[:, :-1] = 0.0
    hs, expected = _reference(x, w, u, b, dh_seq)
    ws, s = _scan(x, w, u, b)
    np.testing.assert_allclose(_run("lstm_sequence", [s], (N, T, U), {"steps": T, "units": U}), hs, rtol=1e-12)
    np.testing.assert_allclose(_run("lstm_last", [s], (N, U), {"steps": T, "units": U}), hs[:, -1], rtol=1e-12)
    grad = {"last": dh_seq[:, -1], "sequence": dh_seq,
            "state": _run("lstm_sequence_grad", [dh_seq], s.shape, {"rows": s.shape[0], "steps": T})}[source]
    d = _run("lstm_scan_grad", [ws, s, grad], (4 * U, T, N), {"source": source, "steps": T})
    dws = _run("lstm_scan_weights_grad", [s, d], ws.shape, {"rows": ws.shape[0]})
    got = [_run("lstm_weights_grad", [dws], shape, {"part": k, "features": F})
           for k, shape in enumerate([(F, 4 * U), (4 * U,), (U, 4 * U)])]
    got = [got[0], got[2], got[1]]
    got.append(_run("lstm_scan_input_grad", [ws, d] + ([grad] if source == "state" else []), (N, T, F)))
    for name, a, e in zip(("W", "U", "b", "x"), got, expected):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=name)


def test_the_state_sources_own_rows_reach_x():
    """With source 'state' the stacks' x rows of S's gradient are x's gradient too
    (S holds x_t in its stacks): their sum, on top of the GEMM's."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, T, F))
    ws, s = _scan(x, *_weights(rng))
    zero_h = np.zeros_like(s)
    x_rows = zero_h.copy()
    stacks = x_rows[T * 6 * U:].reshape(F + 1 + U, T + 1, N)
    stacks[:F, :T] = rng.normal(size=(F, T, N))
    d = _run("lstm_scan_grad", [ws, s, zero_h], (4 * U, T, N), {"source": "state", "steps": T})
    assert not d.any()
    dx = _run("lstm_scan_input_grad", [ws, d, x_rows], (N, T, F))
    np.testing.assert_array_equal(dx, stacks[:F, :T].transpose(2, 1, 0))


@pytest.mark.parametrize("sequences", [False, True])
def test_prediction_keeps_no_gate_blocks(sequences):
    """Evaluation and prediction programs run the scan without keeping the gate
    blocks (two take turns in scratch): S is the stacks alone, the output the
    reference LSTM's."""
    rng = np.random.default_rng(2)
    g = Graph(dtype="float64")
    x = g.input("x", (None, T, F))
    model = Model(g, x, g.lstm(x, U, return_sequences=sequences, name="rnn"))
    w, u, b = (model.variables[f"rnn/{p}"] for p in "WUb")
    xs = rng.normal(size=(N, T, F))
    hs, _ = _reference(xs, w, u, b, np.zeros((N, T, U)))
    np.testing.assert_allclose(model.predict(xs), hs if sequences else hs[:, -1], rtol=1e-12)
    program = model.program("predict", N)
    (scan,) = [i for i in program.instructions if i.kernel == "lstm_scan"]
    assert scan.attrs["keep"] is False
    assert program.buffers[scan.outputs[0]].shape == ((T + 1) * (F + 1 + U), N)


def _train_graph(first_sequences=False, stacked=False):
    g = Graph()
    x = g.input("x", (None, T, F))
    h = g.lstm(x, U, return_sequences=first_sequences or stacked, name="rnn")
    if stacked:
        h = g.lstm(h, 3, name="top")
    model = Model(g, x, g.dense(h, 2, name="head"))
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    train = model._build(((None,), "int64", False))["train"]
    return train, {n: d["op"] for n, d in train.nodes(data=True)}


def test_a_training_graph_is_one_scan_and_one_loop_back():
    """No padded state gradient (the loop reads h's gradient), no input GEMM (x is
    an input), one GEMM for the stacked weights' gradient."""
    train, ops = _train_graph()
    counts = {op: list(ops.values()).count(op) for op in set(ops.values()) if op.startswith("lstm")}
    assert counts == {"lstm_weights": 1, "lstm_scan": 1, "lstm_last": 1, "lstm_scan_grad": 1,
                      "lstm_scan_weights_grad": 1, "lstm_weights_grad": 3}
    (grad,) = [n for n, op in ops.items() if op == "lstm_scan_grad"]
    assert train.nodes[grad]["source"] == "last"


def test_a_stacked_layer_reads_the_sequence_gradient():
    """The lower layer's loop reads the upper layer's input gradient as h's
    gradient at every step."""
    train, ops = _train_graph(stacked=True)
    grads = {n.split("/")[0]: train.nodes[n]["source"] for n, op in ops.items() if op == "lstm_scan_grad"}
    assert grads == {"rnn": "sequence", "top": "last"}
    assert [n.split("/")[0] for n, op in ops.items() if op == "lstm_scan_input_grad"] == ["top"]
    assert "lstm_sequence_grad" not in ops.values()


def test_bad_operands_are_refused_with_the_operand_named():
    scan, grad = OPS["lstm_scan"], OPS["lstm_scan_grad"]
    with pytest.raises(OpShapeError, match="stacked weights have 7 rows, expected 6"):
        scan.infer([(7, 8), (None, 3, 3)], ["float32"] * 2, {"keep": True})
    with pytest.raises(OpShapeError, match="x must be a sequence"):
        scan.infer([(6, 8), (None, 3)], ["float32"] * 2, {"keep": True})
    with pytest.raises(OpShapeError, match="expected an LSTM scan state of 3 steps and 2 units"):
        OPS["lstm_last"].infer([(61, None)], ["float32"], {"steps": 3, "units": 2})
    with pytest.raises(OpShapeError, match="the last's gradient has shape \\(N, 3\\), expected \\(N, 2\\)"):
        grad.infer([(6, 8), (60, None), (None, 3)], ["float32"] * 3, {"source": "last", "steps": 3})
    assert grad.infer([(6, 8), (60, None), (None, 3, 2)], ["float32"] * 3,
                      {"source": "sequence", "steps": 3}) == ((8, 3, None), "float32")


@pytest.mark.parametrize("view", ["layers", "training", "compiled"])
def test_the_views_draw_the_scan_as_one_box_with_a_loop(view):
    g = Graph()
    x = g.input("rows", (None, 6, 3))
    model = Model(g, x, g.dense(g.lstm(x, 4, name="rnn"), 2, name="head"))
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    dot = plot_model(model, expand_nested=True) if view == "layers" else plot_model(model, view=view)
    box = {"layers": r"scan \(lstm_scan\)", "training": r"scan\n", "compiled": r"\d+: lstm_scan\n"}[view]
    (scan,) = re.findall(rf'(\w+) \[label="{box}', dot.source)
    assert re.search(rf'{scan} -> {scan} \[label="x 6 steps"', dot.source)
    assert "unrolled" not in dot.source
    if view != "layers":
        (back,) = re.findall(r'(\w+) \[label="(?:\d+: )?(?:scan/grad_)?lstm_scan_grad\n', dot.source)
        assert re.search(rf'{back} -> {back} \[label="x 6 steps back"', dot.source)


@pytest.mark.parametrize("view", ["training", "compiled"])
def test_a_scan_inside_a_block_draws_its_loop(view):
    """The views key a node by its top-level name: an LSTM inside a block (and
    an imported one, tests/onnx/test_import.py) still gets its loop, counted
    from x's steps (was a KeyError: the count was looked up by layer record)."""
    g = Graph()
    x = g.input("rows", (None, 5, 3))
    with g.block("enc"):
        h = g.lstm(x, 4, name="rnn")
    model = Model(g, x, g.dense(h, 2, name="head"))
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    source = plot_model(model, view=view).source
    assert re.search(r'(\w+) -> \1 \[label="x 5 steps"', source)
    assert re.search(r'(\w+) -> \1 \[label="x 5 steps back"', source)
    assert "enc" in plot_model(model, view=view, depth=1).source        # one box per layer and role


def test_a_hand_built_scan_without_its_gate_blocks_is_refused_in_training():
    """keep=False (what evaluation and prediction use) leaves nothing for the
    backward pass: training such a scan names the node and says why (was an
    OpShapeError from the reader's padded gradient, no node named)."""
    from graphnn.compiler.errors import GraphError
    g = Graph()
    x = g.input("x", (None, 3, 2))
    ws = g.op("lstm_weights", [g.param("W", (2, 8)), g.param("b", (8,)), g.param("U", (2, 8))])
    h = g.op("lstm_last", [g.op("lstm_scan", [ws, x], keep=False, name="scan")], steps=3, units=2)
    model = Model(g, x, h)
    assert model.predict(np.ones((4, 3, 2))).shape == (4, 2)      # fine without a gradient
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(GraphError, match=r"node 'scan' \(lstm_scan\): keep=False keeps no gate blocks"):
        model.fit(np.ones((4, 3, 2)), np.ones((4, 2)), verbose=0)
