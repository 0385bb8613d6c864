"""Deliberately broken graphs: each is caught at compile time, and the error
names the faulty node (and, for shape problems, the shapes involved)."""
from __future__ import annotations

import networkx as nx
import pytest
from graphnn.compiler import GraphError, ShapeError, check_graph


def graph(*nodes, edges=()):
    """nodes: (name, attrs); edges: (src, dst, port)."""
    g = nx.MultiDiGraph()
    for name, attrs in nodes:
        g.add_node(name, **attrs)
    for src, dst, port in edges:
        g.add_edge(src, dst, port=port)
    return g


def x(shape=(None, 4), dtype="float32", name="x"):
    return (name, {"op": "input", "shape": shape, "dtype": dtype})


def w(shape, name="w", dtype="float32"):
    return (name, {"op": "param", "shape": shape, "dtype": dtype})


def unary(op, name="y", src="x", **attrs):
    return [(name, {"op": op, **attrs})], [(src, name, 0)]


def binary(op, a, b, name="y", **attrs):
    return [(name, {"op": op, **attrs})], [(a, name, 0), (b, name, 1)]


BROKEN = {
    # name: (graph, outputs, node at fault, error type, words the message must contain)
    "cycle": (graph(x(), ("a", {"op": "relu"}), ("b", {"op": "tanh"}),
                    edges=[("a", "b", 0), ("b", "a", 0)]), ["b"], "a", GraphError, "cycle"),
    "unknown op": (graph(x(), ("y", {"op": "relux"}), edges=[("x", "y", 0)]), ["y"], "y",
                   GraphError, "unknown op 'relux'"),
    "no op attribute": (graph(x(), ("y", {}), edges=[("x", "y", 0)]), ["y"], "y", GraphError, "no 'op'"),
    "missing operand": (graph(x(), ("y", {"op": "matmul"}), edges=[("x", "y", 0)]), ["y"], "y",
                        GraphError, "missing port"),
    "extra operand": (graph(x(), ("y", {"op": "relu"}), edges=[("x", "y", 0), ("x", "y", 1)]),
                      ["y"], "y", GraphError, "extra operand"),
    "repeated port": (graph(x(), ("y", {"op": "add"}), edges=[("x", "y", 0), ("x", "y", 0)]),
                      ["y"], "y", GraphError, "more than once"),
    "port gap": (graph(x(), ("y", {"op": "add"}), edges=[("x", "y", 0), ("x", "y", 2)]),
                 ["y"], "y", GraphError, "gaps"),
    "edge without port": (graph(x(), ("y", {"op": "relu"}), edges=[("x", "y", None)]), ["y"], "y",
                          GraphError, "port"),
    "bad attribute value": (graph(x(), ("y", {"op": "leaky_relu", "alpha": 2.0}),
                                  edges=[("x", "y", 0)]), ["y"], "y", GraphError, "alpha=2.0"),
    "unknown attribute": (graph(x(), ("y", {"op": "relu", "units": 3}), edges=[("x", "y", 0)]),
                          ["y"], "y", GraphError, "unknown attribute"),
    "input without shape": (graph(("x", {"op": "input"}), ("y", {"op": "relu"}),
                                  edges=[("x", "y", 0)]), ["y"], "x", GraphError, "shape"),
    "batch symbol not first": (graph(x((3, None)), ("y", {"op": "relu"}), edges=[("x", "y", 0)]),
                               ["y"], "x", GraphError, "shape"),
    "param with batch symbol": (graph(x(), w((None, 3)), *binary("matmul", "x", "w")[0],
                                      edges=binary("matmul", "x", "w")[1]), ["y"], "w",
                                GraphError, "shape"),
    "matmul inner mismatch": (graph(x((None, 4)), w((5, 3)), ("y", {"op": "matmul"}),
                                    edges=[("x", "y", 0), ("w", "y", 1)]), ["y"], "y",
                              ShapeError, "(N, 4)"),
    "matmul of 5-D input": (graph(x((None, 4, 4, 4, 2)), w((2, 3)), ("y", {"op": "matmul"}),
                                  edges=[("x", "y", 0), ("w", "y", 1)]), ["y"], "y",
                            ShapeError, "2-D"),
    "bias of wrong length": (graph(x(), w((5,)), ("y", {"op": "bias_add"}),
                                   edges=[("x", "y", 0), ("w", "y", 1)]), ["y"], "y",
                             ShapeError, "expected (4,)"),
    "add not broadcastable": (graph(x((None, 4)), w((3,)), ("y", {"op": "add"}),
                                    edges=[("x", "y", 0), ("w", "y", 1)]), ["y"], "y",
                              ShapeError, "do not broadcast"),
    "mixed dtypes": (graph(x((None, 4)), w((4,), dtype="float64"), ("y", {"op": "add"}),
                           edges=[("x", "y", 0), ("w", "y", 1)]), ["y"], "y", ShapeError, "dtypes differ"),
    "matmul of integers": (graph(x((None, 4), "int64"), w((4, 2), dtype="int64"), ("y", {"op": "matmul"}),
                                 edges=[("x", "y", 0), ("w", "y", 1)]), ["y"], "y", ShapeError,
                           "floating-point"),
    "mse shape mismatch": (graph(x((None, 4)), x((None, 3), name="t"), ("y", {"op": "mse"}),
                                 edges=[("x", "y", 0), ("t", "y", 1)]), ["y"], "y",
                           ShapeError, "same shape"),
    "labels of wrong shape": (graph(x((None, 10)), x((None, 2), "int64", "t"),
                                    ("y", {"op": "softmax_cross_entropy"}),
                                    edges=[("x", "y", 0), ("t", "y", 1)]), ["y"], "y", ShapeError,
                              "integer labels"),
    "logits of rank 3": (graph(x((None, 2, 10)), x((None,), "int64", "t"),
                               ("y", {"op": "softmax_cross_entropy"}),
                               edges=[("x", "y", 0), ("t", "y", 1)]), ["y"], "y", ShapeError, "logits"),
    "reshape wrong size": (graph(x((None, 6)), ("y", {"op": "reshape", "shape": (None, 4)}),
                                 edges=[("x", "y", 0)]), ["y"], "y", ShapeError, "cannot reshape"),
    "flatten of a vector": (graph(x((None,)), ("y", {"op": "flatten"}), edges=[("x", "y", 0)]),
                            ["y"], "y", ShapeError, "at least 2"),
    "softmax axis out of range": (graph(x(), ("y", {"op": "softmax", "axis": 3}),
                                        edges=[("x", "y", 0)]), ["y"], "y", ShapeError, "axis 3"),
    "concat of mismatched shapes": (graph(x((None, 4)), x((None, 3, 2), name="z"), ("y", {"op": "concat", "axis": 1}),
                                          edges=[("x", "y", 0), ("z", "y", 1)]), ["y"], "y", ShapeError,
                                    "except along axis 1"),
    "lstm-style slice past the end": (graph(x((None, 4)), ("y", {"op": "slice", "axis": 1, "start": 2, "stop": 6}),
                                            edges=[("x", "y", 0)]), ["y"], "y", ShapeError, "does not fit"),
    "output not in graph": (graph(x(), ("y", {"op": "relu"}), edges=[("x", "y", 0)]), ["z"], "z",
                            GraphError, "not in the graph"),
    "dead node": (graph(x(), ("y", {"op": "relu"}), ("dangling", {"op": "tanh"}),
                        edges=[("x", "y", 0), ("x", "dangling", 0)]), ["y"], "dangling",
                  GraphError, "does not reach any output"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_graph_is_caught_naming_the_node(name):
    g, outputs, culprit, error, words = BROKEN[name]
    with pytest.raises(error) as info:
        check_graph(g, outputs)
    assert culprit in info.value.nodes
    assert words in str(info.value)
    assert f"node {culprit!r}" in str(info.value)


def test_there_are_at_least_twenty():
    assert len(BROKEN) >= 20


def test_all_problems_reported_at_once():
    g = graph(x(), ("a", {"op": "relux"}), ("b", {"op": "leaky_relu", "alpha": -1}),
              ("c", {"op": "add"}), edges=[("x", "a", 0), ("x", "b", 0), ("x", "c", 0),
                                           ("a", "c", 1), ("b", "c", 2)])
    with pytest.raises(GraphError) as info:
        check_graph(g, ["c"])
    assert {"a", "b", "c"} <= set(info.value.nodes)


def test_shape_errors_reported_together_and_not_repeated_downstream():
    g = graph(x((None, 4)), w((5, 3), "w1"), w((4, 3), "w2"), ("m1", {"op": "matmul"}),
              ("m2", {"op": "matmul"}), ("r", {"op": "relu"}), ("bad", {"op": "reshape", "shape": (None, 5)}),
              edges=[("x", "m1", 0), ("w1", "m1", 1), ("x", "m2", 0), ("w2", "m2", 1),
                     ("m1", "r", 0), ("m2", "bad", 0)])
    with pytest.raises(ShapeError) as info:
        check_graph(g, ["r", "bad"])
    assert info.value.nodes == ["m1", "bad"]   # r, downstream of m1, is not reported again
