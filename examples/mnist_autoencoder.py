"""A convolutional autoencoder on MNIST: strided convolutions down to a 7x7 code,
up-convolutions (conv_transpose2d) back to 28x28. Reports the test MSE and
writes out/autoencoder.png (test images over their reconstructions).

    python examples/mnist_autoencoder.py [path/to/mnist]
"""
from __future__ import annotations

import os
import sys

import numpy as np

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")


def build(seed=0) -> Model:
    g = Graph()
    image = g.input("image", (None, 1, 28, 28))
    h = g.conv2d(image, 16, 3, strides=2, padding=1, activation="relu", name="down1")   # 14x14
    code = g.conv2d(h, 8, 3, strides=2, padding=1, activation="relu", name="down2")     # 7x7
    h = g.conv_transpose2d(code, 16, 3, strides=2, padding=1, output_padding=1,
                           activation="relu", name="up1")                               # 14x14
    out = g.conv_transpose2d(h, 1, 3, strides=2, padding=1, output_padding=1,
                             activation="sigmoid", name="up2")                          # 28x28
    return Model(g, inputs=image, outputs=out, seed=seed)


def run(path=DEFAULT, epochs=8, seed=0, verbose=1, out="out"):
    (x_train, _), (x_test, _) = datasets.mnist_split(path)
    x_train, x_test = x_train[:, None], x_test[:, None]
    model = build(seed)
    model.compile(loss="mse", optimizer=optim.Adam(2e-3))
    model.fit(x_train, x_train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    result = {"test_mse": model.evaluate(x_test, x_test)["loss"], "files": []}
    try:
        import matplotlib.pyplot as plt
        recon = model.predict(x_test[:10])
        image = np.concatenate([np.concatenate(list(x_test[:10, 0]), axis=1),
                                np.concatenate(list(recon[:, 0]), axis=1)], axis=0)
        os.makedirs(out, exist_ok=True)
        fig, ax = plt.subplots(figsize=(10, 2.2))
        ax.imshow(image, cmap="gray")
        ax.set_title(f"test images (top) and reconstructions; test MSE {result['test_mse']:.4f}")
        ax.axis("off")
        path_png = os.path.join(out, "autoencoder.png")
        fig.savefig(path_png, dpi=100, bbox_inches="tight")
        plt.close(fig)
        result["files"].append(path_png)
    except ImportError as e:
        print(f"(no picture: {e})")
    return result


if __name__ == "__main__":
    r = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(f"test MSE {r['test_mse']:.4f}; wrote {', '.join(r['files'])}")
