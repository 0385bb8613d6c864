"""Export: a trained model's inference graph as an ONNX model.

The graph written is the one ``predict`` compiles (``inference_graph``: dropout
gone, batch norm on its running statistics and folded into the layer before it
where it can be), before fusion and lowering, so each graphnn op maps to one or
a few standard ONNX ops. Nodes and tensors keep their graphnn names
(``conv2d/conv``, ``dense_1/W``), so a reader (or netron) recognizes the layers.
Parameters become initializers; values computed from parameters alone (a folded
batch norm's weights) are computed once here and written as initializers too.
The batch dimension is symbolic (``dim_param`` "N").

Recurrent layers are written unrolled, as graphnn holds them: every step's
slices, products and gates are plain ONNX ops (the LSTM's cells in
export_rnn.py). See docs/onnx.md for why.

>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("img", (None, 1, 6, 6))
>>> y = g.max_pool2d(g.conv2d(x, 2, 3, padding="same", activation="relu", name="c"), 2)
>>> [n.op_type for n in export_model(Model(g, x, y)).graph.node]
['Conv', 'Reshape', 'Add', 'Relu', 'MaxPool']
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..compiler.errors import GraphError, Problem
from ..compiler.ir import ancestors_of, op_attrs, operands
from ..compiler.ops.conv import conv_geometry, pair, resolve_padding
from ..compiler.pipeline import build_program, inference_graph
from ..runtime import Executor
from .export_rnn import EXPORTERS as RECURRENT_EXPORTERS

BATCH = "N"
DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE,
          "int64": TensorProto.INT64, "int32": TensorProto.INT32, "bool": TensorProto.BOOL}


class _Writer:
    """Collects ONNX nodes and initializers for one graph."""

    def __init__(self, g):
        self.g, self.nodes, self.initializers = g, [], []
        self.shared = set()       # values several nodes' converters write once (export_rnn.py)

    def node(self, op_type, inputs, output, name=None, **attrs):
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name or output, **attrs))
        return output

    def const(self, name, value):
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, name, values):
        return self.const(name, np.asarray(values, dtype=np.int64))

    def shape(self, name):
        return self.g.nodes[name]["shape"]

    def dtype(self, name):
        return np.dtype(self.g.nodes[name]["dtype"])


def _pads_onnx(pads):
    """graphnn (top, bottom, left, right) -> ONNX [top, left, bottom, right]."""
    t, b, l, r = pads
    return [int(t), int(l), int(b), int(r)]


# ------------------------------------------------------------------ one function per op

def _matmul(w, node, ins, a):
    if a["transpose_a"] or a["transpose_b"]:
        if len(w.shape(ins[0])) == 2 and len(w.shape(ins[1])) == 2:
            return w.node("Gemm", ins, node, transA=int(a["transpose_a"]), transB=int(a["transpose_b"]))
        ins = [w.node("Transpose", [x], f"{node}/T{i}", perm=[*range(len(w.shape(x)) - 2),
                                                                  len(w.shape(x)) - 1, len(w.shape(x)) - 2])
               if t else x for i, (x, t) in enumerate(zip(ins, (a["transpose_a"], a["transpose_b"])))]
    return w.node("MatMul", ins, node)


def _bias_add(w, node, ins, a):
    x, b = ins
    rank = len(w.shape(x))
    axis = a["axis"] % rank
    if axis != rank - 1:          # broadcast a (C,) bias along axis: reshape it to (C, 1, ..., 1)
        b = w.node("Reshape", [b, w.ints(f"{node}/bias_shape", [-1] + [1] * (rank - 1 - axis))],
                   f"{node}/bias")
    return w.node("Add", [x, b], node)


def _scale(w, node, ins, a):
    factor = w.const(f"{node}/factor", np.asarray(a["factor"], dtype=w.dtype(ins[0])))
    return w.node("Mul", [ins[0], factor], node)


def _swish(w, node, ins, a):
    return w.node("Mul", [ins[0], w.node("Sigmoid", ins, f"{node}/sigmoid")], node)


def _reshape(w, node, ins, a):
    target = [-1 if d is None else d for d in a["shape"]]
    return w.node("Reshape", [ins[0], w.ints(f"{node}/shape", target)], node)


def _slice(w, node, ins, a):
    return w.node("Slice", [ins[0], w.ints(f"{node}/starts", [a["start"]]),
                            w.ints(f"{node}/ends", [a["stop"]]), w.ints(f"{node}/axes", [a["axis"]])], node)


def _conv(w, node, ins, a):
    xs, ws = w.shape(ins[0]), w.shape(ins[1])
    pads, _ = conv_geometry(xs, ws, a)
    return w.node("Conv", ins, node, kernel_shape=list(ws[2:]), strides=list(pair(a["strides"])),
                  dilations=list(pair(a["dilation"])), pads=_pads_onnx(pads), group=a["groups"])


def _conv_transpose(w, node, ins, a):
    ws = w.shape(ins[1])
    d = pair(a["dilation"])
    pads = resolve_padding(a["padding"], (1, 1), ws[2:], (1, 1), d)
    extra = pair(a["output_padding"]) if a["output_padding"] else (0, 0)
    return w.node("ConvTranspose", ins, node, kernel_shape=list(ws[2:]), strides=list(pair(a["strides"])),
                  dilations=list(d), pads=_pads_onnx(pads), output_padding=list(extra), group=a["groups"])


def _pool(op_type):
    def write(w, node, ins, a):
        k = pair(a["pool_size"])
        s = pair(a["strides"] or a["pool_size"])
        d = pair(a["dilation"])
        pads = resolve_padding(a["padding"], w.shape(ins[0])[2:], k, s, d)
        extra = {"count_include_pad": int(a["count_include_pad"])} if op_type == "AveragePool" else {}
        if d != (1, 1):
            extra["dilations"] = list(d)
        return w.node(op_type, ins, node, kernel_shape=list(k), strides=list(s), pads=_pads_onnx(pads),
                      ceil_mode=int(a["ceil_mode"]), **extra)
    return write


def _global_avg_pool(w, node, ins, a):
    pooled = w.node("GlobalAveragePool", ins, f"{node}/pool")          # (N, C, 1, 1)
    return w.node("Flatten", [pooled], node, axis=1)


def _upsample(w, node, ins, a):
    fh, fw = pair(a["factor"])
    scales = w.const(f"{node}/scales", np.asarray([1, 1, fh, fw], dtype=np.float32))
    return w.node("Resize", [ins[0], "", scales], node, mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def _normalize(w, node, ins, a):
    x, mean, var, gamma, beta = ins
    if a["axis"] % len(w.shape(x)) != 1:
        raise _Unsupported(f"batch norm over axis {a['axis']}: ONNX BatchNormalization "
                           "normalizes axis 1 only")
    return w.node("BatchNormalization", [x, gamma, beta, mean, var], node, epsilon=float(a["eps"]))


def _simple(op_type, *copied, **fixed):
    """One ONNX op with the graphnn attributes named in ``copied`` (same names)."""
    def write(w, node, ins, a):
        return w.node(op_type, ins, node, **{k: a[k] for k in copied}, **fixed)
    return write


EXPORTERS = {
    "matmul": _matmul, "bias_add": _bias_add, "scale": _scale, "swish": _swish,
    "reshape": _reshape, "slice": _slice, "conv2d": _conv, "conv_transpose2d": _conv_transpose,
    "max_pool2d": _pool("MaxPool"), "avg_pool2d": _pool("AveragePool"),
    "global_avg_pool": _global_avg_pool, "upsample2d": _upsample, "normalize": _normalize,
    "add": _simple("Add"), "multiply": _simple("Mul"), "subtract": _simple("Sub"),
    "add_n": _simple("Sum"), "linear": _simple("Identity"), "relu": _simple("Relu"),
    "leaky_relu": _simple("LeakyRelu", "alpha"), "elu": _simple("Elu", "alpha"),
    "tanh": _simple("Tanh"), "sigmoid": _simple("Sigmoid"), "softplus": _simple("Softplus"),
    "gelu": _simple("Gelu", approximate="tanh"), "exp": _simple("Exp"),
    "softmax": _simple("Softmax", "axis"), "log_softmax": _simple("LogSoftmax", "axis"),
    "flatten": _simple("Flatten", axis=1), "concat": _simple("Concat", "axis"),
    "transpose": _simple("Transpose", "perm"),
    "embedding": lambda w, node, ins, a: w.node("Gather", [ins[1], ins[0]], node, axis=0),
    **RECURRENT_EXPORTERS,
}


class _Unsupported(Exception):
    pass


def _value_info(name, shape, dtype):
    dims = [BATCH if d is None else int(d) for d in shape]
    return helper.make_tensor_value_info(name, DTYPES[dtype], dims)


def _constants(g, variables):
    """(values, nodes): the values computed from parameters alone (no input
    reaches them) that varying nodes read, computed once with graphnn's own
    runtime and written as initializers; and every such constant node."""
    fed = {n for n, d in g.nodes(data=True) if d["op"] == "input"}
    varying = set()
    for n in fed:
        varying |= {m for m in _descendants(g, n)}
    constant = {n for n, d in g.nodes(data=True) if d["op"] not in ("param", "input") and n not in varying}
    wanted = [n for n in constant if any(s in varying for s in g.successors(n))]
    if not wanted:
        return {}, constant
    sub = g.subgraph(ancestors_of(g, wanted)).copy()
    executor = Executor(build_program(sub, wanted, 1, fuse=False),
                        {k: v for k, v in variables.items() if k in sub})
    return {k: np.array(v) for k, v in executor.run({}).items()}, constant


def _descendants(g, node):
    seen, stack = {node}, [node]
    while stack:
        for nxt in g.successors(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def export_model(model, path=None, opset: int = 21) -> onnx.ModelProto:
    """The ONNX ModelProto of ``model``'s inference graph, checked by
    ``onnx.checker`` (full check); written to ``path`` when given.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, x, g.dense(x, 2, activation="relu", name="fc"))
    >>> proto = export_model(m)
    >>> [n.op_type for n in proto.graph.node], [t.name for t in proto.graph.initializer]
    (['MatMul', 'Add', 'Relu'], ['fc/W', 'fc/b'])
    >>> from graphnn.onnx.importer import load_model
    >>> data = np.array([[1.0, -2.0, 0.5]])
    >>> np.array_equal(load_model(proto).predict(data), m.predict(data))     # the round trip
    True
    """
    g = inference_graph(model._checked, model.outputs)
    computed, constant = _constants(g, model.variables)
    w = _Writer(g)
    problems, used = [], set()
    for node in _order(g):
        d = g.nodes[node]
        if node in computed:
            w.const(node, computed[node].astype(d["dtype"]))
            continue
        if d["op"] in ("input", "param") or node in constant:
            continue            # constants that only feed other constants are folded into them
        if d["op"] not in EXPORTERS:
            problems.append(Problem(node, d["op"], f"no ONNX form for op {d['op']!r}; exportable "
                                    f"ops: {', '.join(sorted(EXPORTERS))}"))
            continue
        ins = operands(g, node)
        used.update(ins)
        try:
            EXPORTERS[d["op"]](w, node, ins, op_attrs(g, node))
        except _Unsupported as e:
            problems.append(Problem(node, d["op"], str(e)))
    if problems:
        raise GraphError(problems)
    params = [n for n, d in g.nodes(data=True) if d["op"] == "param" and n in used | set(model.outputs)]
    for n in params:
        w.initializers.append(numpy_helper.from_array(
            np.asarray(model.variables[n], dtype=g.nodes[n]["dtype"]), n))
    graph = helper.make_graph(
        w.nodes, "graphnn",
        [_value_info(n, g.nodes[n]["shape"], g.nodes[n]["dtype"]) for n in model.inputs],
        [_value_info(n, g.nodes[n]["shape"], g.nodes[n]["dtype"]) for n in model.outputs],
        initializer=w.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="graphnn")
    proto.ir_version = min(proto.ir_version, 10)        # what current runtimes read
    onnx.checker.check_model(proto, full_check=True)
    if path:
        onnx.save(proto, path)
    return proto


def _order(g):
    import networkx as nx
    return list(nx.lexicographical_topological_sort(g))
