"""A siamese network on MNIST: are two images the same digit?

One encoder (a small MLP, built as a Model of its own) is applied to both images
of a pair with the same weights (``g.layer(encoder)``: graphnn.reuse); the
squared difference of the two codes goes to a logistic unit. The summary counts
the encoder's weights once, and training sums the gradients of both uses.

Pairs come from the split of ../shared/data/README.md (5,000 train / 5,000
test images), half of them of the same digit.

    python examples/mnist_siamese.py [path/to/mnist]
"""
from __future__ import annotations

import os
import sys

import numpy as np

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")


def build_encoder(seed: int = 0) -> Model:
    g = Graph()
    pixels = g.input("pixels", (None, 784))
    h = g.dense(pixels, 128, activation="relu", name="hidden")
    return Model(g, inputs=pixels, outputs=g.dense(h, 32, activation="tanh", name="code"), seed=seed)


def build(seed: int = 0) -> Model:
    g = Graph()
    left, right = g.input("left", (None, 784)), g.input("right", (None, 784))
    encoder = g.layer(build_encoder(seed), name="encoder")      # one set of weights, two uses
    gap = g.op("subtract", [encoder(left), encoder(right)], name="gap")
    same = g.dense(g.op("multiply", [gap, gap], name="gap_squared"), 1, activation="sigmoid",
                   name="same")
    return Model(g, inputs=[left, right], outputs=same, seed=seed)


def pairs(x, y, n, seed):
    """``n`` pairs of images, half of the same digit, half of different digits."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(x), n)
    by_digit = [np.flatnonzero(y == d) for d in range(10)]
    second = rng.integers(0, len(x), n)
    same = np.arange(n) % 2 == 0
    second[same] = [rng.choice(by_digit[y[i]]) for i in first[same]]
    label = (y[first] == y[second]).astype(np.float32)[:, None]
    return [x[first], x[second]], label


def run(path: str = DEFAULT, epochs: int = 6, seed: int = 0, verbose: int = 1) -> dict:
    (x_train, y_train), (x_test, y_test) = datasets.mnist_split(path)
    x_train, x_test = x_train.reshape(-1, 784), x_test.reshape(-1, 784)
    train, test = pairs(x_train, y_train, 20000, seed), pairs(x_test, y_test, 5000, seed + 1)
    model = build(seed)
    model.compile(loss="binary_cross_entropy", optimizer=optim.Adam(1e-3), metrics=["accuracy"])
    if verbose:
        print(model.summary(memory=False))
    hist = model.fit(*train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    result = model.evaluate(*test)
    return {"train_accuracy": hist.history["accuracy"][-1], "test_accuracy": result["accuracy"],
            "model": model}


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(f"same-digit pairs: train accuracy {result['train_accuracy']:.4f}, "
          f"test accuracy {result['test_accuracy']:.4f}")
