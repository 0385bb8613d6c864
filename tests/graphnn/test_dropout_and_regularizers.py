"""Dropout (seeded, training only), penalties in the loss, new initializers."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim, regularizers
from graphnn.initializers import initialize


def dropout_model(rate=0.4, seed=None):
    g = Graph(dtype="float64")
    x = g.input("x", (None, 1000))
    y = g.dropout(x, rate, seed=seed, name="drop")
    out = g.dense(y, 1, name="lin")
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="mse", optimizer=optim.SGD(0.01))
    return model


def training_executor(model, batch):
    """The model's training step with the mask as an extra output, so its bytes
    stay readable after the step (otherwise the planner reuses them)."""
    from graphnn.compiler import build_program
    from graphnn.runtime import Executor
    model.program("train", batch)
    built = next(iter(model._built.values()))
    program = build_program(built["train"], [built["loss"], *model.outputs, "drop/mask"], batch)
    return Executor(program, {k: v.copy() for k, v in model.variables.items()})


def masks(model, steps=2, rate=0.4):
    """The masks a training program draws."""
    ex = training_executor(model, 4)
    ex.feed({"x": np.ones((4, 1000)), "target": np.zeros((4, 1))})
    drawn = []
    for _ in range(steps):
        ex.step()
        drawn.append(np.array(ex.views["drop/mask"]))
    return drawn


def test_masks_drop_at_the_rate_and_scale_the_rest():
    first, second = masks(dropout_model())
    kept = first != 0
    assert abs(1 - kept.mean() - 0.4) < 0.03                     # 4,000 draws
    np.testing.assert_allclose(first[kept], 1 / 0.6)
    assert not np.array_equal(first, second)                     # a new mask every step


def test_masks_are_reproducible_under_a_seed():
    a, b = masks(dropout_model(seed=7)), masks(dropout_model(seed=7))
    c = masks(dropout_model(seed=8))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_evaluation_and_prediction_skip_dropout():
    model = dropout_model()
    x = np.random.default_rng(0).normal(size=(5, 1000))
    w = model.get_weights()
    np.testing.assert_allclose(model.predict(x), x @ w["lin/W"] + w["lin/b"], rtol=1e-12)
    assert "dropout_mask" not in [i.kernel for i in model.program("predict", 5).instructions]
    assert "dropout_mask" in [i.kernel for i in model.program("train", 5).instructions]


def test_dropout_gradient_uses_the_same_mask():
    # loss = mean((x * m) @ w)^2 ... checked through one SGD step on a known mask
    model = dropout_model(rate=0.5, seed=3)
    ex = training_executor(model, 2)
    x = np.random.default_rng(1).normal(size=(2, 1000))
    w0, b0 = ex.variables["lin/W"].copy(), ex.variables["lin/b"].copy()
    ex.run({"x": x, "target": np.zeros((2, 1))})
    m = np.array(ex.views["drop/mask"])
    h = x * m
    err = h @ w0 + b0
    expected = w0 - 0.01 * (2 / err.size) * h.T @ err
    np.testing.assert_allclose(ex.variables["lin/W"], expected, rtol=1e-12)


def test_l2_penalty_is_added_to_the_loss_and_its_gradient_decays_weights():
    g = Graph(dtype="float64")
    x = g.input("x", (None, 3))
    out = g.dense(x, 2, name="fc", kernel_regularizer=regularizers.L2(0.1))
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="mse", optimizer=optim.SGD(0.5))
    xs, ys = np.zeros((4, 3)), np.zeros((4, 2))             # data loss and its gradient: 0
    w = model.get_weights()["fc/W"]
    assert model.evaluate(xs, ys)["loss"] == pytest.approx(0.1 * np.sum(w * w), rel=1e-12)
    model.fit(xs, ys, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_allclose(model.get_weights()["fc/W"], w - 0.5 * 0.2 * w, rtol=1e-12)


def test_regularizer_short_forms_and_errors():
    assert regularizers.get(("l1", 0.5)).terms() == [("l1_penalty", 0.5)]
    assert regularizers.get({"l1": 0.1, "l2": 0.2}).terms() == [("l1_penalty", 0.1), ("l2_penalty", 0.2)]
    with pytest.raises(ValueError, match="unknown regularizer"):
        regularizers.get(("l3", 1))
    with pytest.raises(ValueError, match=r"unknown regularizer 'dropout';"):    # as written, not a tuple built from it
        regularizers.get("dropout")
    with pytest.raises(ValueError, match=r"unknown regularizer \{'l3': 1\};"):   # was a TypeError from __init__
        regularizers.get({"l3": 1})
    with pytest.raises(ValueError, match="l2 must be a number >= 0"):
        regularizers.L2(-1)


def test_orthogonal_and_constant_initializers():
    rng = np.random.default_rng(0)
    q = initialize("orthogonal", (6, 4), "float64", rng)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    k = initialize("orthogonal", (3, 2, 2, 2), "float64", rng).reshape(3, 8)
    np.testing.assert_allclose(k @ k.T, np.eye(3), atol=1e-12)
    assert np.all(initialize("constant:0.25", (2, 2), "float32", rng) == 0.25)
    with pytest.raises(ValueError, match="constant:NUMBER"):
        initialize("constant:x", (2,), "float32", rng)
