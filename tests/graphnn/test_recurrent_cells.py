"""The GRU's step ops (compiler/ops/recurrent.py, gru.py) on the paths the op
table does not reach: a step's gradient read from the next step's block or from
the output's gradient alone, the stacked layer's input gradient, and the fast path
that skips rows known to be zero, each against finite differences or the general
path; the LSTM (one scan op, tests/graphnn/test_lstm_scan.py) through the same
whole-graph gradient checks."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler import check_graph
from graphnn.runtime.kernels import gru as gru_kernels

from graphnn import Graph, Model
from tests.helpers import gradient_check


def _loss_graph(kind, stacked: bool, steps=3, features=2, units=3):
    g = Graph(dtype="float64")
    x = g.input("x", (None, steps, features))
    h = getattr(g, kind)(x, units, return_sequences=stacked, name="first")
    if stacked:
        h = getattr(g, kind)(h, 2, name="second")
    out = g.dense(h, 2, name="head")
    loss = g.mse(out, g.input("t", (None, 2)))
    return check_graph(g.nx, [loss.name]), loss.name


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("stacked", [False, True])
def test_last_state_and_stacked_gradients_match_finite_differences(kind, stacked):
    """One layer read at its last step (the step gradients come from the next
    step's block, the last one from the output's gradient), and two stacked
    layers (the first one's sequence gets the second one's input gradients)."""
    checked, loss = _loss_graph(kind, stacked)
    rng = np.random.default_rng(3)
    params = {n: rng.normal(scale=0.5, size=d["shape"]) for n, d in checked.nodes(data=True)
              if d["op"] == "param"}
    feeds = {"x": rng.normal(size=(4, 3, 2)), "t": rng.normal(size=(4, 2))}
    assert gradient_check(checked, loss, params, feeds, batch=4) <= 1e-6


def test_a_step_gradient_reads_the_next_steps_block_instead_of_a_padded_state(kind="gru"):
    g = Graph()
    x = g.input("x", (None, 5, 3))
    model = Model(g, x, g.dense(getattr(g, kind)(x, 4, name="rnn"), 2))
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    train = model._build(((None,), "int64", False))["train"]
    ops = {n: d for n, d in train.nodes(data=True)}
    grads = [d for d in ops.values() if d["op"] == f"{kind}_cell_grad"]
    assert sorted(d["source"] for d in grads) == ["last"] + ["next"] * 4
    assert not any(d["op"] in (f"{kind}_state_grad", f"{kind}_last_grad") for d in ops.values())


# per kind: the kernels, the state's rows per unit, the cell's extra scratch rows per unit
KINDS = {"gru": (gru_kernels, 5, 1)}


def _random_step(kind, rng, units=3, batch=4, features=2, steps=3):
    kernels, rows, extra = KINDS[kind]
    ws = rng.normal(size=(features + 1 + units, 4 * units))
    x = rng.normal(size=(batch, steps, features))
    prev = rng.normal(size=(rows * units, batch))
    state, scratch = np.empty((rows * units, batch)), np.empty((features + 1 + (1 + extra) * units, batch))
    getattr(kernels, f"{kind}_cell")([ws, x, prev], [state, scratch], step=1)()
    return ws, prev, state


def _step_gradient(kind, ins, source="state", fast=False):
    kernels, rows, _ = KINDS[kind]
    state = ins[2 if source == "next" else 1]
    units, batch = state.shape[0] // rows, state.shape[1]
    out = np.empty((5 * units, batch))
    getattr(kernels, f"{kind}_cell_grad")(ins, [out, np.empty((4 * units, batch))], fast=fast, source=source)()
    return out


def test_the_step_gradients_sources_agree(kind="gru"):
    """The fast path (rows of dS other than c and h known zero) equals the general
    one on such a dS; reading the next step's block and the stacked weights equals
    reading the padded state gradient made from them; reading h's gradient alone
    equals reading it padded with zeros."""
    kernels, rows, _ = KINDS[kind]
    rng = np.random.default_rng(0)
    ws, prev, state = _random_step(kind, rng)
    units, batch = 3, 4
    delta_next = rng.normal(size=(5 * units, batch))
    padded = np.empty((rows * units, batch))
    getattr(kernels, f"{kind}_state_grad")([delta_next, ws], [padded])()
    assert not np.delete(padded.reshape(rows, units, batch), [4], axis=0).any()     # h alone
    general = _step_gradient(kind, [padded, state, prev])
    np.testing.assert_allclose(_step_gradient(kind, [padded, state, prev], fast=True), general, rtol=1e-13)
    np.testing.assert_allclose(_step_gradient(kind, [delta_next, ws, state, prev], source="next"), general,
                               rtol=1e-12, atol=1e-14)
    dh = rng.normal(size=(batch, units))
    only_h = np.zeros((rows * units, batch))
    only_h[(rows - 1) * units:] = dh.T
    np.testing.assert_allclose(_step_gradient(kind, [dh, state, prev], source="last"),
                               _step_gradient(kind, [only_h, state, prev]), rtol=1e-13)


def test_a_cell_with_mismatched_operands_is_refused_with_the_operand_named():
    from graphnn.compiler.errors import OpShapeError
    from graphnn.compiler.ops import OPS
    cell = OPS["gru_cell"]
    with pytest.raises(OpShapeError, match="stacked weights have 7 rows, expected 6"):
        cell.infer([(7, 8), (None, 3, 3), (10, None)], ["float32"] * 3, {"step": 1})
    with pytest.raises(OpShapeError, match="previous state has shape \\(12, N\\)"):
        cell.infer([(6, 8), (None, 3, 3), (12, None)], ["float32"] * 3, {"step": 1})
    with pytest.raises(OpShapeError, match="step 3 is past the 3 steps"):
        cell.infer([(6, 8), (None, 3, 3), (10, None)], ["float32"] * 3, {"step": 3})


@pytest.mark.parametrize("view", ["layers", "training", "compiled"])
def test_the_views_draw_the_recurrence_as_a_loop_on_the_folded_step(view, kind="gru"):
    """One box for the 6 steps' cells, with a 'next step' edge from it to itself
    (each cell reads the one before); in the layer view no such edge leads to the
    layer's output, which is no step."""
    import re

    from graphnn import plot_model
    g = Graph()
    x = g.input("rows", (None, 6, 3))
    model = Model(g, x, g.dense(getattr(g, kind)(x, 4, name="rnn"), 2, name="head"))
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    dot = plot_model(model, expand_nested=True) if view == "layers" else plot_model(model, view=view)
    box = {"layers": rf'cell{{t}} \({kind}_cell\) x 6', "training": r"cell\{t\}\n",
           "compiled": rf'\d+\.\.\d+: {kind}_cell x 6'}[view]
    (cell,) = re.findall(rf'(\w+) \[label="{box}', dot.source)
    assert re.search(rf'{cell} -> {cell} \[label="next step"', dot.source)
    if view == "layers":
        (last,) = re.findall(rf'(\w+) \[label="h \({kind}_last\)', dot.source)
        assert re.search(rf"{cell} -> {last}", dot.source)
        assert not re.search(rf'{cell} -> {last} \[label="next step"', dot.source)
