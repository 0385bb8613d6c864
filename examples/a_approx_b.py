"""a ~ b: |a - b| < 0.2 is not linearly separable; a hidden layer makes it so.

The positive class is a band around the diagonal a = b. A network with no
hidden layer can only cut the square with one line, so it does no better than
guessing the larger class; one hidden layer of a few units learns both edges
of the band.

    python examples/a_approx_b.py      # also writes out/a_approx_b_{no,one}_hidden.png
"""
from __future__ import annotations

import numpy as np

from graphnn import Graph, Model, optim

EPS = 0.2


def make_data(n: int, seed: int):
    ab = np.random.default_rng(seed).uniform(0, 1, size=(n, 2)).astype(np.float32)
    return ab, (np.abs(ab[:, 0] - ab[:, 1]) < EPS).astype(np.float32)[:, None]


def build(hidden: int | None = 16, seed: int = 0) -> Model:
    """A logistic unit on (a, b), after ``hidden`` tanh units (None: none)."""
    g = Graph()
    ab = g.input("ab", (None, 2))
    h = ab if hidden is None else g.dense(ab, hidden, activation="tanh", name="hidden")
    return Model(g, inputs=ab, outputs=g.dense(h, 1, activation="sigmoid", name="decide"), seed=seed)


def train(hidden: int | None, epochs: int = 150, seed: int = 0) -> dict:
    """Train with no hidden layer (hidden=None) or one of ``hidden`` tanh units."""
    x_train, y_train = make_data(2000, seed)
    x_test, y_test = make_data(2000, seed + 1)
    model = build(hidden, seed)
    model.compile(loss="binary_cross_entropy", optimizer=optim.Adam(0.02), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, seed=seed, verbose=0)
    return {"test_accuracy": model.evaluate(x_test, y_test)["accuracy"],
            "majority_baseline": float(max(y_test.mean(), 1 - y_test.mean())),
            "model": model, "test_data": (x_test, y_test)}


def run(seed: int = 0) -> dict:
    return {"no_hidden": train(None, seed=seed), "one_hidden": train(16, seed=seed)}


if __name__ == "__main__":
    r = run()
    print(f"always guessing the larger class: {r['no_hidden']['majority_baseline']:.4f}")
    print(f"no hidden layer:     test accuracy {r['no_hidden']['test_accuracy']:.4f}  (fails)")
    print(f"one hidden layer 16: test accuracy {r['one_hidden']['test_accuracy']:.4f}")
    try:
        from graphnn.plots import plot_decision_boundary
        for key, title in (("no_hidden", "|a - b| < 0.2, no hidden layer"),
                           ("one_hidden", "|a - b| < 0.2, one hidden layer")):
            path = f"out/a_approx_b_{key}.png"
            plot_decision_boundary(r[key]["model"], *r[key]["test_data"], path, title=title)
            print(f"wrote {path}")
    except ImportError as e:
        print(f"(no plot: {e})")
