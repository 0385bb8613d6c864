"""The ``graphnn`` command line.

    graphnn demo [--epochs N] [--seed S]   train an MLP on the embedded digits

>>> main(["--version"])
graphnn 0.1.0
0
"""
from __future__ import annotations

import argparse
import sys


def demo(epochs: int = 30, seed: int = 0) -> float:
    """Train a 64-64-10 ReLU MLP on the embedded UCI digits; return test accuracy."""
    from . import Graph, Model, datasets, optim

    x, y = datasets.digits()
    (x_train, y_train), (x_test, y_test) = datasets.split(x.reshape(len(x), -1), y, 0.25, seed)
    g = Graph()
    pixels = g.input("pixels", (None, 64))
    hidden = g.dense(pixels, 64, activation="relu", name="hidden")
    logits = g.dense(hidden, 10, name="logits")
    model = Model(g, inputs=pixels, outputs=logits, seed=seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(1e-3), metrics=["accuracy"])
    print(f"UCI digits: {len(x_train)} train / {len(x_test)} test images, 8x8")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_test, y_test),
              seed=seed)
    result = model.evaluate(x_test, y_test)
    print(f"test accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f})")
    return result["accuracy"]


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="graphnn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("demo", help="train an MLP on the embedded digits data")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.version:
        print(f"graphnn {__version__}")
        return 0
    if args.command == "demo":
        try:
            demo(args.epochs, args.seed)
        except (ValueError, FloatingPointError) as e:
            print(f"graphnn: error: {e}", file=sys.stderr)
            return 1
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
