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
    """Set shape and dtype of one node from its operands (raises OpShapeError)."""
    ins = operands(g, node)
    shapes = [g.nodes[i]["shape"] for i in ins]
    dtypes = [g.nodes[i]["dtype"] for i in ins]
    shape, dtype = OPS[g.nodes[node]["op"]].infer(shapes, dtypes, op_attrs(g, node))
    g.nodes[node]["shape"] = tuple(shape)
    g.nodes[node]["dtype"] = dtype


def describe_operands(g: nx.MultiDiGraph, node: str) -> str:
    """'x: (N, 3) float32, W: (4, 2) float32' for error messages."""
    parts = []
    for i in operands(g, node):
        d = g.nodes[i]
        parts.append(f"{i}: {fmt_shape(d.get('shape'))} {d.get('dtype', '?')}")
    return ", ".join(parts) or "no operands"


def infer_shapes(g: nx.MultiDiGraph, copy: bool = True) -> nx.MultiDiGraph:
    """Annotate every node of (a copy of) ``g`` with ``shape`` and ``dtype``."""
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
