"""Each optimizer, compiled into update nodes, follows its published rule step
by step on a small quadratic L(w) = sum((w - c)^2), gradient 2 (w - c)."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim

C = np.array([1.0, -2.0, 0.5])
W0 = np.array([0.3, 0.7, -1.1])


def quadratic_model(optimizer):
    g = Graph(dtype="float64")
    x = g.input("x", (None, 3))
    w = g.param("w", (3,))
    out = g.add(x, w, name="out")          # x is fed zeros: out = w
    model = Model(g, inputs=x, outputs=out)
    model.set_weights({"w": W0})
    model.compile(loss="mse", optimizer=optimizer)
    return model


def steps(model, n):
    for _ in range(n):
        # mse with mean reduction over 3 elements: gradient (2/3)(w - c)
        model.fit(np.zeros((1, 3)), C[None, :], epochs=1, batch_size=1, verbose=0, shuffle=False)
    return model.get_weights()["w"]


def grad(w):
    return 2.0 / 3.0 * (w - C)


def test_sgd_plain():
    w = W0.copy()
    for _ in range(5):
        w = w - 0.1 * grad(w)
    np.testing.assert_allclose(steps(quadratic_model(optim.SGD(0.1)), 5), w, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    lr, mu, w, v = 0.1, 0.9, W0.copy(), np.zeros(3)
    for _ in range(6):                        # PyTorch's form of (Nesterov) momentum
        g = grad(w)
        v = mu * v + g
        w = w - lr * (g + mu * v if nesterov else v)
    got = steps(quadratic_model(optim.SGD(lr, momentum=mu, nesterov=nesterov)), 6)
    np.testing.assert_allclose(got, w, rtol=1e-12)


def test_adam():
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    w, m, v = W0.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, 8):                     # Kingma and Ba (2015), Algorithm 1
        g = grad(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    got = steps(quadratic_model(optim.Adam(lr, b1, b2, eps)), 7)
    np.testing.assert_allclose(got, w, rtol=1e-10)


@pytest.mark.parametrize("make, match", [
    (lambda: optim.SGD(lr=-1), "lr"), (lambda: optim.SGD(momentum=1.5), "momentum"),
    (lambda: optim.SGD(nesterov=True), "nesterov"), (lambda: optim.Adam(beta1=1.0), "beta1"),
    (lambda: optim.Adam(eps=0), "eps"), (lambda: optim.get("adagradx"), "unknown optimizer"),
])
def test_bad_hyperparameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
