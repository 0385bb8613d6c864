"""A small inception network on MNIST (Szegedy et al., 2015): a stem convolution,
an inception module (parallel 1x1, 3x3, 5x5 and pooling branches, concatenated
along the channels), pooling and a dense classifier. Each module is one block in
``model.summary()`` and one cluster in ``plot_model(model, expand_nested=True)``.

    python examples/mnist_inception.py [path/to/mnist]
"""
from __future__ import annotations

import os
import sys

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")


def build(seed=0) -> Model:
    g = Graph()
    image = g.input("image", (None, 1, 28, 28))
    h = g.max_pool2d(g.conv2d(image, 16, 3, padding="same", activation="relu", name="stem"), 2)
    h = g.inception(h, 8, (8, 16), (4, 8), 8, name="inception")             # 40 x 14 x 14
    h = g.flatten(g.max_pool2d(h, 2))                                         # 40 x 7 x 7
    h = g.dense(h, 128, activation="relu", name="dense")
    return Model(g, inputs=image, outputs=g.dense(h, 10, name="logits"), seed=seed)


def run(path=DEFAULT, epochs=8, seed=0, verbose=1):
    (x_train, y_train), (x_test, y_test) = datasets.mnist_split(path)
    x_train, x_test = x_train[:, None], x_test[:, None]
    model = build(seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(1e-3), metrics=["accuracy"])
    hist = model.fit(x_train, y_train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    return {"train_accuracy": hist.history["accuracy"][-1],
            "test_accuracy": model.evaluate(x_test, y_test)["accuracy"]}


if __name__ == "__main__":
    r = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(f"train accuracy {r['train_accuracy']:.4f}, test accuracy {r['test_accuracy']:.4f}")
