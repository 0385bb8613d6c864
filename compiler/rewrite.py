"""The rewrite toolkit every pass edits the graph with.

A pass copies the graph it is given (``copy_graph``: new attribute dicts, shared
values, fast) and hands the copy to a ``Rewriter``, which does the four things
passes do:

- ``emit``: add ``op(*inputs)`` under a fresh name, its attributes checked and
  defaulted, its shape inferred, its metadata (``role``, and ``source``/``group``
  from a node it stands for) carried over;
- ``become``: turn a node into another op in place, keeping its name, its
  metadata and its readers (``replace``: the same, the node moving last);
- ``rewire``: make a node read another value at one operand port
  (``move_readers``: make every reader of a node read another);
- ``remove``: drop nodes nothing reads any more.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.infer import infer_shapes
>>> g = infer_shapes(new_graph())
>>> rw = Rewriter(g, role="forward")
>>> x = rw.emit("x", "input", [], shape=(None, 3))
>>> y = rw.emit("y", "relu", [x])
>>> g.nodes[y]["shape"], g.nodes[y]["role"], g.nodes[x]["dtype"]
((None, 3), 'forward', 'float32')
>>> rw.become(y, "tanh", [x]); g.nodes[y]["op"]
'tanh'
"""
from __future__ import annotations

import networkx as nx

from .errors import GraphError, Problem
from .infer import infer_node
from .ops import OPS

CARRIED = ("source", "group", "role")    # node metadata a rewrite keeps
OPERAND_ROLE = "of operand 0"    # a Rewriter role: each new node takes its operand 0's role


