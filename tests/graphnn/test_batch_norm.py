"""Batch normalization: batch statistics in training, running averages kept as
Keras keeps them, the full gradient, and inference folded into the layer before."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler import check_graph

from graphnn import Graph, Model, optim
from tests.helpers import gradient_check


def dense_bn(momentum=0.9, eps=1e-3):
    g = Graph(dtype="float64")
    x = g.input("x", (None, 4))
    h = g.dense(x, 3, name="fc")
    y = g.batch_norm(h, momentum=momentum, eps=eps, name="bn")
    model = Model(g, inputs=x, outputs=y, seed=1)
    model.compile(loss="mse", optimizer=optim.SGD(0.1))
    return model


def test_training_normalizes_with_batch_statistics_and_updates_running_ones():
    model = dense_bn()
    x = np.random.default_rng(0).normal(size=(6, 4))
    w = model.get_weights()
    h = x @ w["fc/W"] + w["fc/b"]
    mean, var = h.mean(0), h.var(0)
    from graphnn.runtime import Executor
    train = Executor(model.program("train", 6), model.variables)
    out = train.run({"x": x, "target": np.zeros((6, 3))})
    np.testing.assert_allclose(out["bn/normalize"], (h - mean) / np.sqrt(var + 1e-3), rtol=1e-12)
    np.testing.assert_allclose(model.variables["bn/running_mean"], 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(model.variables["bn/running_var"], 0.9 + 0.1 * var, rtol=1e-12)


def test_full_gradient_matches_finite_differences():
    g = Graph(dtype="float64")
    x = g.input("x", (None, 2, 3, 3))
    # no conv bias: batch norm removes any per-channel shift, so its gradient is exactly
    # zero and a relative error on it would measure round-off only
    h = g.conv2d(x, 3, 2, name="conv", use_bias=False)
    y = g.batch_norm(h, axis=1, name="bn")
    loss = g.mse(g.tanh(y), g.input("t", (None, 3, 2, 2)))
    updates = [n for n, d in g.nx.nodes(data=True) if d["op"] == "moving_average"]
    checked = check_graph(g.nx, [loss.name, *updates])
    rng = np.random.default_rng(2)
    params = {n: rng.normal(size=d["shape"]) for n, d in checked.nodes(data=True)
              if d["op"] == "param" and d.get("trainable", True)}
    feeds = {"x": rng.normal(size=(4, 2, 3, 3)), "t": rng.normal(size=(4, 3, 2, 2))}
    assert gradient_check(checked, loss.name, params, feeds, batch=4) <= 1e-6


@pytest.mark.parametrize("layer", ["dense", "conv"])
def test_inference_uses_running_statistics_folded_into_the_layer(layer):
    g = Graph(dtype="float64")
    if layer == "dense":
        x = g.input("x", (None, 5))
        h = g.dense(x, 3, name="fc")
        data = np.random.default_rng(3).normal(size=(7, 5))
    else:
        x = g.input("x", (None, 2, 4, 4))
        h = g.conv2d(x, 3, 3, padding="same", name="fc")
        data = np.random.default_rng(3).normal(size=(7, 2, 4, 4))
    y = g.relu(g.batch_norm(h, name="bn"))
    model = Model(g, inputs=x, outputs=y)
    rng = np.random.default_rng(4)
    w = model.get_weights()
    w.update({"bn/gamma": rng.uniform(0.5, 2, 3), "bn/beta": rng.normal(size=3),
              "bn/running_mean": rng.normal(size=3), "bn/running_var": rng.uniform(0.5, 2, 3)})
    model.set_weights(w)
    kernels = []                # every kernel, those in fused epilogues too
    for i in model.program("predict", 7).instructions:
        kernels += [i.kernel] + [p["kernel"] for p in i.attrs.get("epilogue", [])]
    assert "normalize" not in kernels and "batch_mean" not in kernels   # folded away
    assert "bn_fold_scale" in kernels
    if layer == "dense":
        h_ref = data @ w["fc/W"] + w["fc/b"]
        shape = (1, 3)
    else:
        from tests.compiler.test_op_table import _conv
        h_ref = _conv(pads=(1, 1, 1, 1))(data, w["fc/W"]) + w["fc/b"][:, None, None]
        shape = (1, 3, 1, 1)
    r = lambda v: v.reshape(shape)
    expected = np.maximum(r(w["bn/gamma"]) * (h_ref - r(w["bn/running_mean"])) /
                          np.sqrt(r(w["bn/running_var"]) + 1e-3) + r(w["bn/beta"]), 0)
    np.testing.assert_allclose(model.predict(data), expected, rtol=1e-11, atol=1e-12)


def test_running_statistics_are_saved_and_not_trained(tmp_path):
    model = dense_bn()
    x = np.random.default_rng(5).normal(size=(20, 4))
    model.fit(x, np.zeros((20, 3)), epochs=2, batch_size=10, verbose=0)
    assert not any(n.startswith("bn/running") and n.count("/") > 1 for n in model.variables)  # no slots
    model.save(tmp_path / "m.gnn")
    from graphnn import load_model
    again = load_model(str(tmp_path / "m.gnn"))
    np.testing.assert_array_equal(again.variables["bn/running_var"], model.variables["bn/running_var"])
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
