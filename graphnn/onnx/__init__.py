"""ONNX at graphnn's edges: write a trained model out, read a model in, and run
ONNX's own conformance tests through a backend.

    export(model, "model.onnx")      the inference graph, weights as initializers
    load("model.onnx")               a Model (its Graph at model.graph)
    graphnn.onnx.backend             onnx.backend.base.Backend for ONNX's test runner

ONNX is a format at the boundary: inside, the networkx graph stays the single
source of truth. The ``onnx`` package is an optional extra
(``pip install graphnn[onnx]``); graphnn works without it.

>>> require_onnx().__name__
'onnx'
"""
from __future__ import annotations

INSTALL_HINT = "ONNX support needs the onnx package: pip install graphnn[onnx]"


def require_onnx():
    """The onnx module, or an ImportError that says how to install it.

    >>> onnx = require_onnx(); onnx.helper.make_node("Relu", ["x"], ["y"]).op_type
    'Relu'
    >>> INSTALL_HINT
    'ONNX support needs the onnx package: pip install graphnn[onnx]'
    """
    try:
        import onnx
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return onnx


def export(model, path=None, opset: int = 21):
    """Write ``model``'s inference graph to ``path`` as ONNX; return the ModelProto.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 3))
    >>> proto = export(Model(g, x, g.dense(x, 2, name="fc")))
    >>> [n.op_type for n in proto.graph.node]
    ['MatMul', 'Add']
    """
    require_onnx()
    from .exporter import export_model
    return export_model(model, path, opset)


def load(path_or_proto, batch_symbolic: bool = True):
    """A graphnn Model built from an ONNX file (or ModelProto).

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 3))
    >>> model = load(export(Model(g, x, g.dense(x, 2, name="fc"))))
    >>> model.graph["fc/bias_add"].shape
    (None, 2)
    """
    require_onnx()
    from .importer import load_model
    return load_model(path_or_proto, batch_symbolic)
