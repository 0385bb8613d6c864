"""End to end: the examples reach their published results."""
from __future__ import annotations

import importlib.util
import os

import pytest

from graphnn import Graph, Model, datasets, optim
from graphnn.demo import run_demo
from tests.helpers import MNIST_DIR

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_greater_than_b_without_hidden_layer_reaches_99_percent():
    result = example("a_greater_than_b").run()
    assert result["test_accuracy"] >= 0.99
    wa, wb = result["weights"]
    assert wa > 0 > wb and abs(wa + wb) < 0.1 * abs(wa)   # the boundary is a = b


def test_a_approx_b_needs_a_hidden_layer():
    result = example("a_approx_b").run()
    flat, deep = result["no_hidden"], result["one_hidden"]
    assert flat["test_accuracy"] <= flat["majority_baseline"] + 0.02    # no better than guessing
    assert deep["test_accuracy"] >= 0.95


def test_digits_mlp_reaches_95_percent():
    x, y = datasets.digits()
    (xt, yt), (xv, yv) = datasets.split(x.reshape(len(x), -1), y, 0.25, seed=0)
    g = Graph()
    pixels = g.input("pixels", (None, 64))
    logits = g.dense(g.dense(pixels, 64, activation="relu"), 10)
    model = Model(g, inputs=pixels, outputs=logits, seed=0)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(1e-3), metrics=["accuracy"])
    model.fit(xt, yt, epochs=30, batch_size=32, seed=0, verbose=0)
    assert model.evaluate(xv, yv)["accuracy"] >= 0.95


def test_demo_cnn_reaches_95_percent_and_writes_its_files(tmp_path):
    result = run_demo(out=str(tmp_path), verbose=0)
    assert result["accuracy"] >= 0.95
    assert (tmp_path / "net.svg").read_text().lstrip().startswith("<?xml") or \
        (tmp_path / "net.dot").exists()
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "model.gnn").exists()


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_mlp_reaches_93_percent():
    result = example("mnist_mlp").run(MNIST_DIR, verbose=0)
    assert result["test_accuracy"] >= 0.93


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_cnn_reaches_97_percent():
    result = example("mnist_cnn").run(MNIST_DIR, verbose=0)
    assert result["test_accuracy"] >= 0.97


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_mnist_recurrent_reaches_93_percent(cell):
    result = example("mnist_lstm").run(MNIST_DIR, cell=cell, verbose=0)
    assert result["test_accuracy"] >= 0.93


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_vae_reports_its_elbo_and_draws(tmp_path):
    result = example("mnist_vae").run(MNIST_DIR, verbose=0, out=str(tmp_path))
    assert -160 < result["elbo"] < -80          # nats per image; 5,000 training images
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae_reconstructions.png", "vae_samples.png"]


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_autoencoder_reconstructs(tmp_path):
    result = example("mnist_autoencoder").run(MNIST_DIR, verbose=0, out=str(tmp_path))
    assert result["test_mse"] < 0.01          # predicting the mean image gives about 0.067
    assert (tmp_path / "autoencoder.png").exists()


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_inception_reaches_97_percent():
    assert example("mnist_inception").run(MNIST_DIR, verbose=0)["test_accuracy"] >= 0.97


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_siamese_shares_one_encoder_and_tells_pairs_apart():
    module = example("mnist_siamese")
    result = module.run(MNIST_DIR, epochs=3, verbose=0)
    assert result["test_accuracy"] >= 0.88
    model = result["model"]
    encoder = module.build_encoder()
    mine = sum(w.size for w in encoder.get_weights().values())
    # the encoder's weights once, plus the logistic unit's 32 + 1
    assert sum(w.size for w in model.get_weights().values()) == mine + 33
    assert f"Total params: {mine + 33:,}" in model.summary(memory=False)
