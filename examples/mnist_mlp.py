"""A ReLU MLP on MNIST: 784-512-256-10, trained with Adam.

Uses the split of ../shared/data/README.md: the first 5,000 images of the
MNIST test file train, the last 5,000 test.

    python examples/mnist_mlp.py [path/to/mnist]      # default ../shared/data/mnist
"""
from __future__ import annotations

import os
import sys

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")


def build(seed: int = 0) -> Model:
    g = Graph()
    pixels = g.input("pixels", (None, 784))
    h = g.dense(pixels, 512, activation="relu", name="hidden1")
    h = g.dense(h, 256, activation="relu", name="hidden2")
    return Model(g, inputs=pixels, outputs=g.dense(h, 10, name="logits"), seed=seed)


def run(path: str = DEFAULT, epochs: int = 15, seed: int = 0, verbose: int = 1) -> dict:
    (x_train, y_train), (x_test, y_test) = datasets.mnist_split(path)
    x_train, x_test = x_train.reshape(-1, 784), x_test.reshape(-1, 784)
    model = build(seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(5e-4), metrics=["accuracy"])
    hist = model.fit(x_train, y_train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    test = model.evaluate(x_test, y_test)
    return {"train_accuracy": hist.history["accuracy"][-1], "test_accuracy": test["accuracy"]}


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(f"train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f}")
