"""The main job (``make demo``): a small CNN on the embedded UCI digits.

Trains with a progress bar, prints the test accuracy, and writes into ``out``:
``net.svg`` (the compiled training program), ``memory.png`` (its memory plan),
``curves.png`` (loss and accuracy per epoch) and ``model.gnn`` (the trained model).
"""
from __future__ import annotations

import os

from . import Graph, Model, datasets, optim
from .viz import plot_model, write


def digits_cnn(seed: int = 0) -> Model:
    """conv8-pool-conv16-pool-dense64-dense10 on (N, 1, 8, 8) digits: 8 x 9 + 8,
    16 x 8 x 9 + 16, 64 x 64 + 64 and 64 x 10 + 10 parameters.

    >>> m = digits_cnn()
    >>> [r["name"] for r in m.graph.layers if r["type"] in ("conv2d", "dense")], m.outputs
    (['conv1', 'conv2', 'hidden', 'logits'], ['logits/bias_add'])
    >>> m.summary(memory=False).splitlines()[-1]
    'Total params: 6,058 (trainable 6,058, non-trainable 0)'
    """
    g = Graph()
    image = g.input("image", (None, 1, 8, 8))
    h = g.max_pool2d(g.conv2d(image, 8, 3, padding="same", activation="relu", name="conv1"), 2)
    h = g.max_pool2d(g.conv2d(h, 16, 3, padding="same", activation="relu", name="conv2"), 2)
    h = g.dense(g.flatten(h), 64, activation="relu", name="hidden")
    return Model(g, inputs=image, outputs=g.dense(h, 10, name="logits"), seed=seed)


def run_demo(out: str = "out", epochs: int = 15, seed: int = 0, verbose: int = 1) -> dict:
    """Train ``digits_cnn`` on three quarters of the digits for ``epochs`` (Adam,
    lr 3e-3, batch 32), test on the rest, and write net.svg, model.gnn, curves.png
    and memory.png into ``out``. Returns the test loss and accuracy, the history
    and the files written. (No example here: one epoch and its pictures take
    about half a second; ``graphnn demo`` runs it; tests/e2e/test_examples.py checks its accuracy and files.)"""
    x, y = datasets.digits()
    (x_train, y_train), (x_test, y_test) = datasets.split(x[:, None], y, 0.25, seed)
    model = digits_cnn(seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(3e-3), metrics=["accuracy"])
    if verbose:
        print(f"UCI digits: {len(x_train)} train / {len(x_test)} test images, 8x8\n")
        print(model.summary(batch_size=32), "\n")
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32,
                        validation_data=(x_test, y_test), seed=seed, verbose=verbose)
    result = model.evaluate(x_test, y_test)
    os.makedirs(out, exist_ok=True)
    # each file is reported as it was written (without graphviz's dot: net.dot, not net.svg)
    written = [write(plot_model(model, view="compiled"), os.path.join(out, "net.svg"))]
    model.save(os.path.join(out, "model.gnn"))
    written.append(os.path.join(out, "model.gnn"))
    try:
        from .plots import plot_history, plot_memory
        plot_history(history, os.path.join(out, "curves.png"))
        plot_memory(model.program("train", 32), os.path.join(out, "memory.png"),
                    title="the demo's training step, batch 32: every buffer in one arena")
        written += [os.path.join(out, "curves.png"), os.path.join(out, "memory.png")]
    except ImportError as e:
        print(f"note: {e}; curves.png and memory.png not written")
    if verbose:
        print(f"\ntest accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f})")
        print("wrote " + ", ".join(written))
    return {**result, "history": history.history, "files": written}
