"""Layer reuse: a shared layer's weight gets the sum of its uses' gradients
(checked against float64 finite differences of a NumPy forward pass, one use at a
time), is counted once, and survives specs; a Model applied as a block starts
from the model's weights and shares them when applied again."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, load_spec, optim


def numpy_loss(wa, ba, wb, bb, a, b, t):
    """tanh(a Wa + ba) + tanh(b Wb + bb), its mean squared error against t."""
    pred = np.tanh(a @ wa + ba) + np.tanh(b @ wb + bb)
    return np.mean((pred - t) ** 2)


def finite_difference(f, w, eps=1e-6):
    grad = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        up, down = w.copy(), w.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize("style", ["layer", "share"])
def test_shared_weights_get_the_sum_of_their_uses_gradients(style):
    g = Graph(dtype="float64")
    a, b = g.input("a", (None, 3)), g.input("b", (None, 3))
    if style == "layer":
        fc = g.layer("dense", 2, activation="tanh", name="fc")
        ya, yb = fc(a), fc(b)
    else:
        ya = g.dense(a, 2, activation="tanh", name="fc")
        yb = g.dense(b, 2, activation="tanh", name="fc_b", share="fc")
    model = Model(g, inputs=[a, b], outputs=g.add(ya, yb), seed=3)
    model.compile(loss="mse", optimizer=optim.SGD(1.0))
    rng = np.random.default_rng(0)
    xa, xb, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    w, bias = model.get_weights()["fc/W"], model.get_weights()["fc/b"]
    assert sorted(model.get_weights()) == ["fc/W", "fc/b"]
    model.fit([xa, xb], t, epochs=1, batch_size=5, shuffle=False, verbose=0)
    grad_w = w - model.get_weights()["fc/W"]           # SGD with lr 1: the step is the gradient
    grad_b = bias - model.get_weights()["fc/b"]
    use_a = finite_difference(lambda v: numpy_loss(v, bias, w, bias, xa, xb, t), w)
    use_b = finite_difference(lambda v: numpy_loss(w, bias, v, bias, xa, xb, t), w)
    assert np.abs(use_a).max() > 1e-3 and np.abs(use_b).max() > 1e-3
    np.testing.assert_allclose(grad_w, use_a + use_b, rtol=1e-6, atol=1e-9)
    bias_a = finite_difference(lambda v: numpy_loss(w, v, w, bias, xa, xb, t), bias)
    bias_b = finite_difference(lambda v: numpy_loss(w, bias, w, v, xa, xb, t), bias)
    np.testing.assert_allclose(grad_b, bias_a + bias_b, rtol=1e-6, atol=1e-9)


def test_shared_layers_count_once_and_survive_a_spec():
    g = Graph()
    a, b = g.input("a", (None, 6)), g.input("b", (None, 6))
    enc = g.layer("dense", 4, activation="relu", name="enc")
    out = g.add(enc(a), enc(b))
    text = Model(g, inputs=[a, b], outputs=out).summary(memory=False)
    assert "Total params: 28 (trainable 28" in text          # 6 x 4 + 4, once
    row = next(line for line in text.splitlines() if line.startswith("enc_1"))
    assert "(shared)" in row
    again = load_spec(g.to_spec())
    assert sorted(n for n, d in again.nx.nodes(data=True) if d["op"] == "param") == ["enc/W", "enc/b"]


def test_bad_sharing_is_named():
    g = Graph()
    x = g.input("x", (None, 4))
    g.dense(x, 3, name="fc")
    with pytest.raises(ValueError, match="no layer of that name"):
        g.dense(x, 3, share="nothing")
    with pytest.raises(ValueError, match="is a dense, not a conv2d"):
        g.conv2d(g.reshape(x, (1, 2, 2)), 3, 1, share="fc")
    with pytest.raises(ValueError, match=r"shape \(4, 3\), this use needs \(4, 5\)"):
        g.dense(x, 5, share="fc")


def test_a_model_as_a_block_starts_from_its_weights_and_shares_them():
    e = Graph()
    x = e.input("x", (None, 4))
    encoder = Model(e, inputs=x, outputs=e.dense(e.dense(x, 5, activation="tanh", name="h"), 2, name="code"))
    encoder.set_weights({k: np.full_like(v, 0.25) for k, v in encoder.get_weights().items()})
    g = Graph()
    a, b = g.input("a", (None, 4)), g.input("b", (None, 4))
    twin = g.layer(encoder)
    ca, cb = twin(a), twin(b)
    siamese = Model(g, inputs=[a, b], outputs=g.op("subtract", [ca, cb]))
    assert sorted(siamese.get_weights()) == ["model/code/W", "model/code/b", "model/h/W", "model/h/b"]
    assert all((w == 0.25).all() for w in siamese.get_weights().values())
    data = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(siamese.predict([data, data]), 0, atol=0)
    # the block computes what the model does
    h = Graph()
    y = h.input("y", (None, 4))
    single = Model(h, inputs=y, outputs=h.apply(encoder, y, name="enc"))
    np.testing.assert_allclose(single.predict(data), encoder.predict(data), rtol=1e-6)


def test_a_graph_with_a_model_block_round_trips_through_a_spec():
    e = Graph()
    x = e.input("x", (None, 4))
    encoder = Model(e, inputs=x, outputs=e.dense(x, 2, name="code"))
    g = Graph()
    a, b = g.input("a", (None, 4)), g.input("b", (None, 4))
    twin = g.layer(encoder)
    g.op("subtract", [twin(a), twin(b)], name="gap")
    again = load_spec(g.to_spec())
    assert sorted(again.nx.nodes) == sorted(g.nx.nodes)
    assert set(again.nx.edges) == set(g.nx.edges)
