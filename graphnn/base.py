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
    """file:line of the innermost caller outside graphnn and compiler."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIRS):
            return f"{os.path.relpath(path) if not path.startswith('<') else path}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def plain(value):
    """Tuples become lists, recursively (through dicts too): what JSON and YAML hold."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Tensor:
    """A symbolic value: the output of one node of a Graph."""

    graph: object        # the Graph that made it (graph.py sits above this module)
    name: str

    @property
    def shape(self) -> tuple:
        return self.graph.nx.nodes[self.name]["shape"]

    @property
    def dtype(self) -> str:
        return self.graph.nx.nodes[self.name]["dtype"]

    @property
    def op(self) -> str:
        return self.graph.nx.nodes[self.name]["op"]

    def __repr__(self) -> str:
        return f"<Tensor {self.name!r} {fmt_shape(self.shape)} {self.dtype}>"
