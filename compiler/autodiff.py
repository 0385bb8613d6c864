"""differentiate: append the backward pass to the graph as ordinary op nodes.

Reverse-mode: starting from a seed of 1.0 at the loss, each node's VJP rule
(in its op record) adds the nodes that compute its operands' gradients. A value
read by several nodes receives one gradient, an ``add_n`` of the contributions,
which is a graph node like any other (planned, fusable).

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.infer import infer_shapes
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 2), dtype="float64")
>>> _ = add_op(g, "t", "input", [], shape=(None, 2), dtype="float64")
>>> _ = add_op(g, "w", "param", [], shape=(2,), dtype="float64")
>>> _ = add_op(g, "y", "add", ["x", "w"])
>>> _ = add_op(g, "loss", "mse", ["y", "t"], reduction="mean")
>>> g, grads = differentiate(infer_shapes(g), "loss", ["w"])
>>> g.nodes[grads["w"]]["op"], g.nodes[grads["w"]]["shape"]
('sum_to', (2,))
"""
from __future__ import annotations

from collections import defaultdict

import networkx as nx

from .errors import GraphError, Problem
from .ir import ancestors_of, copy_graph, descendants_of, op_attrs, operands, topological_order
from .ops import OPS
from .rewrite import Rewriter


def _example_exp_graph() -> nx.MultiDiGraph:
    """For the examples: the graph y = exp(x), x an input (N, 2) float64, shapes inferred."""
    from .infer import infer_shapes  # the examples' need only
    from .ir import add_op, new_graph
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 2), dtype="float64")
    add_op(g, "y", "exp", ["x"])
    return infer_shapes(g)


class VJPContext:
    """What a VJP rule may do: read shapes and add gradient nodes.

    >>> g = _example_exp_graph()          # y = exp(x), x (N, 2) float64; shapes inferred
    >>> ctx = VJPContext(Rewriter(g, role="backward"), "y")
    >>> ctx.node, ctx.shape("x")
    ('y', (None, 2))
    """

    def __init__(self, rw: Rewriter, node: str):
        self.rw, self.g, self.node = rw, rw.g, node

    def shape(self, name: str):
        """The inferred shape of node ``name``.

        >>> g = _example_exp_graph()          # y = exp(x), x (N, 2) float64; shapes inferred
        >>> ctx = VJPContext(Rewriter(g, role="backward"), "y")
        >>> ctx.shape("y")
        (None, 2)
        """
        return self.g.nodes[name]["shape"]

    def emit(self, op: str, inputs: list[str], **attrs) -> str:
        """Add a gradient node ``op(*inputs)``, named after the node it differentiates.

        >>> g = _example_exp_graph()          # y = exp(x), x (N, 2) float64; shapes inferred
        >>> ctx = VJPContext(Rewriter(g, role="backward"), "y")
        >>> ctx.emit("scale", ["x"], factor=2.0)
        'y/grad_scale'
        >>> g.nodes["y/grad_scale"]
        {'op': 'scale', 'role': 'backward', 'factor': 2.0, 'shape': (None, 2), 'dtype': 'float64'}
        """
        return self.rw.emit(f"{self.node}/grad_{op}", op, inputs, **attrs)


def _gather_slices(ctx: VJPContext, parts: list[str]) -> str | None:
    """When every contribution is a slice's gradient (dy padded with zeros) along one
    axis, place the pieces into one buffer instead of summing padded copies: an
    unrolled recurrent layer's input projection gets T such contributions."""
    g = ctx.g
    if any(g.nodes[p]["op"] != "slice_grad" for p in parts):
        return None
    attrs = [g.nodes[p] for p in parts]
    if len({(a["axis"], a["size"]) for a in attrs}) != 1:
        return None
    pieces = [operands(g, p)[0] for p in parts]
    gathered = ctx.emit("slices_grad", pieces, axis=attrs[0]["axis"], size=attrs[0]["size"],
                        starts=[a["start"] for a in attrs], stops=[a["stop"] for a in attrs])
    ctx.rw.remove(p for p in parts if g.out_degree(p) == 0)    # the padded copies
    return gathered


def differentiate(g: nx.MultiDiGraph, loss: str, wrt: list[str]):
    """Return (graph with gradient nodes, {name in wrt: its gradient node}).

    ``g`` must already carry shapes; ``loss`` must be a scalar.

    For L = mean((x + w - t)^2) over N x 2 elements, dL/dw = 2 / (2 N) times the
    column sums of x + w - t; with x = [[1, 2], [3, 4]], w = 0, t = 0 that is [2, 3]:

    >>> import numpy as np
    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.infer import infer_shapes
    >>> from graphnn.compiler.pipeline import build_program
    >>> from graphnn.runtime import Executor
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 2), dtype="float64")
    >>> _ = add_op(g, "t", "input", [], shape=(None, 2), dtype="float64")
    >>> _ = add_op(g, "w", "param", [], shape=(2,), dtype="float64")
    >>> _ = add_op(g, "y", "add", ["x", "w"]); _ = add_op(g, "loss", "mse", ["y", "t"])
    >>> d, grads = differentiate(infer_shapes(g), "loss", ["w"])
    >>> run = Executor(build_program(d, [grads["w"]], 2), {"w": np.zeros(2)}).run
    >>> run({"x": np.array([[1.0, 2.0], [3.0, 4.0]]), "t": np.zeros((2, 2))})[grads["w"]]
    array([2., 3.])
    >>> differentiate(infer_shapes(g), "y", ["w"])
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 1 problem in the graph:
      node 'y' (add): the loss must be a scalar, got shape (None, 2)
    """
    g = copy_graph(g)
    if g.nodes[loss]["shape"] != ():
        raise GraphError([Problem(loss, g.nodes[loss]["op"],
                                  f"the loss must be a scalar, got shape {g.nodes[loss]['shape']}")])
    # Only nodes on a path from some parameter to the loss need a gradient.
    needs = descendants_of(g, wrt) & ancestors_of(g, [loss])

    rw = Rewriter(g, role="backward")
    seed = rw.emit(f"{loss}/grad_seed", "constant", [], value=1.0, shape=(), dtype=g.nodes[loss]["dtype"])

    contributions: dict[str, list[str]] = defaultdict(list)
    contributions[loss].append(seed)
    grads: dict[str, str] = {}
    order = [n for n in topological_order(g) if n in needs]
    for node in reversed(order):
        parts = contributions.pop(node, [])
        if not parts:
            continue
        ctx = VJPContext(rw, node)
        dy = parts[0] if len(parts) == 1 else _gather_slices(ctx, parts) or ctx.emit("add_n", parts)
        grads[node] = dy
        op = OPS[g.nodes[node]["op"]]
        if op.kind == "source":
            continue
        if op.vjp is None:
            raise GraphError([Problem(node, op.name, "has no gradient rule, but a parameter's "
                                      "gradient flows through it", g.nodes[node].get("source"))])
        ins = operands(g, node)
        for x, gx in zip(ins, op.vjp(ctx, ins, node, dy, op_attrs(g, node))):
            if gx is not None and x in needs:
                contributions[x].append(gx)
    missing = [w for w in wrt if w not in grads]
    if missing:
        raise GraphError([Problem(w, g.nodes[w]["op"], f"does not influence the loss {loss!r}, "
                                  "so it gets no gradient") for w in missing])
    return g, {w: grads[w] for w in wrt}
