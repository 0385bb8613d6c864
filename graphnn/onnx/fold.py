"""Constant folding at import: a node whose inputs are all known becomes a constant.

PyTorch and Keras write reshapes as little shape programs (Shape, Gather,
Unsqueeze, Concat, then Reshape). graphnn's shapes are static, so these fold
to constants when the model loads: ``Shape`` of a graph tensor is its inferred
shape, with the symbolic batch as the marker ``BATCH``, which Gather, Slice,
Concat and Unsqueeze carry along and Reshape reads back as the batch.
Any other node whose inputs are all constants is evaluated once by ONNX's own
reference implementation (``onnx.reference``), so folding covers every op.

>>> from onnx import helper
>>> node = helper.make_node("Concat", ["a", "b"], ["c"], axis=0)
>>> fold_node(node, [np.array([1]), np.array([2, 3])], 21)
[array([1, 2, 3])]
"""
from __future__ import annotations

import numpy as np
from onnx import helper

BATCH = -(2 ** 40)      # the symbolic batch inside a folded shape (far from any real size)

# Ops that would need a random draw or a side effect: never folded.
NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
              "Multinomial", "Bernoulli", "Dropout"}


def shape_of(tensor) -> np.ndarray:
    """A graph tensor's shape as int64, the batch as BATCH.

    >>> from graphnn import Graph
    >>> s = shape_of(Graph().input("x", (None, 3))); s.tolist() == [BATCH, 3], s.dtype
    (True, dtype('int64'))
    """
    return np.array([BATCH if d is None else d for d in tensor.shape], dtype=np.int64)


def fold_node(node, ins: list, opset: int):
    """The node's outputs as NumPy arrays, or None when it must stay a node.

    >>> from graphnn import Graph
    >>> x = Graph().input("x", (None, 3))
    >>> (s,) = fold_node(helper.make_node("Shape", ["x"], ["s"], start=1), [x], 21); s
    array([3])
    >>> print(fold_node(helper.make_node("Relu", ["x"], ["y"]), [x], 21))     # x is not known
    None
    """
    if node.op_type == "Shape" and ins and ins[0] is not None:
        full = shape_of(ins[0]) if not isinstance(ins[0], np.ndarray) else np.array(ins[0].shape)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return [full[attrs.get("start", 0):attrs.get("end", len(full))].astype(np.int64)]
    if node.op_type == "CastLike" and isinstance(ins[0], np.ndarray) and ins[1] is not None:
        return [ins[0].astype(ins[1].dtype)]      # the target dtype is known statically
    if node.op_type in NOT_FOLDED or not all(v is None or isinstance(v, np.ndarray) for v in ins):
        return None
    return evaluate(node, ins, opset)


def evaluate(node, ins, opset):
    """Run one node with ONNX's reference evaluator.

    >>> evaluate(helper.make_node("Add", ["a", "b"], ["c"]), [np.array([1, 2]), np.array([10, 20])], 21)
    [array([11, 22])]
    """
    from onnx.reference import ReferenceEvaluator
    feeds, inputs = {}, []
    for name, value in zip(node.input, ins):
        if name and name not in feeds:
            feeds[name] = value
            inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    results = ReferenceEvaluator(model).run(None, feeds)
    return [np.asarray(r) for r in results]
