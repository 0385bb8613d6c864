"""Plots: PNG files, and the numbers behind them checked independently."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from graphnn import Graph, Model, optim
from graphnn.plots import (
    decision_grid,
    loss_landscape,
    plot_decision_boundary,
    plot_history,
    plot_loss_landscape,
)


def classifier():
    g = Graph(dtype="float64")
    x = g.input("ab", (None, 2))
    model = Model(g, inputs=x, outputs=g.dense(x, 1, activation="sigmoid", name="d"))
    model.compile(loss="binary_cross_entropy", optimizer=optim.Adam(0.05), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    ab = rng.uniform(size=(200, 2))
    y = (ab[:, :1] > ab[:, 1:]).astype(float)
    return model, ab, y, model.fit(ab, y, epochs=20, verbose=0, validation_data=(ab, y))


def test_pngs_are_written(tmp_path):
    model, ab, y, hist = classifier()
    for name, draw in [("curves", lambda p: plot_history(hist, p)),
                       ("boundary", lambda p: plot_decision_boundary(model, ab, y, p)),
                       ("landscape", lambda p: plot_loss_landscape(model, ab, y, p, steps=5))]:
        draw(str(tmp_path / f"{name}.png"))
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_decision_grid_is_the_models_output():
    model, ab, _y, _ = classifier()
    xx, yy, scores = decision_grid(model, ab, resolution=7)
    w = model.get_weights()
    z = np.stack([xx.ravel(), yy.ravel()], 1) @ w["d/W"] + w["d/b"]
    np.testing.assert_allclose(scores.ravel(), 1 / (1 + np.exp(-z.ravel())), rtol=1e-12)


def test_loss_landscape_centre_is_the_trained_loss_and_weights_are_restored():
    model, ab, y, _ = classifier()
    before = model.get_weights()
    alphas, losses = loss_landscape(model, ab, y, steps=5, span=0.5)
    assert alphas[2] == 0.0
    assert losses[2, 2] == pytest.approx(model.evaluate(ab, y)["loss"], rel=1e-12)
    for k, v in model.get_weights().items():
        assert np.array_equal(v, before[k])
