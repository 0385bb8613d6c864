"""The benchmark models (benchmarks/graphs.py) at their own sizes, built here so the
runtime's thread tests do not import the benchmarks: the CNN, the MLP and the LSTM,
float32, SGD with momentum, seed 0."""
from __future__ import annotations

from graphnn import Graph, Model, optim


def benchmark_training_program(kind: str):
    """(model, its training Program, the input shape) of the benchmark ``kind``:
    "cnn", "mlp" or "lstm"."""
    g = Graph()
    if kind == "cnn":
        x = g.input("x", (None, 1, 28, 28))
        h = g.max_pool2d(g.conv2d(x, 16, 3, padding="same", activation="relu"), 2)
        h = g.max_pool2d(g.conv2d(h, 32, 3, padding="same", activation="relu"), 2)
        h = g.dense(g.flatten(h), 128, activation="relu")
        shape = (64, 1, 28, 28)
    elif kind == "mlp":
        x = g.input("x", (None, 784))
        h = g.dense(g.dense(x, 512, activation="relu"), 256, activation="relu")
        shape = (128, 784)
    elif kind == "lstm":
        x = g.input("x", (None, 28, 28))
        h, shape = g.lstm(x, 128), (64, 28, 28)
    else:
        raise ValueError(f"unknown benchmark model {kind!r}")
    model = Model(g, inputs=x, outputs=g.dense(h, 10), seed=0)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.05, momentum=0.9))
    return model, model.program("train", shape[0]), shape
