"""Errors raised while checking and compiling a graph.

Every problem names the node at fault, its op, and (for nodes made by the
builder) the file:line of the user's code that created it. A pass collects all
problems it finds and raises them together, so one compile shows every mistake.

>>> p = Problem("dense_1", "matmul", "inner dimensions differ: (N, 3) @ (4, 2)")
>>> str(GraphError([p])).splitlines()[1].strip()
"node 'dense_1' (matmul): inner dimensions differ: (N, 3) @ (4, 2)"
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one node.

    >>> str(Problem("fc/matmul", "matmul", "inner dimensions differ", "net.py:12"))
    "node 'fc/matmul' (matmul): inner dimensions differ  [created at net.py:12]"
    >>> str(Problem("<graph>", None, "the graph has a cycle"))
    "node '<graph>': the graph has a cycle"
    """

    node: str
    op: str | None
    message: str
    source: str | None = None   # "file.py:12" of the user's code, when known
    kind: str = "graph"         # "graph" (structure) or "shape" (shapes and dtypes)

    def __str__(self) -> str:
        op = f" ({self.op})" if self.op else ""
        where = f"  [created at {self.source}]" if self.source else ""
        return f"node {self.node!r}{op}: {self.message}{where}"


class GraphError(ValueError):
    """A graph that cannot be compiled: a cycle, an unknown op, a bad operand...

    ``problems`` lists every problem found, each naming its node. A ValueError.

    >>> e = GraphError([Problem("a", "relu", "unknown input"), Problem("b", "frob", "unknown op 'frob'")])
    >>> print(e)
    2 problems in the graph:
      node 'a' (relu): unknown input
      node 'b' (frob): unknown op 'frob'
    >>> GraphError("no output given").problems
    [Problem(node='<graph>', op=None, message='no output given', source=None, kind='graph')]
    """

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("<graph>", None, problems)]
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the graph:"
        super().__init__("\n".join([head] + [f"  {p}" for p in self.problems]))

    @property
    def nodes(self) -> list[str]:
        """The names of the nodes at fault, in the order they were found.

        >>> GraphError([Problem("b", "relu", "x"), Problem("a", "relu", "y")]).nodes
        ['b', 'a']
        """
        return [p.node for p in self.problems]


class ShapeError(GraphError):
    """Shapes or dtypes that do not fit the op that reads them (a GraphError
    whose problems are all of kind "shape").

    >>> raise_problems([Problem("y", "add", "shapes (N, 3) and (N, 4) do not broadcast", kind="shape")])
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.ShapeError: 1 problem in the graph:
      node 'y' (add): shapes (N, 3) and (N, 4) do not broadcast
    >>> issubclass(ShapeError, GraphError)
    True
    """


def raise_problems(problems: list[Problem]) -> None:
    """Raise ShapeError if every problem is about shapes, GraphError otherwise.

    >>> raise_problems([])  # nothing to report: returns quietly
    """
    if not problems:
        return
    if all(p.kind == "shape" for p in problems):
        raise ShapeError(problems)
    raise GraphError(problems)


class OpShapeError(Exception):
    """Raised inside an op's shape rule; the infer pass turns it into a Problem
    naming the node and its operands.

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.infer import infer_shapes
    >>> g = new_graph()
    >>> _ = add_op(g, "a", "input", [], shape=(None, 3), dtype="float32")
    >>> _ = add_op(g, "b", "input", [], shape=(None, 4), dtype="float32")
    >>> _ = add_op(g, "y", "add", ["a", "b"])
    >>> infer_shapes(g)
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.ShapeError: 1 problem in the graph:
      node 'y' (add): shapes (N, 3) and (N, 4) do not broadcast (operands: a: (N, 3) float32, b: (N, 4) float32)
    """
