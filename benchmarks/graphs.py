"""The benchmark models, as graphnn graphs, and synthetic graphs of a given size."""
from __future__ import annotations

from graphnn import Graph, Model, optim


def mlp(batch=128):
    """MLP 784-512-256-10."""
    g = Graph()
    x = g.input("x", (None, 784))
    h = g.dense(x, 512, activation="relu")
    h = g.dense(h, 256, activation="relu")
    return g, x, g.dense(h, 10), (batch, 784)


def cnn(batch=64):
    """conv16-pool-conv32-pool-dense128-dense10 on 28x28 (3x3 'same' convolutions)."""
    g = Graph()
    x = g.input("x", (None, 1, 28, 28))
    h = g.max_pool2d(g.conv2d(x, 16, 3, padding="same", activation="relu"), 2)
    h = g.max_pool2d(g.conv2d(h, 32, 3, padding="same", activation="relu"), 2)
    h = g.dense(g.flatten(h), 128, activation="relu")
    return g, x, g.dense(h, 10), (batch, 1, 28, 28)


def lstm(batch=64, units=128):
    """LSTM of 128 units over 28 steps of 28 features (MNIST row by row), dense10."""
    g = Graph()
    x = g.input("x", (None, 28, 28))
    return g, x, g.dense(g.lstm(x, units), 10), (batch, 28, 28)


def gru(batch=64, units=128):
    """GRU of 128 units over 28 steps of 28 features, dense10."""
    g = Graph()
    x = g.input("x", (None, 28, 28))
    return g, x, g.dense(g.gru(x, units), 10), (batch, 28, 28)


def sized_graph(nodes: int, width: int = 16):
    """A residual MLP of small dense layers with about ``nodes`` declared nodes
    (each block: W, matmul, b, bias_add, relu, add = 6 nodes)."""
    g = Graph()
    x = g.input("x", (None, width))
    h = x
    while len(g) + 6 <= nodes - 5:
        h = g.add(h, g.dense(h, width, activation="relu"))
    return g, x, g.dense(h, 10)


def compiled(graph_fn, fuse=True, batch=None):
    """A Model over the graph, compiled with SGD + momentum (as every variant)."""
    g, x, out, shape = graph_fn()
    model = Model(g, inputs=x, outputs=out, seed=0)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.01, momentum=0.9), fuse=fuse)
    return model, shape
