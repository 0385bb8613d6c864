"""LSTM and GRU against a plain NumPy step-by-step reference, and their
gradients (backpropagation through time) against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler import check_graph

from graphnn import Graph, Model, ShapeError
from tests.helpers import gradient_check


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def lstm_reference(x, W, U, b):
    n, steps, _ = x.shape
    units = U.shape[0]
    h, c, hs = np.zeros((n, units)), np.zeros((n, units)), []
    for t in range(steps):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def gru_reference(x, W, U, b, bh):
    n, steps, _ = x.shape
    units = U.shape[0]
    h, hs = np.zeros((n, units)), []
    for t in range(steps):
        xw, hu = x[:, t] @ W + b, h @ U + bh
        r = sigmoid(xw[:, :units] + hu[:, :units])
        z = sigmoid(xw[:, units:2 * units] + hu[:, units:2 * units])
        nn = np.tanh(xw[:, 2 * units:] + r * hu[:, 2 * units:])
        h = (1 - z) * nn + z * h
        hs.append(h)
    return np.stack(hs, axis=1)


def build(kind, sequences, steps=4, features=3, units=5):
    g = Graph(dtype="float64")
    x = g.input("x", (None, steps, features))
    out = getattr(g, kind)(x, units, return_sequences=sequences, name="rnn")
    return g, x, out


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("sequences", [False, True])
def test_matches_the_numpy_reference(kind, sequences):
    g, x, out = build(kind, sequences)
    model = Model(g, inputs=x, outputs=out, seed=4)
    w = model.get_weights()
    for k in w:                                       # biases too, so every term is exercised
        w[k] = np.random.default_rng(len(k)).normal(scale=0.5, size=w[k].shape)
    model.set_weights(w)
    xs = np.random.default_rng(0).normal(size=(6, 4, 3))
    if kind == "lstm":
        expected = lstm_reference(xs, w["rnn/W"], w["rnn/U"], w["rnn/b"])
    else:
        expected = gru_reference(xs, w["rnn/W"], w["rnn/U"], w["rnn/b"], w["rnn/b_recurrent"])
    got = model.predict(xs)
    np.testing.assert_allclose(got, expected if sequences else expected[:, -1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradients_through_time_match_finite_differences(kind):
    g, _x, out = build(kind, True, steps=3, features=2, units=3)
    target = g.input("t", (None, 3, 3))
    loss = g.mse(out, target)
    checked = check_graph(g.nx, [loss.name])
    rng = np.random.default_rng(1)
    params = {n: rng.normal(scale=0.5, size=d["shape"]) for n, d in checked.nodes(data=True)
              if d["op"] == "param"}
    feeds = {"x": rng.normal(size=(2, 3, 2)), "t": rng.normal(size=(2, 3, 3))}
    assert gradient_check(checked, loss.name, params, feeds, batch=2) <= 1e-6


def test_weights_get_one_running_sum_over_the_steps(kind="gru"):
    """The stacked weights get their gradient as one chain of step_weights_sum,
    last step first, each adding its step's product (no add_n of T products),
    and every parameter reads its part of the chain's end."""
    g, x, out = build(kind, False, steps=3)
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="mse", optimizer="sgd")
    train = model._build(((None, 5), "float64", False))["train"]
    ops = {n: d["op"] for n, d in train.nodes(data=True)}
    sums = {train.nodes[n]["step"]: n for n, op in ops.items() if op == "step_weights_sum"}
    assert sorted(sums) == [0, 1, 2] and "add_n" not in ops.values()
    assert [train.nodes[sums[t]]["accumulate"] for t in (0, 1, 2)] == [True, True, False]
    for t in (0, 1):
        assert sums[t + 1] in train.predecessors(sums[t])
    params = ("W", "b", "U", "b_recurrent")
    for p in params:
        (grad,) = [src for src in train.predecessors(f"rnn/{p}/update") if "grad" in src]
        assert ops[grad] == f"{kind}_weights_grad" and sums[0] in train.predecessors(grad)


def test_bad_input_is_named():
    g = Graph()
    x = g.input("x", (None, 7))
    with pytest.raises(ShapeError, match=r"'lstm' \(lstm\): expected a sequence of shape \(N, T, features\)"):
        g.lstm(x, 4)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("units, sequences, named", [(0, False, "units"), (2.5, False, "units"),
                                                     ("4", False, "units"), (True, False, "units"),
                                                     (4, "yes", "return_sequences")])
def test_bad_arguments_are_named(kind, units, sequences, named):
    """units and return_sequences are checked as dense's units are (were: a param
    shape error naming 'rnn/W', or a string taken as True)."""
    g = Graph()
    x = g.input("x", (None, 3, 2))
    with pytest.raises(ValueError, match=rf"{kind} 'rnn': {named} must be"):
        getattr(g, kind)(x, units, return_sequences=sequences, name="rnn")
    assert len(g.nx) == 1                                 # nothing added


def test_a_stacked_layers_input_gradient_is_one_buffer():
    """The T steps of a layer over another layer's sequence each read one step of
    it: their input gradients go into one slices_grad, not T padded copies
    summed by add_n (measured: the unrolled LSTM step of mnist_lstm.py halved)."""
    g = Graph(dtype="float64")
    x = g.input("x", (None, 5, 3))
    out = g.gru(g.lstm(x, 4, return_sequences=True, name="first"), 3, name="second")
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="mse", optimizer="sgd")
    train = model._build(((None, 3), "float64", False))["train"]
    ops = {n: d["op"] for n, d in train.nodes(data=True)}
    assert "slice_grad" not in ops.values()
    (gathered,) = [n for n, op in ops.items() if op == "slices_grad"]
    assert len(list(train.predecessors(gathered))) == 5
    (reader,) = train.successors(gathered)          # the scan's gradient reads it as h's
    assert ops[reader] == "lstm_scan_grad" and train.nodes[reader]["source"] == "sequence"


def test_overlapping_slices_add_up():
    g = Graph(dtype="float64")
    x = g.input("x", (None, 5))
    w = g.param("w", (5,))
    y = g.multiply(x, w)
    parts = [g.slice(y, 0, 3, axis=1), g.slice(y, 2, 5, axis=1)]      # overlap at column 2
    loss = g.mse(g.concat(*parts, axis=1), g.input("t", (None, 6)))
    checked = check_graph(g.nx, [loss.name])
    rng = np.random.default_rng(0)
    assert gradient_check(checked, loss.name, {"w": rng.normal(size=5)},
                          {"x": rng.normal(size=(3, 5)), "t": rng.normal(size=(3, 6))}, batch=3) <= 1e-6


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_one_step_sequence_builds_a_model_without_a_recurrent_weight(kind):
    """At T = 1 the state is zero and U never multiplies anything: no stray U
    (it used to make Model() fail with 'does not reach any output')."""
    g = Graph(dtype="float64")
    x = g.input("x", (None, 1, 3))
    model = Model(g, x, getattr(g, kind)(x, 2, name="rnn"))
    assert "rnn/U" not in model.variables
    W, b = model.variables["rnn/W"], model.variables["rnn/b"]
    xs = np.random.default_rng(0).normal(size=(4, 1, 3))
    U = np.zeros((2, W.shape[1]))
    if kind == "lstm":
        want = lstm_reference(xs, W, U, b)[:, -1]
    else:
        want = gru_reference(xs, W, U, b, model.variables["rnn/b_recurrent"])[:, -1]
    np.testing.assert_allclose(model.predict(xs), want, rtol=1e-12)
