"""infer_shapes: static shapes and dtypes for every node, batch kept symbolic.

Walks the graph in topological order and applies each op's shape rule. A node
whose rule fails is reported (with its operands' shapes); nodes downstream of
it are skipped rather than reported again. All problems raise together.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
>>> _ = add_op(g, "y", "relu", ["x"])
>>> infer_shapes(g).nodes["y"]["shape"]
(None, 3)
"""
from __future__ import annotations

import networkx as nx

from .errors import OpShapeError, Problem, raise_problems
from .ir import copy_graph, op_attrs, operands, topological_order
from .ops import OPS, fmt_shape


def infer_node(g: nx.MultiDiGraph, node: str) -> None:
    """Set shape and dtype of one node from its operands (raises OpShapeError).

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 3, 4), dtype="float32")
    >>> _ = add_op(g, "y", "transpose", ["x"], perm=[0, 2, 1])
    >>> infer_node(g, "x"); infer_node(g, "y"); g.nodes["y"]["shape"], g.nodes["y"]["dtype"]
    ((None, 4, 3), 'float32')
    """
    ins = operands(g, node)
    shapes = [g.nodes[i]["shape"] for i in ins]
    dtypes = [g.nodes[i]["dtype"] for i in ins]
    shape, dtype = OPS[g.nodes[node]["op"]].infer(shapes, dtypes, op_attrs(g, node))
    g.nodes[node]["shape"] = tuple(shape)
    g.nodes[node]["dtype"] = dtype


def describe_operands(g: nx.MultiDiGraph, node: str) -> str:
    """'x: (N, 3) float32, W: (4, 2) float32' for error messages.

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 3, 4), dtype="float32")
    >>> _ = add_op(g, "y", "transpose", ["x"], perm=[0, 2, 1])
    >>> g = infer_shapes(g); describe_operands(g, "y"), describe_operands(g, "x")
    ('x: (N, 3, 4) float32', 'no operands')
    """
    parts = []
    for i in operands(g, node):
        d = g.nodes[i]
        parts.append(f"{i}: {fmt_shape(d.get('shape'))} {d.get('dtype', '?')}")
    return ", ".join(parts) or "no operands"


def infer_shapes(g: nx.MultiDiGraph, copy: bool = True) -> nx.MultiDiGraph:
    """Annotate every node of (a copy of) ``g`` with ``shape`` and ``dtype``. A
    node whose rule fails is reported; what reads it (r) is skipped, not reported
    again. (Attributes must be complete: ``compiler.validate`` fills the defaults.)

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 3, 4), dtype="float32")
    >>> _ = add_op(g, "y", "transpose", ["x"], perm=[0, 2, 1])
    >>> _ = add_op(g, "z", "add", ["x", "y"]); _ = add_op(g, "r", "relu", ["z"])
    >>> infer_shapes(g)
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.ShapeError: 1 problem in the graph:
      node 'z' (add): shapes (N, 3, 4) and (N, 4, 3) do not broadcast (operands: x: (N, 3, 4) float32, y: (N, 4, 3) float32)
    >>> "shape" in g.nodes["y"]                  # a copy was annotated, not g
    False
    """
    g = copy_graph(g) if copy else g
    failed: set[str] = set()
    problems: list[Problem] = []
    for node in topological_order(g):
        if any(i in failed for i in operands(g, node)):
            failed.add(node)
            continue
        try:
            infer_node(g, node)
        except OpShapeError as e:
            failed.add(node)
            d = g.nodes[node]
            problems.append(Problem(str(node), d["op"], f"{e} (operands: {describe_operands(g, node)})",
                                    d.get("source"), kind="shape"))
    raise_problems(problems)
    return g