class Rewriter:
    """Edits ``g`` (a graph the pass owns) for one pass.

    ``role`` tags every emitted node (``backward``, ``update``) unless the
    caller names another; ``share=True`` returns the node already emitted for
    the same op, operands and attributes (lowering builds one ``im2col`` per
    input, read by the forward convolution and its weight gradient).

    >>> from graphnn.compiler.ir import new_graph
    >>> rw = Rewriter(new_graph(), role="backward", share=True)
    >>> x = rw.emit("x", "input", [], shape=(None, 3), role="source")
    >>> a, b = rw.emit("e", "exp", [x]), rw.emit("e", "exp", [x])     # shared: emitted once
    >>> a, b, rw.g.nodes[a]["role"], len(rw.g)
    ('e', 'e', 'backward', 2)
    """

    def __init__(self, g: nx.MultiDiGraph, role: str | None = None, share: bool = False):
        self.g = g
        self.role = role
        self.memo: dict | None = {} if share else None

    def emit(self, base: str, op: str, inputs: list, *, like: str | None = None,
             role: str | None = None, checked: bool = False, **attrs) -> str:
        """Add ``op(*inputs)`` named ``base`` (or ``base_1``, ...); return its name.

        Metadata comes from ``like`` (the node it stands for), then ``role``.
        ``checked=True``: ``attrs`` are complete and were checked already (a pass
        emitting many nodes with one set of attributes checks it once).

        >>> from graphnn.compiler.ir import new_graph, operands
        >>> rw = Rewriter(new_graph()); g = rw.g
        >>> x = rw.emit("x", "input", [], shape=(None, 3)); y = rw.emit("y", "relu", [x])
        >>> z = rw.emit("z", "add", [y, x])
        >>> rw.emit("y", "leaky_relu", [x]), g.nodes["y_1"]["alpha"]     # a free name; alpha defaulted
        ('y_1', 0.01)
        >>> rw.emit("bad", "relu", [x], alpha=2)
        Traceback (most recent call last):
        ...
        graphnn.compiler.errors.GraphError: 1 problem in the graph:
          node 'bad' (relu): a compiler pass made an invalid node: unknown attribute(s) ['alpha']
        """
        if self.memo is not None:
            key = (op, tuple(inputs), repr(sorted(attrs.items())))
            if key in self.memo:
                return self.memo[key]
        g = self.g
        name = base if base not in g else _unique(g, base)
        meta = {}
        if like is not None:
            src = g._node[like]
            meta = {k: src[k] for k in CARRIED if k in src}
        role = role or self.role
        if role == OPERAND_ROLE:
            role = g._node[inputs[0]].get("role", "forward")
        if role is not None:
            meta["role"] = role
        g.add_node(name, op=op, **meta, **(attrs if checked else self._checked(name, op, attrs)))
        for port, src in enumerate(inputs):
            g.add_edge(src, name, port=port)
        infer_node(g, name)
        if self.memo is not None:
            self.memo[key] = name
        return name

    def become(self, node: str, op: str, inputs: list, **attrs) -> None:
        """Turn ``node`` into ``op(*inputs)``, keeping its name, metadata and readers.

        >>> from graphnn.compiler.ir import new_graph, operands
        >>> rw = Rewriter(new_graph()); g = rw.g
        >>> x = rw.emit("x", "input", [], shape=(None, 3)); y = rw.emit("y", "relu", [x])
        >>> z = rw.emit("z", "add", [y, x])
        >>> rw.become(y, "exp", [x]); g.nodes["y"]["op"], operands(g, "z")
        ('exp', ['y', 'x'])
        """
        g = self.g
        d = g._node[node]
        keep = {k: d[k] for k in CARRIED if k in d}
        filled = self._checked(node, op, attrs)
        for src in list(g._pred[node]):
            while g.has_edge(src, node):
                g.remove_edge(src, node)
        d.clear()
        d.update(op=op, **keep, **filled)
        for port, src in enumerate(inputs):
            g.add_edge(src, node, port=port)
        infer_node(g, node)

    def replace(self, node: str, op: str, inputs: list, **attrs) -> None:
        """Put a new node ``op(*inputs)`` in the place of ``node``: same name,
        metadata and readers, but last in the graph's order (a fused node runs
        where its last part ran, so the scheduler sees it as that part).

        >>> from graphnn.compiler.ir import new_graph, operands
        >>> rw = Rewriter(new_graph()); g = rw.g
        >>> x = rw.emit("x", "input", [], shape=(None, 3)); y = rw.emit("y", "relu", [x])
        >>> z = rw.emit("z", "add", [y, x])
        >>> rw.replace(y, "tanh", [x]); list(g), g.nodes["y"]["op"], operands(g, "z")
        (['x', 'z', 'y'], 'tanh', ['y', 'x'])
        """
        g = self.g
        d = g._node[node]
        keep = {k: d[k] for k in CARRIED if k in d}
        filled = self._checked(node, op, attrs)
        readers = list(g.out_edges(node, data=True))
        g.remove_node(node)
        g.add_node(node, op=op, **keep, **filled)
        for port, src in enumerate(inputs):
            g.add_edge(src, node, port=port)
        for _, dst, data in readers:
            g.add_edge(node, dst, **data)
        infer_node(g, node)

    def rewire(self, node: str, port: int, src: str) -> None:
        """Make ``src`` operand ``port`` of ``node``.

        >>> from graphnn.compiler.ir import new_graph, operands
        >>> rw = Rewriter(new_graph()); g = rw.g
        >>> x = rw.emit("x", "input", [], shape=(None, 3)); y = rw.emit("y", "relu", [x])
        >>> z = rw.emit("z", "add", [y, x])
        >>> rw.rewire(z, 1, y); operands(g, "z")       # z = y + y
        ['y', 'y']
        """
        g = self.g
        for u, _, key, data in list(g.in_edges(node, keys=True, data=True)):
            if data["port"] == port:
                g.remove_edge(u, node, key)
        g.add_edge(src, node, port=port)

    def move_readers(self, node: str, to: str) -> None:
        """Make every reader of ``node`` read ``to`` instead (same ports).

        >>> from graphnn.compiler.ir import new_graph, operands
        >>> rw = Rewriter(new_graph()); g = rw.g
        >>> x = rw.emit("x", "input", [], shape=(None, 3)); y = rw.emit("y", "relu", [x])
        >>> z = rw.emit("z", "add", [y, x])
        >>> w = rw.emit("w", "exp", [x]); rw.move_readers(y, w); operands(g, "z"), list(g.successors("y"))
        (['w', 'x'], [])
        """
        g = self.g
        for _, dst, key, data in list(g.out_edges(node, keys=True, data=True)):
            g.remove_edge(node, dst, key)
            g.add_edge(to, dst, **data)

    def remove(self, nodes) -> None:
        """Drop ``nodes`` (and their edges).

        >>> from graphnn.compiler.ir import new_graph, operands
        >>> rw = Rewriter(new_graph()); g = rw.g
        >>> x = rw.emit("x", "input", [], shape=(None, 3)); y = rw.emit("y", "relu", [x])
        >>> z = rw.emit("z", "add", [y, x])
        >>> rw.remove([z]); sorted(g), list(g.successors("y"))
        (['x', 'y'], [])
        """
        self.g.remove_nodes_from(list(nodes))

    def _checked(self, node, op, attrs) -> dict:
        record = OPS[op]
        filled, bad = record.check_attrs(attrs)
        unknown = attrs.keys() - record.attrs.keys()
        if unknown:
            bad.append(f"unknown attribute(s) {sorted(unknown)}")
        if bad:     # a pass asked for something its op cannot do: a compiler bug
            raise GraphError([Problem(str(node), op, "a compiler pass made an invalid node: "
                                      + "; ".join(bad))])
        return filled


def _unique(g, base):
    i = 1
    while f"{base}_{i}" in g:
        i += 1
    return f"{base}_{i}"
