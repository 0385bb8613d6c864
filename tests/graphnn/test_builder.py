"""The builder: shapes known at once, errors at the user's line, and a graph
built by hand in networkx compiles exactly like the builder's."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from graphnn import Graph, GraphError, Model, ShapeError


def mlp_builder():
    g = Graph()
    x = g.input("x", (None, 5))
    h = g.dense(x, 4, activation="tanh", name="h")
    out = g.dense(h, 3, name="out")
    return g, x, out


def mlp_by_hand():
    """The same network, written as plain networkx nodes and edges."""
    g = nx.MultiDiGraph()
    g.add_node("x", op="input", shape=(None, 5), dtype="float32")
    g.add_node("h/W", op="param", shape=(5, 4), dtype="float32", init="glorot_uniform")
    g.add_node("h/b", op="param", shape=(4,), dtype="float32", init="zeros")
    g.add_node("h/matmul", op="matmul")
    g.add_node("h/bias_add", op="bias_add")
    g.add_node("h/tanh", op="tanh")
    g.add_node("out/W", op="param", shape=(4, 3), dtype="float32", init="glorot_uniform")
    g.add_node("out/b", op="param", shape=(3,), dtype="float32", init="zeros")
    g.add_node("out/matmul", op="matmul")
    g.add_node("out/bias_add", op="bias_add")
    for src, dst, port in [("x", "h/matmul", 0), ("h/W", "h/matmul", 1),
                           ("h/matmul", "h/bias_add", 0), ("h/b", "h/bias_add", 1),
                           ("h/bias_add", "h/tanh", 0), ("h/tanh", "out/matmul", 0),
                           ("out/W", "out/matmul", 1), ("out/matmul", "out/bias_add", 0),
                           ("out/b", "out/bias_add", 1)]:
        g.add_edge(src, dst, port=port)
    return g


def test_shapes_are_known_when_a_node_is_added():
    g, _x, out = mlp_builder()
    assert out.shape == (None, 3)
    assert g["h/W"].shape == (5, 4)


def test_hand_built_networkx_graph_compiles_like_the_builder_graph():
    g, _, _ = mlp_builder()
    hand = Graph.from_networkx(mlp_by_hand())
    a = Model(g, inputs="x", outputs="out/bias_add", seed=3)
    b = Model(hand, inputs="x", outputs="out/bias_add", seed=3)
    for m in (a, b):
        m.compile(loss="softmax_cross_entropy", optimizer="sgd")
    assert str(a.program("train", 8)) == str(b.program("train", 8))
    rng = np.random.default_rng(0)
    data, labels = rng.normal(size=(20, 5)), rng.integers(0, 3, 20)
    for m in (a, b):
        m.fit(data, labels, epochs=2, batch_size=8, verbose=0)
    for k, v in a.get_weights().items():
        np.testing.assert_array_equal(v, b.get_weights()[k])


def test_shape_error_names_node_op_shapes_and_user_line():
    g = Graph()
    x = g.input("x", (None, 4, 4))
    with pytest.raises(ShapeError) as info:
        g.dense(x, 3, name="fc")                      # the line reported below
    message = str(info.value)
    assert "node 'fc' (dense)" in message
    assert "(N, 4, 4)" in message and "(N, features)" in message
    assert "test_builder.py:" in message
    line = int(message.split("test_builder.py:")[1].split("]")[0])
    import inspect
    src = inspect.getsource(test_shape_error_names_node_op_shapes_and_user_line)
    first = test_shape_error_names_node_op_shapes_and_user_line.__code__.co_firstlineno
    offset = next(i for i, l in enumerate(src.splitlines()) if "the line reported below" in l)
    assert line == first + offset


def test_a_failed_layer_leaves_the_graph_unchanged():
    g = Graph()
    x = g.input("x", (None, 4, 4))
    before = set(g.nx.nodes)
    with pytest.raises(ShapeError):
        g.dense(x, 3)
    assert set(g.nx.nodes) == before
    assert g.dense(g.flatten(x), 3).shape == (None, 3)


def test_bad_arguments_are_named():
    g = Graph()
    x = g.input("x", (None, 4))
    with pytest.raises(ValueError, match="units"):
        g.dense(x, 0)
    with pytest.raises(ValueError, match="unknown activation 'rellu'"):
        g.dense(x, 2, activation="rellu")
    with pytest.raises(GraphError, match="alpha"):
        g.leaky_relu(x, alpha=3.0)
    with pytest.raises(GraphError, match="already exists"):
        g.input("x", (None, 4))
    other = Graph().input("z", (None, 4))
    with pytest.raises(GraphError, match="another Graph"):
        g.relu(other)


def test_layer_names_are_unique_and_grouped():
    g = Graph()
    x = g.input("x", (None, 4))
    a = g.dense(x, 4)
    b = g.dense(a, 4)
    assert a.name == "dense/bias_add" and b.name == "dense_1/bias_add"
    assert g.nx.nodes["dense_1/W"]["group"] == "dense_1"


def test_reshape_keeps_the_batch_and_add_broadcasts():
    g = Graph()
    x = g.input("x", (None, 12))
    r = g.reshape(x, (3, 4))
    assert r.shape == (None, 3, 4)
    assert g.add(r, g.param("bias", (4,))).shape == (None, 3, 4)


def test_model_rejects_inputs_it_was_not_given():
    g = Graph()
    a, b = g.input("a", (None, 2)), g.input("b", (None, 2))
    out = g.add(a, b)
    with pytest.raises(GraphError, match="'b'.*not among the model's inputs"):
        Model(g, inputs=a, outputs=out)
