"""One training run on the digits, as a process that mpiexec starts (or a plain one).

    mpiexec -n 2 python -m tests.distributed.job mlp adam 25 OUT.npz [--fail-rank 1]

Builds the digits MLP or CNN, fits it (distributed when started by mpiexec,
``batch`` being the global batch) and has rank 0 write the final weights and
the epoch losses to OUT.npz. ``--fail-rank R`` feeds rank R a NaN, so that
rank fails and the others must stop too.
"""
from __future__ import annotations

import argparse

import numpy as np

from graphnn import Graph, Model, datasets, distributed, optim

EPOCHS = 3


def build(kind: str, optimizer: str, dtype: str = "float32") -> Model:
    """The digits MLP (64-32-10) or CNN (conv8-pool-dense32-10), compiled."""
    g = Graph(dtype=dtype)
    if kind == "mlp":
        x = g.input("x", (None, 64))
        h = g.dense(x, 32, activation="relu")
    else:
        x = g.input("x", (None, 1, 8, 8))
        h = g.max_pool2d(g.conv2d(x, 8, 3, padding="same", activation="relu"), 2)
        h = g.dense(g.flatten(h), 32, activation="relu")
    model = Model(g, inputs=x, outputs=g.dense(h, 10), seed=3)
    opt = optim.SGD(0.05, momentum=0.9) if optimizer == "sgd" else optim.Adam(3e-3)
    model.compile(loss="softmax_cross_entropy", optimizer=opt, metrics=["accuracy"])
    return model


def data(kind: str, dtype: str = "float32"):
    """The first 1,001 digits, shaped for ``kind``: at a global batch of 25, two ranks
    take 13 and 12 samples, and the last batch has one sample (rank 1 gets none)."""
    x, y = datasets.digits()
    x, y = x[:1001].astype(dtype), y[:1001]
    return (x.reshape(len(x), 64) if kind == "mlp" else x[:, None]), y


def sample_weights(n: int) -> np.ndarray:
    """Weights from 0 to 2 across the samples (some samples count for nothing)."""
    return np.linspace(0.0, 2.0, n)


def callbacks():
    """A learning rate halved every epoch, and a stop after epoch 2 (no epoch
    improves the loss by 10): both decided on rank 0 alone."""
    from graphnn.callbacks import EarlyStopping, LearningRateScheduler
    return [LearningRateScheduler(lambda epoch, lr: lr * 0.5),
            EarlyStopping(monitor="loss", min_delta=10.0, patience=0)]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["mlp", "cnn"])
    p.add_argument("optimizer", choices=["sgd", "adam"])
    p.add_argument("batch", type=int)
    p.add_argument("out")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--fail-rank", type=int)
    p.add_argument("--callbacks", action="store_true", help="halve the rate each epoch; stop early")
    p.add_argument("--weighted", action="store_true", help="train with sample_weights(n)")
    args = p.parse_args(argv)
    model = build(args.kind, args.optimizer, args.dtype)
    x, y = data(args.kind, args.dtype)
    ranks = distributed.Ranks()
    if ranks.rank == args.fail_rank:
        x = x.copy()
        x[7] = np.nan
    history = model.fit(x, y, epochs=EPOCHS, batch_size=args.batch, verbose=0, distributed=True,
                        callbacks=callbacks() if args.callbacks else None,
                        sample_weight=sample_weights(len(x)) if args.weighted else None)
    if ranks.root:
        np.savez(args.out, loss=history.history["loss"], **model.get_weights())


if __name__ == "__main__":
    main()
