"""schedule: the order in which the computing nodes run.

A topological order with two extra rules for training graphs:

- an update runs after every other reader of the values it overwrites, views of
  them included (the forward and backward matmuls that read a weight, or its
  reshaped copy, come before its update);
- the requested outputs (the loss, the predictions) are computed before any
  update, so they see the weights of this step and a non-finite loss can stop
  the step before any weight changes.

Among ready nodes, updates go first: a parameter is updated as soon as its
gradient is complete, which lets the gradient's buffer die early.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 2), dtype="float32")
>>> _ = add_op(g, "y", "relu", ["x"]); _ = add_op(g, "z", "tanh", ["y"])
>>> schedule(g, ["z"])
['y', 'z']
"""
from __future__ import annotations

import networkx as nx

from .ir import consumers, operands
from .ops import OPS


def readers_through_views(g: nx.MultiDiGraph, node: str) -> list[str]:
    """Every op that reads ``node``'s bytes: its readers, and the readers of its
    views (a reshaped weight read by a lowered convolution's GEMM, say).

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 4), dtype="float32")
    >>> _ = add_op(g, "W", "param", [], shape=(2, 2), dtype="float32", init="zeros")
    >>> _ = add_op(g, "Wf", "reshape", ["W"], shape=(4,)); _ = add_op(g, "y", "multiply", ["x", "Wf"])
    >>> _ = add_op(g, "z", "exp", ["W"])
    >>> readers_through_views(g, "W")        # y reads W's bytes through the reshape
    ['Wf', 'z', 'y']
    """
    found, stack = [], [node]
    while stack:
        for reader in consumers(g, stack.pop()):
            found.append(reader)
            if OPS[g.nodes[reader]["op"]].view:
                stack.append(reader)
    return found


def schedule(g: nx.MultiDiGraph, outputs: list[str]) -> list[str]:
    """Return the non-source nodes of ``g`` in execution order. In a training
    step the loss and the outputs come first, each update as soon as it may:

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.pipeline import check_graph, training_graph
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    >>> _ = add_op(g, "t", "input", [], shape=(None, 2), dtype="float32")
    >>> _ = add_op(g, "W", "param", [], shape=(3, 2), dtype="float32")
    >>> _ = add_op(g, "y", "matmul", ["x", "W"]); _ = add_op(g, "loss", "mse", ["y", "t"])
    >>> train, _ = training_graph(check_graph(g, ["loss", "y"]), "loss", ["y"], {"name": "sgd", "lr": 0.1})
    >>> schedule(train, ["loss", "y"])
    ['y', 'loss', 'loss/grad_mse_grad', 'y/grad_matmul_1', 'W/update']
    """
    kind = {n: OPS[d["op"]].kind for n, d in g.nodes(data=True)}
    deps = nx.DiGraph()
    index = {}
    for i, n in enumerate(g.nodes):
        index[n] = i
        if kind[n] != "source":
            deps.add_node(n)
    for a, b in g.edges():
        if kind[a] != "source":
            deps.add_edge(a, b)
    updates = [n for n in g.nodes if kind[n] == "update"]
    for u in updates:
        ins = operands(g, u)
        for port in OPS[g.nodes[u]["op"]].mutates:
            if port < len(ins):
                for reader in readers_through_views(g, ins[port]):
                    if reader != u:
                        deps.add_edge(reader, u)
        for out in outputs:
            if kind[out] != "source":
                deps.add_edge(out, u)
    return list(nx.lexicographical_topological_sort(
        deps, key=lambda n: (kind[n] != "update", index[n])))
