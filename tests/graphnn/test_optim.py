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
    (lambda: optim.RMSprop(rho=1.0), "rho"),
    (lambda: optim.RMSprop(momentum=1.0), "momentum"), (lambda: optim.AdamW(weight_decay=-1), "weight_decay"),
    (lambda: optim.SGD(clip_norm=0), "clip_norm"),
])
def test_bad_hyperparameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_sgd_weight_decay_is_l2_in_the_gradient():
    lr, wd, w = 0.1, 0.05, W0.copy()
    for _ in range(4):
        w = w - lr * (grad(w) + wd * w)
    np.testing.assert_allclose(steps(quadratic_model(optim.SGD(lr, weight_decay=wd)), 4), w, rtol=1e-12)


def test_adamw_decays_before_the_adam_step():
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.999, 1e-8, 0.1
    w, m, v = W0.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, 6):                      # Loshchilov and Hutter (2019), decoupled decay
        g = grad(w)
        w = w * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    got = steps(quadratic_model(optim.AdamW(lr, b1, b2, eps, weight_decay=wd)), 5)
    np.testing.assert_allclose(got, w, rtol=1e-10)


def test_rmsprop():
    lr, rho, eps, w, v = 0.01, 0.9, 1e-7, W0.copy(), np.zeros(3)
    for _ in range(6):                         # Hinton's lecture 6e
        g = grad(w)
        v = rho * v + (1 - rho) * g * g
        w = w - lr * g / (np.sqrt(v) + eps)
    np.testing.assert_allclose(steps(quadratic_model(optim.RMSprop(lr, rho, eps)), 6), w, rtol=1e-10)


@pytest.mark.parametrize("momentum, centered", [(0.9, False), (0.0, True), (0.5, True)])
def test_rmsprop_momentum_and_centered(momentum, centered):
    lr, rho, eps = 0.01, 0.8, 1e-7
    w, v, a, b = W0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(6):                         # Graves (2013) for centering; PyTorch's momentum
        g = grad(w)
        v = rho * v + (1 - rho) * g * g
        a = rho * a + (1 - rho) * g if centered else a
        b = momentum * b + g / (np.sqrt(v - a * a) + eps)
        w = w - lr * b
    opt = optim.RMSprop(lr, rho, eps, momentum=momentum, centered=centered)
    np.testing.assert_allclose(steps(quadratic_model(opt), 6), w, rtol=1e-10)


def test_rmsprop_round_trips_through_its_spec():
    opt = optim.RMSprop(0.01, momentum=0.5, centered=True)
    assert optim.from_spec(opt.spec()).spec() == opt.spec()
    with pytest.raises(ValueError, match="centered"):
        optim.RMSprop(centered="yes")


def test_adagrad():
    lr, eps, w, s = 0.1, 1e-10, W0.copy(), np.zeros(3)
    for _ in range(6):                         # Duchi, Hazan and Singer (2011)
        g = grad(w)
        s = s + g * g
        w = w - lr * g / (np.sqrt(s) + eps)
    np.testing.assert_allclose(steps(quadratic_model(optim.Adagrad(lr, eps)), 6), w, rtol=1e-10)


def test_adadelta():
    rho, eps, w, a, b = 0.9, 1e-6, W0.copy(), np.zeros(3), np.zeros(3)
    for _ in range(6):                         # Zeiler (2012), Algorithm 1
        g = grad(w)
        a = rho * a + (1 - rho) * g * g
        d = np.sqrt(b + eps) / np.sqrt(a + eps) * g
        b = rho * b + (1 - rho) * d * d
        w = w - d
    np.testing.assert_allclose(steps(quadratic_model(optim.Adadelta(1.0, rho, eps)), 6), w, rtol=1e-10)


def test_clipping_by_global_norm():
    from graphnn import Graph, Model
    g = Graph(dtype="float64")
    x = g.input("x", (None, 3))
    a, b = g.param("a", (3,)), g.param("b", (3,))
    model = Model(g, inputs=x, outputs=g.add(g.add(x, a), b))
    model.set_weights({"a": W0, "b": 2 * W0})
    model.compile(loss="mse", optimizer=optim.SGD(0.1, clip_norm=0.5))
    model.fit(np.zeros((1, 3)), C[None, :], epochs=1, batch_size=1, verbose=0)
    ga = gb = 2.0 / 3.0 * (3 * W0 - C)           # both see the same gradient
    norm = np.sqrt(np.sum(ga ** 2) + np.sum(gb ** 2))
    scale = min(1.0, 0.5 / (norm + 1e-6))
    assert norm > 0.5                             # so the clip bites
    np.testing.assert_allclose(model.get_weights()["a"], W0 - 0.1 * scale * ga, rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()["b"], 2 * W0 - 0.1 * scale * gb, rtol=1e-12)


def test_a_schedule_sets_the_rate_of_every_step():
    from graphnn.schedules import ExponentialDecay
    schedule = ExponentialDecay(0.2, decay_rate=0.5)
    w = W0.copy()
    for step in range(5):
        w = w - schedule(step) * grad(w)
    np.testing.assert_allclose(steps(quadratic_model(optim.SGD(schedule)), 5), w, rtol=1e-12)


def test_schedules_follow_their_formulas():
    from graphnn.schedules import CosineDecay, StepDecay, WarmUp, from_spec
    cosine = CosineDecay(1.0, decay_steps=10, alpha=0.1)
    assert cosine(0) == 1.0 and cosine(10) == pytest.approx(0.1) and cosine(20) == pytest.approx(0.1)
    assert cosine(5) == pytest.approx(0.1 + 0.9 * 0.5)
    warm = WarmUp(StepDecay(0.4, step_size=3, gamma=0.5), warmup_steps=4)
    assert [warm(s) for s in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert [warm(s) for s in (4, 7)] == pytest.approx([0.4, 0.2])
    assert from_spec(warm.spec())(7) == warm(7)


def test_sgd_nesterov_with_weight_decay_by_hand():
    # p = 1, g = 0.5, wd = 0.1, mu = 0.9, lr = 1: g' = 0.6, v = 0.6,
    # step = g' + mu v = 1.14, so p = -0.14 (the bug gave 2 lr mu v = 1.08: -0.08).
    from graphnn.runtime.kernels.update import sgd_update
    p, g, v = np.ones(1), np.full(1, 0.5), np.zeros(1)
    sgd_update([p, g, np.array(1.0), v], [p, v], step=np.empty(1),
               momentum=0.9, nesterov=True, weight_decay=0.1)()
    np.testing.assert_allclose(p, [-0.14], rtol=1e-15)
    np.testing.assert_allclose(v, [0.6], rtol=1e-15)


def test_sgd_nesterov_with_weight_decay_follows_pytorch_form():
    lr, mu, wd, w, v = 0.1, 0.9, 0.05, W0.copy(), np.zeros(3)
    for _ in range(10):                       # torch.optim.SGD's documented update
        g = grad(w) + wd * w
        v = mu * v + g
        w = w - lr * (g + mu * v)
    got = steps(quadratic_model(optim.SGD(lr, momentum=mu, nesterov=True, weight_decay=wd)), 10)
    np.testing.assert_allclose(got, w, rtol=1e-12)
