"""Bugs 2 and 3 of issue 9: cross-entropy after a softmax is rewritten into the
stable log-sum-exp form with fusion on or off, and the rewrite keeps sample
weights. References are NumPy formulas in float64."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim

LOGITS = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4], [-1e4, 0.0, 1e4]])
ONE_HOT = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def softmax_model(fuse):
    """probs = softmax(x + b), b a trainable bias fed zeros: logits = x."""
    g = Graph(dtype="float64")
    x = g.input("x", (None, 3))
    b = g.param("b", (3,), init="zeros")
    probs = g.softmax(g.add(x, b, name="logits"), name="probs")
    model = Model(g, inputs=x, outputs=probs)
    model.compile(loss="categorical_cross_entropy", optimizer=optim.SGD(1.0), fuse=fuse)
    return model


def reference(z, t, w=None):
    """Mean over rows of w_i * (logsumexp(z_i) - t_i . z_i), and its gradient."""
    w = np.ones(len(z)) if w is None else w
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    rows = lse - (t * z).sum(axis=1)
    p = np.exp(z - lse[:, None])
    grad = (p - t) * w[:, None] / len(z)
    return float(w @ rows) / len(z), grad


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_extreme_logits_give_the_exact_loss_and_gradient(fuse):
    model = softmax_model(fuse)
    loss, grad = reference(LOGITS, ONE_HOT)
    assert loss == pytest.approx(20000.0)          # log(0) would clip to 16.12
    assert model.evaluate(LOGITS, ONE_HOT)["loss"] == pytest.approx(loss, rel=1e-12)
    model.fit(LOGITS, ONE_HOT, epochs=1, batch_size=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()["b"], -grad.sum(axis=0), atol=1e-12)
    assert np.abs(grad).max() == pytest.approx(1 / 3)   # not a zero gradient


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_sample_weights_survive_the_rewrite(fuse):
    rng = np.random.default_rng(3)
    z, w = rng.normal(size=(3, 3)) * 3, np.array([0.5, 2.0, 0.0])
    model = softmax_model(fuse)
    loss, grad = reference(z, ONE_HOT, w)
    assert model.evaluate(z, ONE_HOT, sample_weight=w)["loss"] == pytest.approx(loss, rel=1e-12)
    model.fit(z, ONE_HOT, epochs=1, batch_size=3, shuffle=False, verbose=0, sample_weight=w)
    np.testing.assert_allclose(model.get_weights()["b"], -grad.sum(axis=0), rtol=1e-12, atol=1e-15)


def test_integer_labels_with_weights():
    z, labels, w = LOGITS / 1e4 * 3, np.array([1, 2, 0]), np.array([1.0, 0.25, 3.0])
    model = softmax_model(True)
    loss, _ = reference(z, ONE_HOT, w)
    assert model.evaluate(z, labels, sample_weight=w)["loss"] == pytest.approx(loss, rel=1e-12)
