"""validate: the structure of a graph, before any shape is looked at.

Finds every problem at once: cycles, unknown ops, missing, extra or repeated
operands, bad or unknown attributes, outputs that do not exist, nodes whose
value never reaches an output, and ``extra_output`` nodes (a routed pool's
routes) that no instruction would write. Returns a copy of the graph with each node's
attribute defaults filled in.

>>> import networkx as nx
>>> g = nx.MultiDiGraph()
>>> g.add_node("x", op="input", shape=(None, 2))
>>> g.add_node("y", op="relu"); g.add_edge("x", "y", port=0)
0
>>> sorted(validate(g, ["y"]).nodes["x"])
['dtype', 'op', 'shape']
"""
from __future__ import annotations

import networkx as nx

from .errors import GraphError, Problem
from .ir import META_KEYS, ancestors_of, copy_graph
from .ops import OPS


def _problem(g, node, message):
    data = g.nodes[node] if node in g else {}
    return Problem(str(node), data.get("op"), message, data.get("source"))


def _check_operands(g, node, op) -> list[str]:
    ports = [p for _, _, p in g.in_edges(node, data="port")]
    bad = []
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in ports):
        return [f"every incoming edge needs an int attribute port >= 0, got ports {ports}"]
    dup = sorted({p for p in ports if ports.count(p) > 1})
    if dup:
        bad.append(f"operand port(s) {dup} are given more than once")
    n = len(set(ports))
    if n and set(ports) != set(range(n)):
        bad.append(f"operand ports {sorted(set(ports))} have gaps; expected 0..{n - 1}")
    if op.arity is None:
        if n == 0:
            bad.append("expected at least one operand, got none")
    elif n < op.arity:
        bad.append(f"expected {op.arity} operand(s), got {n}: missing port(s) "
                   f"{sorted(set(range(op.arity)) - set(ports))}")
    elif n > op.arity:
        bad.append(f"expected {op.arity} operand(s), got {n}: extra operand(s) at port(s) "
                   f"{sorted(p for p in set(ports) if p >= op.arity)}")
    return bad


def _check_extra_outputs(g) -> list[Problem]:
    """An ``extra_output`` node runs no kernel: its operand's instruction writes
    it (compiler/emit.py). So that operand must run an op that does, and each
    such op needs exactly one to write into."""
    writes = {w: name for name, op in OPS.items() for w in op.extra_output}
    problems = []
    for node, data in g.nodes(data=True):
        op = OPS.get(data.get("op"))
        if op is None:
            continue
        if op.extra_output:
            src = [u for u, _, p in g.in_edges(node, data="port") if p == 0]
            made_by = g.nodes[src[0]].get("op") if src else None
            if src and made_by not in op.extra_output:
                problems.append(_problem(g, node, f"is written by its operand's instruction, so its "
                                                  f"operand must run one of {list(op.extra_output)}; "
                                                  f"got {made_by} ({src[0]!r})"))
        if op.name in writes:
            extra = writes[op.name]
            found = sorted({r for r in g.successors(node) if g.nodes[r].get("op") == extra})
            if len(found) != 1:
                problems.append(_problem(g, node, f"writes its {extra} beside its result: needs exactly "
                                                  f"one {extra} node reading it, got {len(found)}"
                                                  f"{' (' + ', '.join(map(repr, found)) + ')' if found else ''}"))
    return problems


def validate(g: nx.MultiDiGraph, outputs: list[str], copy: bool = True) -> nx.MultiDiGraph:
    """Check the structure of ``g`` for the given outputs; raise GraphError listing
    every problem, or return a copy with attribute defaults filled in
    (``copy=False``: fill them in ``g`` itself).

    >>> g = nx.MultiDiGraph()
    >>> g.add_node("x", op="input", shape=(None, 2)); g.add_node("z", op="add", alpha=1)
    >>> _ = g.add_edge("x", "z", port=0)
    >>> validate(g, ["z", "w"])
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 3 problems in the graph:
      node 'w': is requested as an output but is not in the graph
      node 'z' (add): expected 2 operand(s), got 1: missing port(s) [1]
      node 'z' (add): unknown attribute(s) ['alpha']; add takes none
    """
    problems: list[Problem] = []
    # A hand-built DiGraph becomes a MultiDiGraph (that conversion is a copy).
    if not isinstance(g, nx.MultiDiGraph):
        g = nx.MultiDiGraph(g)
    elif copy:
        g = copy_graph(g)
    for out in outputs:
        if out not in g:
            problems.append(Problem(str(out), None, "is requested as an output but is not in the graph"))
    if not nx.is_directed_acyclic_graph(g):
        for cycle in nx.simple_cycles(g):
            names = " -> ".join(map(str, cycle + cycle[:1]))
            for node in cycle:
                problems.append(_problem(g, node, f"is part of a cycle: {names}"))
            break   # one cycle named is enough to act on; it may hide others
    for node, data in g.nodes(data=True):
        name = data.get("op")
        if name is None:
            problems.append(_problem(g, node, "has no 'op' attribute"))
            continue
        op = OPS.get(name)
        if op is None:
            close = sorted(k for k in OPS if k[:3] == str(name)[:3])
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append(_problem(g, node, f"unknown op {name!r}{hint}"))
            continue
        for message in _check_operands(g, node, op):
            problems.append(_problem(g, node, message))
        own = {k: v for k, v in data.items() if k in op.attrs}
        unknown = sorted(set(data) - set(op.attrs) - META_KEYS)
        if unknown:
            problems.append(_problem(g, node, f"unknown attribute(s) {unknown}; {name} takes "
                                              f"{sorted(op.attrs) or 'none'}"))
        filled, bad = op.check_attrs(own)
        problems.extend(_problem(g, node, m) for m in bad)
        data.update(filled)
    problems.extend(_check_extra_outputs(g))
    present = [o for o in outputs if o in g]
    if present and not any(p.message.startswith("is part of a cycle") for p in problems):
        reach = ancestors_of(g, present)
        for node in g.nodes:
            if node not in reach:
                problems.append(_problem(g, node, "does not reach any output; remove it or "
                                                  "list it among the outputs"))
    if problems:
        raise GraphError(problems)
    return g
