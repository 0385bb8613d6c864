"""Import: an ONNX model becomes a graphnn Graph and Model.

Nodes are read in the file's (topological) order. A node whose inputs are all
known constants is folded (``fold``): Shape, Gather on shapes, Concat,
Unsqueeze and the like vanish, so reshapes written by PyTorch and Keras load
with static shapes. Every other node goes to its converter (``converters``,
one table keyed by ONNX op type), which adds graphnn ops through the builder,
so shapes are inferred as the graph grows. Float initializers become trainable
parameters named as in the file; constants that come from Constant nodes or
folding stay constants.

Everything the importer cannot take (an op, an attribute value, a dtype) is
collected and reported at once, one line per ONNX node, naming its op type and
what is supported.

>>> from onnx import helper, TensorProto
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
>>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
>>> proto = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
>>> load_model(proto).graph["y"].shape
(None, 4)
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..compiler.errors import GraphError, Problem
from .converters import CONVERTERS, Unsupported
from .fold import BATCH, fold_node

FLOATS = ("float32", "float64")
INTS = ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8")   # Add/Sub/Mul and labels


class ImportContext:
    """What converters see: the graph being built, the values by ONNX name
    (a Tensor of the graph or a NumPy constant), and helpers.

    >>> from graphnn import Graph
    >>> g = Graph(); ctx = ImportContext(g, opset=21); x = g.input("x", (None, 2))
    >>> w = np.ones((2, 3), np.float32); ctx.constant("W", w, trainable=True)
    >>> ctx.op("matmul", [x, w], "mm"), g.nx.nodes["W"]["op"], sorted(ctx.weights)
    (<Tensor 'mm' (N, 3) float32>, 'param', ['W'])
    """

    def __init__(self, graph, opset: int):
        self.g, self.opset = graph, opset
        self.values: dict = {}
        self.weights: dict = {}          # param name -> initial value
        self.trainable: set = set()      # names of float initializers
        self.names: dict = {}            # id of a constant array -> its ONNX name
        self.made: dict = {}             # ONNX name of a constant -> its graph tensor

    def constant(self, name: str, value: np.ndarray, trainable: bool = False):
        """Record a constant value of the ONNX graph (an initializer when trainable).
        Nothing is added to the graph until an op reads it.

        >>> from graphnn import Graph
        >>> g = Graph(); ctx = ImportContext(g, opset=21); x = g.input("x", (None, 2))
        >>> w = np.ones((2, 3), np.float32); ctx.constant("W", w, trainable=True)
        >>> ctx.values["W"] is w, sorted(ctx.trainable), "W" in g.nx
        (True, ['W'], False)
        """
        self.values[name] = value
        self.names[id(value)] = name
        if trainable:
            self.trainable.add(name)

    def tensor(self, value, fallback: str):
        """``value`` as a graph tensor: a constant array becomes a param (an
        initializer's, trainable, named as in the file) or a constant node;
        a tensor stays itself.

        >>> from graphnn import Graph
        >>> g = Graph(); ctx = ImportContext(g, opset=21); x = g.input("x", (None, 2))
        >>> w = np.ones((2, 3), np.float32); ctx.constant("W", w, trainable=True)
        >>> t = ctx.tensor(w, "unused"); t, g.nx.nodes["W"]["op"], ctx.tensor(w, "again") is t
        (<Tensor 'W' (2, 3) float32>, 'param', True)
        >>> ctx.tensor(np.array([1.0, 2.0]), "bias"), g.nx.nodes["bias"]["op"]   # no initializer
        (<Tensor 'bias' (2,) float64>, 'constant')
        >>> ctx.tensor(x, "x") is x
        True
        """
        if not isinstance(value, np.ndarray):
            return value
        name = self.names.get(id(value))
        if name in self.made:
            return self.made[name]
        name = name or fallback
        dtype = str(value.dtype)
        if dtype not in FLOATS + INTS:
            raise Unsupported(f"constant {name!r} has dtype {dtype}; supported: {FLOATS + INTS}")
        if value.ndim and min(value.shape) == 0:
            raise Unsupported(f"constant {name!r} is empty {value.shape}")
        node = self.free(name)
        if name in self.trainable and dtype in FLOATS:
            t = self.g.op("param", [], name=node, shape=value.shape, dtype=dtype, init="zeros",
                          trainable=True)
            self.weights[node] = value
        else:
            t = self.g.op("constant", [], name=node, value=value.tolist(), shape=value.shape, dtype=dtype)
        self.made[name] = t
        return t

    def free(self, name: str) -> str:
        """A node name not yet in the graph: ``name`` or ``name_1``...

        >>> from graphnn import Graph
        >>> g = Graph(); ctx = ImportContext(g, 21); _ = g.input("x", (None, 2))
        >>> ctx.free("x"), ctx.free("y")
        ('x_1', 'y')
        """
        base, i = name, 1
        while name in self.g.nx:
            name, i = f"{base}_{i}", i + 1
        return name

    def op(self, op: str, inputs: list, name: str, **attrs):
        """Add a graphnn op on ``inputs`` (tensors or constants) named ``name``.

        >>> from graphnn import Graph
        >>> g = Graph(); ctx = ImportContext(g, opset=21); x = g.input("x", (None, 2))
        >>> w = np.ones((2, 3), np.float32); ctx.constant("W", w, trainable=True)
        >>> ctx.op("matmul", [x, w], "y"), ctx.op("relu", [x], "y")   # a free name for the second
        (<Tensor 'y' (N, 3) float32>, <Tensor 'y_1' (N, 2) float32>)
        """
        tensors = [self.tensor(v, f"{name}/const{i}") for i, v in enumerate(inputs)]
        return self.g.op(op, tensors, name=self.free(name), **attrs)


def _dtype_name(elem_type: int) -> str:
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def _input_shape(value_info, batch_symbolic: bool) -> tuple:
    dims = []
    for i, d in enumerate(value_info.type.tensor_type.shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif i == 0 and batch_symbolic:
            dims.append(None)
        else:
            allowed = ("only the first (the batch) may be" if batch_symbolic else
                       "with batch_symbolic=False every dimension must be fixed")
            raise Unsupported(f"input {value_info.name!r}: dimension {i} is symbolic "
                              f"({d.dim_param or '?'}); {allowed}")
    return tuple(dims)


def graph_from_onnx(proto, batch_symbolic: bool = True):
    """(Graph, input names, output names, initial weights) from a ModelProto.

    >>> from onnx import helper, numpy_helper, TensorProto
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    >>> W = numpy_helper.from_array(np.ones((2, 3), np.float32), "W")
    >>> proto = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])],
    ...                                             "g", [x], [y], initializer=[W]))
    >>> graph, inputs, outputs, weights = graph_from_onnx(proto)
    >>> inputs, outputs, graph["y"].shape, {k: v.shape for k, v in weights.items()}
    (['x'], ['y'], (None, 3), {'W': (2, 3)})
    >>> graph_from_onnx(proto, batch_symbolic=False)      # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 1 problem in the graph:
      node 'x' (input): input 'x': dimension 0 is symbolic (N)...
    """
    from ..graph import Graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
    graph = proto.graph
    floats = {_dtype_name(v.type.tensor_type.elem_type) for v in graph.input} & set(FLOATS)
    ctx = ImportContext(Graph(dtype=floats.pop() if len(floats) == 1 else "float32"), opset)
    problems: list[Problem] = []
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        ctx.constant(init.name, value, trainable=value.dtype.kind == "f")
    inputs = []
    for vi in graph.input:
        if vi.name in ctx.values:
            continue                      # an initializer listed as an input (old exporters)
        try:
            dtype = _dtype_name(vi.type.tensor_type.elem_type)
            if dtype not in FLOATS + INTS + ("bool",):
                raise Unsupported(f"dtype {dtype} is not supported; inputs may be {FLOATS + INTS}")
            ctx.values[vi.name] = ctx.g.input(vi.name, _input_shape(vi, batch_symbolic), dtype=dtype)
            inputs.append(vi.name)
        except Unsupported as e:
            problems.append(Problem(vi.name, "input", str(e)))
    known = set(CONVERTERS) | {"Constant"}
    for i, node in enumerate(graph.node):
        label = node.name or next((o for o in node.output if o), f"#{i}")
        if node.domain not in ("", "ai.onnx"):
            problems.append(Problem(label, f"{node.domain}.{node.op_type}", "only the default "
                                    "ONNX domain is supported"))
            continue
        missing = [n for n in node.input if n and n not in ctx.values]
        if missing:
            continue                          # an input failed earlier: that node is reported
        ins = [ctx.values[n] if n else None for n in node.input]
        try:
            folded = fold_node(node, ins, opset)
            if folded is not None:
                # a weight rearranged at load time (transposed, reshaped) stays trainable
                trainable = any(n in ctx.trainable for n in node.input)
                for name, value in zip(node.output, folded):
                    ctx.constant(name, value, trainable and value.dtype.kind == "f")
                continue
            if node.op_type not in CONVERTERS:
                raise Unsupported(f"op {node.op_type} is not supported (nor foldable: an input is "
                                  f"not constant); supported ops: {', '.join(sorted(known))}")
            outs = CONVERTERS[node.op_type](ctx, node, ins, _attributes(node))
        except Unsupported as e:
            problems.append(Problem(label, node.op_type, str(e)))
            continue
        except GraphError as e:
            problems += [Problem(label, node.op_type, f"{p.message} (graphnn node {p.node!r})")
                         for p in e.problems]
            continue
        for name, value in zip(node.output, outs):
            if name:
                ctx.values[name] = value
    outputs = []
    for vi in graph.output:
        value = ctx.values.get(vi.name)
        if value is None:
            if not problems:
                problems.append(Problem(vi.name, None, "this graph output is never computed"))
            continue
        if isinstance(value, np.ndarray):
            value = ctx.tensor(value, vi.name)
        outputs.append(value.name)
    if problems:
        raise GraphError(problems)
    _drop_unused(ctx.g, outputs)
    kept = ctx.g.nx
    return (ctx.g, [n for n in inputs if n in kept], outputs,
            {k: v for k, v in ctx.weights.items() if k in kept})


def _drop_unused(g, outputs):
    """Remove what no output reads (an ignored Dropout ratio, an unused output
    of an LSTM): graphnn rejects nodes that reach no output."""
    from ..compiler.ir import ancestors_of
    from ..compiler.ops import OPS
    updates = [n for n, d in g.nx.nodes(data=True) if OPS[d["op"]].kind == "update"]   # batch norm's
    keep = ancestors_of(g.nx, outputs + updates)
    g.nx.remove_nodes_from([n for n in list(g.nx) if n not in keep])
    g.layers = [rec for rec in g.layers if rec["output"] in keep]


def _attributes(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_model(path_or_proto, batch_symbolic: bool = True):
    """A Model built from an ONNX file or ModelProto, its weights set from the
    initializers. ``batch_symbolic=False`` keeps every input dimension as written.

    >>> from onnx import helper, numpy_helper, TensorProto
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    >>> W = numpy_helper.from_array(np.ones((2, 3), np.float32), "W")
    >>> proto = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])],
    ...                                             "g", [x], [y], initializer=[W]))
    >>> load_model(proto).predict(np.array([[1.0, 2.0]]))      # x @ ones((2, 3))
    array([[3., 3., 3.]], dtype=float32)
    """
    from ..model import Model
    proto = onnx.load(path_or_proto) if isinstance(path_or_proto, str) else path_or_proto
    graph, inputs, outputs, weights = graph_from_onnx(proto, batch_symbolic)
    model = Model(graph, inputs=inputs, outputs=outputs)
    model.set_weights(weights)
    return model


__all__ = ["BATCH", "ImportContext", "graph_from_onnx", "load_model"]
