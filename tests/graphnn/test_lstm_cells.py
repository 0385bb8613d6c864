"""The LSTM's step ops (compiler/ops/recurrent.py) on the paths the op table does
not reach: a step's gradient read from the next step's block or from the output's
gradient alone, the stacked layer's input gradient, and the fast path that skips
rows known to be zero, each against finite differences or the general path."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model
from graphnn.compiler import check_graph
from graphnn.runtime.kernels.recurrent import lstm_cell, lstm_cell_grad, lstm_state_grad
from tests.helpers import gradient_check


def _loss_graph(stacked: bool, steps=3, features=2, units=3):
    g = Graph(dtype="float64")
    x = g.input("x", (None, steps, features))
    h = g.lstm(x, units, return_sequences=stacked, name="first")
    if stacked:
        h = g.lstm(h, 2, name="second")
    out = g.dense(h, 2, name="head")
    loss = g.mse(out, g.input("t", (None, 2)))
    return check_graph(g.nx, [loss.name]), loss.name


@pytest.mark.parametrize("stacked", [False, True])
def test_last_state_and_stacked_gradients_match_finite_differences(stacked):
    """One layer read at its last step (the step gradients come from the next
    step's block, the last one from the output's gradient), and two stacked
    layers (the first one's sequence gets the second one's input gradients)."""
    checked, loss = _loss_graph(stacked)
    rng = np.random.default_rng(3)
    params = {n: rng.normal(scale=0.5, size=d["shape"]) for n, d in checked.nodes(data=True)
              if d["op"] == "param"}
    feeds = {"x": rng.normal(size=(4, 3, 2)), "t": rng.normal(size=(4, 2))}
    assert gradient_check(checked, loss, params, feeds, batch=4) <= 1e-6


def test_a_step_gradient_reads_the_next_steps_block_instead_of_a_padded_state():
    g = Graph()
    x = g.input("x", (None, 5, 3))
    model = Model(g, x, g.dense(g.lstm(x, 4, name="rnn"), 2))
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    train = model._build(((None,), "int64", False))["train"]
    ops = {n: d for n, d in train.nodes(data=True)}
    grads = [d for d in ops.values() if d["op"] == "lstm_cell_grad"]
    assert sorted(d["source"] for d in grads) == ["last"] + ["next"] * 4
    assert not any(d["op"] in ("lstm_state_grad", "lstm_last_grad") for d in ops.values())


def _random_step(rng, units=3, batch=4, features=2, steps=3):
    ws = rng.normal(size=(features + 1 + units, 4 * units))
    x = rng.normal(size=(batch, steps, features))
    prev = rng.normal(size=(7 * units, batch))
    state, scratch = np.empty((7 * units, batch)), np.empty((features + 1 + 2 * units, batch))
    lstm_cell([ws, x, prev], [state, scratch], step=1)()
    return ws, prev, state


def _step_gradient(ins, source="state", fast=False):
    state = ins[2 if source == "next" else 1]
    units, batch = state.shape[0] // 7, state.shape[1]
    out = np.empty((5 * units, batch))
    lstm_cell_grad(ins, [out, np.empty((4 * units, batch))], fast=fast, source=source)()
    return out


def test_the_step_gradients_sources_agree():
    """The fast path (gate and tanh(c) rows of dS known zero) equals the general
    one on such a dS; reading the next step's block and WS equals reading the
    padded state gradient made from them; reading h's gradient alone equals
    reading it padded with zeros."""
    rng = np.random.default_rng(0)
    ws, prev, state = _random_step(rng)
    units, batch = 3, 4
    delta_next = rng.normal(size=(5 * units, batch))
    padded = np.empty((7 * units, batch))
    lstm_state_grad([delta_next, ws], [padded])()
    assert not padded[:4 * units].any() and not padded[5 * units:6 * units].any()
    general = _step_gradient([padded, state, prev])
    np.testing.assert_allclose(_step_gradient([padded, state, prev], fast=True), general, rtol=1e-13)
    np.testing.assert_allclose(_step_gradient([delta_next, ws, state, prev], source="next"), general,
                               rtol=1e-12, atol=1e-14)
    dh = rng.normal(size=(batch, units))
    only_h = np.zeros((7 * units, batch))
    only_h[6 * units:] = dh.T
    np.testing.assert_allclose(_step_gradient([dh, state, prev], source="last"),
                               _step_gradient([only_h, state, prev]), rtol=1e-13)


def test_a_cell_with_mismatched_operands_is_refused_with_the_operand_named():
    from graphnn.compiler.errors import OpShapeError
    from graphnn.compiler.ops import OPS
    cell = OPS["lstm_cell"]
    with pytest.raises(OpShapeError, match="stacked weights have 7 rows, expected 6"):
        cell.infer([(7, 8), (None, 3, 3), (14, None)], ["float32"] * 3, {"step": 1})
    with pytest.raises(OpShapeError, match="previous state has shape \\(12, N\\)"):
        cell.infer([(6, 8), (None, 3, 3), (12, None)], ["float32"] * 3, {"step": 1})
    with pytest.raises(OpShapeError, match="step 3 is past the 3 steps"):
        cell.infer([(6, 8), (None, 3, 3), (14, None)], ["float32"] * 3, {"step": 3})
