"""Non-finite training: whether the NaN or inf comes from the forward pass or
from an update itself (a learning rate that overflows the step), it never
reaches the weights: the step is undone, every variable (weights, optimizer
state, step count) is as it was before it, and the error names the node."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim

from .common import X, Y, assert_same, small_model, snapshot

OVERFLOWING = {        # each overflows float32 in its first update or soon after
    "sgd": lambda: optim.SGD(1e38),
    "sgd-momentum": lambda: optim.SGD(1e38, momentum=0.9),
    "sgd-nesterov-decay": lambda: optim.SGD(1e38, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam": lambda: optim.Adam(3e38),
    "adamw": lambda: optim.AdamW(3e38),
    "rmsprop": lambda: optim.RMSprop(3e38),
    "adagrad": lambda: optim.Adagrad(3e38),
    "adadelta": lambda: optim.Adadelta(3e38),
}


def _train_until_it_fails(model, x=X, y=Y, steps=6, **kwargs):
    """One step per fit; returns (state before the failing step, the error).
    The training program is built first: its optimizer state exists before."""
    model.program("train", len(x))
    for _ in range(steps):
        before = snapshot(model)
        try:
            model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0, **kwargs)
        except FloatingPointError as e:
            return before, e
    raise AssertionError("training never went non-finite")


@pytest.mark.parametrize("name", sorted(OVERFLOWING), ids=str)
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_overflowing_update_never_reaches_the_weights(name, fuse):
    model = small_model(trained=False)
    model.compile(loss="softmax_cross_entropy", optimizer=OVERFLOWING[name](), fuse=fuse)
    before, error = _train_until_it_fails(model, X * 100)
    assert_same(model, before)
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    message = str(error)
    assert "node '" in message and "undone" in message
    assert "weights and optimizer state are as they were" in message


def test_the_update_at_fault_is_named():
    model = small_model(optim.SGD(1e38), trained=False)
    before, error = _train_until_it_fails(model, X * 100)
    assert "the update of parameter 'logits/W'" in str(error) or \
        "the update of parameter 'hidden/W'" in str(error)
    assert_same(model, before)


def _regression(scale_node=False):
    g = Graph()
    x = g.input("x", (None, 2))
    return Model(g, inputs=x, outputs=g.dense(x, 1, name="out"))


def test_overflowing_loss_names_the_first_non_finite_node():
    model = _regression()
    model.compile(loss="mse", optimizer=optim.SGD(0.01))
    x, y = np.full((4, 2), 1e30, "float32"), np.zeros((4, 1), "float32")
    model.program("train", 4)
    before = snapshot(model)
    with pytest.raises(FloatingPointError) as info:
        model.fit(x, y, epochs=1, verbose=0)
    assert "loss" in str(info.value) and "node '" in str(info.value)
    assert_same(model, before)


def test_huge_sample_weights_are_caught_at_the_loss():
    model = small_model(optim.SGD(0.01))
    before = snapshot(model)
    with pytest.raises(FloatingPointError, match="node '"):
        model.fit(X, Y, epochs=1, verbose=0, sample_weight=np.full(12, 3e38))
    assert_same(model, before)


def test_training_resumes_after_a_rejected_step():
    model = small_model(optim.SGD(1e38), trained=False)
    before, _ = _train_until_it_fails(model, X * 100)
    model.learning_rate = 0.01                        # the user lowers the rate, and goes on
    model.fit(X, Y, epochs=2, verbose=0)
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    assert model._steps == before[1] + 2


def test_nan_inputs_are_refused_before_training():
    model = small_model()
    before = snapshot(model)
    x = X.copy()
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"input 'x' contains NaN or inf .*row 3"):
        model.fit(x, Y, epochs=1, verbose=0)
    assert_same(model, before)
