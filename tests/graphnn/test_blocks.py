"""Blocks: latent_sample (VAE), inception, sequential, and the up-convolution layer."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim


def vae_like(beta=0.5, seed=3):
    g = Graph(dtype="float64")
    x = g.input("x", (None, 6))
    z = g.latent_sample(x, 3, beta=beta, seed=seed, name="lat")
    model = Model(g, inputs=x, outputs=z)
    model.compile(loss="mse", optimizer=optim.SGD(0.01))
    return model


def test_kl_term_is_added_to_the_loss():
    model = vae_like()
    x = np.random.default_rng(0).normal(size=(5, 6))
    w = model.get_weights()
    mean = x @ w["lat/mean/W"] + w["lat/mean/b"]
    logvar = x @ w["lat/logvar/W"] + w["lat/logvar/b"]
    kl = -0.5 * np.sum(1 + logvar - mean ** 2 - np.exp(logvar)) / 5
    target = np.zeros((5, 3))
    # evaluation uses z = mean, so the data term is mse(mean, 0)
    expected = np.mean(mean ** 2) + 0.5 * kl
    assert model.evaluate(x, target)["loss"] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(model.predict(x), mean, rtol=1e-12)


def test_training_samples_are_reproducible_and_vary():
    from graphnn.compiler import build_program
    from graphnn.runtime import Executor

    def draws(seed):
        model = vae_like(seed=seed)
        model.program("train", 4)
        built = next(iter(model._built.values()))
        program = build_program(built["train"], [built["loss"], "lat/noise"], 4)
        ex = Executor(program, {k: v.copy() for k, v in model.variables.items()})
        ex.feed({"x": np.ones((4, 6)), "target": np.zeros((4, 3))})
        out = []
        for _ in range(2):
            ex.step()
            out.append(np.array(ex.views["lat/noise"]))
        return out
    a, b, c = draws(3), draws(3), draws(4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], c[0])


def test_inception_branches_and_parameter_count():
    g = Graph()
    x = g.input("img", (None, 3, 10, 10))
    y = g.inception(x, 4, (2, 6), (1, 2), 3, name="inc")
    assert y.shape == (None, 4 + 6 + 2 + 3, 10, 10)
    text = Model(g, inputs=x, outputs=y).summary(memory=False)
    # 1x1: 3*4+4; 3x3: (3*2+2) + (2*9*6+6); 5x5: (3*1+1) + (1*25*2+2); pool proj: 3*3+3
    assert "Total params: 206 " in text        # 16 + 8 + 114 + 4 + 52 + 12


def test_sequential_applies_layers_in_order_in_one_block():
    g = Graph()
    x = g.input("x", (None, 4))
    y = g.sequential(x, [("dense", {"units": 8, "activation": "tanh"}), ("dropout", {"rate": 0.1}),
                         ("dense", {"units": 2})], name="head")
    assert y.shape == (None, 2) and all(n.startswith("head/") or n == "x" for n in g.nx)
    with pytest.raises(ValueError, match="unknown layer type 'dense2'"):
        g.sequential(y, [("dense2", {})], name="bad")


def test_conv_transpose_layer_doubles_the_size():
    g = Graph()
    x = g.input("code", (None, 4, 7, 7))
    y = g.conv_transpose2d(x, 2, 3, strides=2, padding=1, output_padding=1, activation="relu")
    assert y.shape == (None, 2, 14, 14)
    assert g.upsample2d(y, 2).shape == (None, 2, 28, 28)
