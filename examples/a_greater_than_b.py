"""a > b: a linearly separable problem, solved with no hidden layer.

Two numbers a, b drawn uniformly from [0, 1]; the label says whether a > b.
The boundary a = b is a line, so one sigmoid unit (logistic regression) draws it.

    python examples/a_greater_than_b.py      # also writes out/a_greater_than_b.png
"""
from __future__ import annotations

import numpy as np

from graphnn import Graph, Model, optim


def make_data(n: int, seed: int):
    ab = np.random.default_rng(seed).uniform(0, 1, size=(n, 2)).astype(np.float32)
    return ab, (ab[:, 0] > ab[:, 1]).astype(np.float32)[:, None]


def build(seed: int = 0) -> Model:
    """One logistic unit on (a, b): no hidden layer."""
    g = Graph()
    ab = g.input("ab", (None, 2))
    return Model(g, inputs=ab, outputs=g.dense(ab, 1, activation="sigmoid", name="decide"), seed=seed)


def run(epochs: int = 60, seed: int = 0, verbose: int = 0) -> dict:
    """Train on 4,000 pairs, test on 1,000 others; return both accuracies."""
    x_train, y_train = make_data(4000, seed)
    x_test, y_test = make_data(1000, seed + 1)
    model = build(seed)
    model.compile(loss="binary_cross_entropy", optimizer=optim.Adam(0.01), metrics=["accuracy"])
    hist = model.fit(x_train, y_train, epochs=epochs, batch_size=32, seed=seed, verbose=verbose)
    test = model.evaluate(x_test, y_test)
    w = model.get_weights()
    return {"train_accuracy": hist.history["accuracy"][-1], "test_accuracy": test["accuracy"],
            "weights": w["decide/W"].ravel().tolist(), "bias": float(w["decide/b"][0]),
            "model": model, "test_data": (x_test, y_test)}


if __name__ == "__main__":
    result = run(verbose=0)
    wa, wb = result["weights"]
    print(f"learned boundary: {wa:+.2f} a {wb:+.2f} b {result['bias']:+.2f} = 0  (ideal: a - b = 0)")
    print(f"train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f}")
    try:
        from graphnn.plots import plot_decision_boundary
        plot_decision_boundary(result["model"], *result["test_data"], "out/a_greater_than_b.png",
                               title="a > b, no hidden layer")
        print("wrote out/a_greater_than_b.png")
    except ImportError as e:
        print(f"(no plot: {e})")
