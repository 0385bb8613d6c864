"""Small versions of every kind of graph the examples and benchmarks build,
for tests that must hold on all of them (fused == unfused, memory plans)."""
from __future__ import annotations

import numpy as np

from graphnn import Graph


def mlp(dtype):
    g = Graph(dtype)
    x = g.input("x", (None, 12))
    h = g.dense(x, 16, activation="relu")
    h = g.dense(h, 8, activation="tanh")
    return g, x, g.dense(h, 3), "softmax_cross_entropy", (12,), 3


def a_approx_b(dtype):
    g = Graph(dtype)
    x = g.input("ab", (None, 2))
    h = g.dense(x, 6, activation="tanh")
    return g, x, g.dense(h, 1, activation="sigmoid"), "binary_cross_entropy", (2,), None


def cnn(dtype):
    g = Graph(dtype)
    x = g.input("img", (None, 1, 8, 8))
    h = g.max_pool2d(g.conv2d(x, 4, 3, padding="same", activation="relu"), 2)
    h = g.avg_pool2d(g.conv2d(h, 6, 3, strides=1, padding=1, activation="leaky_relu"), 2)
    h = g.dense(g.flatten(h), 10, activation="relu")
    return g, x, g.dense(h, 3), "softmax_cross_entropy", (1, 8, 8), 3


def sequence(dtype):
    g = Graph(dtype)
    x = g.input("seq", (None, 3, 20))
    h = g.max_pool1d(g.conv1d(x, 5, 3, padding="same", activation="softplus"), 2)
    h = g.conv1d(h, 4, 3, strides=2, activation="sigmoid")
    return g, x, g.dense(g.flatten(h), 2), "mse", (3, 20), None


def residual(dtype):
    g = Graph(dtype)
    x = g.input("x", (None, 8))
    h = g.dense(x, 8, activation="relu")
    h = g.relu(g.add(h, g.dense(h, 8)))
    h = g.global_avg_pool(g.reshape(g.dense(h, 16), (4, 2, 2)))
    return g, x, g.dense(h, 2), "l1", (8,), None


def softmax_head(dtype):
    g = Graph(dtype)
    x = g.input("x", (None, 6))
    probs = g.softmax(g.dense(x, 4))
    return g, x, probs, "categorical_cross_entropy", (6,), 4


def autoencoder(dtype):
    g = Graph(dtype)
    x = g.input("img", (None, 1, 8, 8))
    code = g.conv2d(x, 3, 3, strides=2, padding=1, activation="elu")
    h = g.conv_transpose2d(code, 2, 3, strides=2, padding=1, output_padding=1, activation="swish")
    out = g.conv2d(g.upsample2d(g.avg_pool2d(h, 2), 2), 1, 3, padding="same", activation="sigmoid")
    return g, x, g.flatten(out), "mse", (1, 8, 8), None


def recurrent(dtype):
    g = Graph(dtype)
    x = g.input("seq", (None, 4, 3))
    h = g.gru(g.dropout(g.lstm(x, 5, return_sequences=True), 0.2, seed=1), 4)
    return g, x, g.dense(h, 3, activation="gelu"), "softmax_cross_entropy", (4, 3), 3


def vae(dtype):
    g = Graph(dtype)
    x = g.input("x", (None, 6))
    z = g.latent_sample(g.dense(x, 5, activation="tanh"), 2, beta=0.1, seed=5)
    out = g.sequential(z, [("dense", {"units": 6, "activation": "sigmoid",
                                      "kernel_regularizer": ("l2", 0.01)})], name="decoder")
    return g, x, out, "binary_cross_entropy", (6,), None


EXAMPLE_GRAPHS = {f.__name__: f for f in (mlp, a_approx_b, cnn, sequence, residual, softmax_head,
                                          autoencoder, recurrent, vae)}


def data(shape, classes, out_shape, n, seed=0):
    """Inputs and targets for a graph: labels when ``classes``, else values in (0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape))
    if classes:
        return x, rng.integers(0, classes, n)
    return x, rng.uniform(0.05, 0.95, size=(n, *out_shape[1:]))
