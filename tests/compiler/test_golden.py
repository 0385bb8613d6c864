"""str(program) pinned for small graphs: a change to scheduling, fusion or the
memory plan shows up here as a readable diff. After an intended change, review
the diff and rewrite the files with GRAPHNN_UPDATE_GOLDEN=1 pytest tests/compiler/test_golden.py."""
from __future__ import annotations

import os

import pytest

from graphnn import Graph, Model, optim

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def dense_training():
    g = Graph()
    x = g.input("x", (None, 4))
    h = g.dense(x, 3, activation="relu", name="hidden")
    model = Model(g, inputs=x, outputs=g.dense(h, 2, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1, momentum=0.9))
    return model.program("train", 8)


def dense_training_unfused():
    g = Graph()
    x = g.input("x", (None, 4))
    h = g.dense(x, 3, activation="relu", name="hidden")
    model = Model(g, inputs=x, outputs=g.dense(h, 2, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1), fuse=False)
    return model.program("train", 8)


def conv_inference():
    g = Graph()
    x = g.input("img", (None, 1, 6, 6))
    h = g.max_pool2d(g.conv2d(x, 2, 3, padding="same", activation="relu", name="conv"), 2)
    model = Model(g, inputs=x, outputs=g.dense(g.flatten(h), 3, name="logits"))
    return model.program("predict", 2)


CASES = {f.__name__: f for f in (dense_training, dense_training_unfused, conv_inference)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_program_listing_matches_golden_file(name):
    text = str(CASES[name]()) + "\n"
    path = os.path.join(GOLDEN, f"{name}.txt")
    if os.environ.get("GRAPHNN_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read()
