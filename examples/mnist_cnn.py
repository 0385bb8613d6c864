"""A small CNN on MNIST: conv16-pool-conv32-pool-dense128-dense10.

Uses the split of ../shared/data/README.md: the first 5,000 images of the MNIST
test file train, the last 5,000 test. Convolutions compile to im2col + GEMM
with bias and ReLU fused in; see the program with ``model.program("train", 64)``.

    python examples/mnist_cnn.py [path/to/mnist]      # default ../shared/data/mnist
"""
from __future__ import annotations

import os
import sys

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")


def build(seed: int = 0) -> Model:
    g = Graph()
    image = g.input("image", (None, 1, 28, 28))
    h = g.max_pool2d(g.conv2d(image, 16, 3, padding="same", activation="relu", name="conv1"), 2)
    h = g.max_pool2d(g.conv2d(h, 32, 3, padding="same", activation="relu", name="conv2"), 2)
    h = g.dense(g.flatten(h), 128, activation="relu", name="dense")
    logits = g.dense(h, 10, name="logits")
    return Model(g, inputs=image, outputs=logits, seed=seed)


def run(path: str = DEFAULT, epochs: int = 11, seed: int = 0, verbose: int = 1) -> dict:
    (x_train, y_train), (x_test, y_test) = datasets.mnist_split(path)
    x_train, x_test = x_train[:, None], x_test[:, None]    # (N, 1, 28, 28): channels first
    model = build(seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(1e-3), metrics=["accuracy"])
    hist = model.fit(x_train, y_train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    test = model.evaluate(x_test, y_test)
    return {"train_accuracy": hist.history["accuracy"][-1], "test_accuracy": test["accuracy"]}


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(f"train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f}")
