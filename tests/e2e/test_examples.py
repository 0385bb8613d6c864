"""End to end: the examples reach their published results."""
from __future__ import annotations

import importlib.util
import os

import pytest

from graphnn.cli import demo
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


def test_digits_mlp_reaches_95_percent(capsys):
    assert demo(epochs=30, seed=0) >= 0.95


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_mlp_reaches_93_percent():
    result = example("mnist_mlp").run(MNIST_DIR, verbose=0)
    assert result["test_accuracy"] >= 0.93


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_cnn_reaches_97_percent():
    result = example("mnist_cnn").run(MNIST_DIR, verbose=0)
    assert result["test_accuracy"] >= 0.97
