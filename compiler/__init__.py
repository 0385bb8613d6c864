"""graphnn's compiler: the IR (a networkx graph of ops) and its passes.

>>> from graphnn.compiler import compile_graph, GraphError, ShapeError
"""
from .errors import GraphError, Problem, ShapeError
from .ops import OPS
from .pipeline import (
                       build_program,
                       check_graph,
                       compile_graph,
                       emit_program,
                       inference_graph,
                       prune,
                       training_graph,
)

__all__ = [
                       "OPS",
                       "GraphError",
                       "Problem",
                       "ShapeError",
                       "build_program",
                       "check_graph",
                       "compile_graph",
                       "emit_program",
                       "inference_graph",
                       "prune",
                       "training_graph",
]
