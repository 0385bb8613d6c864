"""The builder's base: Tensor (a symbolic value of a Graph) and what every
builder module needs: the user's file and line, and plain data for records.

Nothing here knows the Graph class itself, so the layer modules (which the
Graph inherits) and the views can import it without a circle.

>>> plain({"size": (3, 3)})
{'size': [3, 3]}
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from .compiler.ops import fmt_shape

_PACKAGE_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                      for m in (sys.modules[__package__ + ".compiler"], sys.modules[__package__]))


def user_source() -> str | None:
    """file:line of the innermost caller outside graphnn and compiler: where a
    node was made or a bad argument given, as error messages cite it.

    >>> user_source()
    '<doctest graphnn.base.user_source[0]>:1'
    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 2))       # made by graphnn, called from here
    >>> g.nx.nodes["x"]["source"]
    '<doctest graphnn.base.user_source[2]>:1'
    """
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIRS):
            return f"{os.path.relpath(path) if not path.startswith('<') else path}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def plain(value):
    """Tuples become lists, recursively (through dicts too): what JSON and YAML hold.

    >>> plain({"pads": ((1, 1), (0, 2)), "name": "conv", "units": 3})
    {'pads': [[1, 1], [0, 2]], 'name': 'conv', 'units': 3}
    """
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Tensor:
    """A symbolic value: the output of one node of a Graph (no data: its shape,
    dtype and op are read from the node).

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 3)); y = g.relu(x)
    >>> y, y.name, y.shape, y.dtype, y.op
    (<Tensor 'relu' (N, 3) float32>, 'relu', (None, 3), 'float32', 'relu')
    """

    graph: object        # the Graph that made it (graph.py sits above this module)
    name: str

    @property
    def shape(self) -> tuple:
        """The node's shape; None stands for the batch dimension.

        >>> from graphnn import Graph
        >>> g = Graph(); g.flatten(g.input("x", (None, 2, 5))).shape
        (None, 10)
        """
        return self.graph.nx.nodes[self.name]["shape"]

    @property
    def dtype(self) -> str:
        """The node's dtype, a NumPy name.

        >>> from graphnn import Graph
        >>> g = Graph(); g.input("ids", (None, 7), dtype="int64").dtype
        'int64'
        """
        return self.graph.nx.nodes[self.name]["dtype"]

    @property
    def op(self) -> str:
        """The op of the node that makes it (a layer's last op).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2))
        >>> x.op, g.dense(x, 3).op, g.dense(x, 3, activation="tanh").op
        ('input', 'bias_add', 'tanh')
        """
        return self.graph.nx.nodes[self.name]["op"]

    def __repr__(self) -> str:
        return f"<Tensor {self.name!r} {fmt_shape(self.shape)} {self.dtype}>"
