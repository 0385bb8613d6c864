"""What every reliability case uses: a small trained model, and the check that
a rejected call changed nothing (weights, optimizer state, step count)."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from graphnn import Graph, Model, optim

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 4)).astype("float32")
Y = np.arange(12) % 3


def small_model(optimizer=None, trained: bool = True) -> Model:
    """x (N, 4) -> dense 'hidden' (5, relu) -> dense 'logits' (3); softmax cross-entropy.
    Trained one step, so that its optimizer state exists before a case runs."""
    g = Graph()
    x = g.input("x", (None, 4))
    h = g.dense(x, 5, activation="relu", name="hidden")
    model = Model(g, inputs=x, outputs=g.dense(h, 3, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer=optimizer or optim.Adam(0.01),
                  metrics=["accuracy"])
    if trained:
        model.fit(X, Y, epochs=1, batch_size=12, verbose=0)
    return model


def snapshot(model) -> tuple[dict, int]:
    return model.state_dict(), model._steps


def assert_same(model, before) -> None:
    state, steps = before
    now = model.state_dict()
    assert sorted(now) == sorted(state), "variables were added or removed"
    for k, v in state.items():
        assert np.array_equal(now[k], v, equal_nan=True), f"variable {k!r} changed"
    assert model._steps == steps, "the step count changed"


@contextmanager
def rejected(model, error, *names):
    """The block raises ``error`` whose message names every one of ``names``, and
    leaves the model's weights, optimizer state and step count as they were."""
    before = snapshot(model)
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"
    assert_same(model, before)
