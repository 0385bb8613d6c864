"""The converter table: one entry per ONNX op type, each adding graphnn ops.

A converter is ``convert(ctx, node, ins, attrs) -> [value per output]``: ``ins``
holds, per ONNX input, a graph Tensor, a NumPy constant or None (an omitted
optional input); ``attrs`` the node's attributes. It raises ``Unsupported``
with a sentence saying what is supported. This module holds the table and the
elementwise, activation and shape ops; ``convert_matrix`` adds MatMul, Gemm
and Gather, ``convert_nn`` convolution, pooling and normalization,
``convert_resize`` Resize and Upsample, ``convert_rnn`` LSTM and GRU,
``convert_loss`` the two losses.

>>> sorted(CONVERTERS)[:4]
['Add', 'AveragePool', 'BatchNormalization', 'Cast']
"""
from __future__ import annotations

from math import prod

import numpy as np
from onnx import helper

from .fold import BATCH

CONVERTERS: dict = {}


class Unsupported(Exception):
    """An op, attribute value or dtype the importer cannot take (the message says
    what it can). The importer collects them into one GraphError.

    >>> need_floats(np.array([1, 2]), what="Relu")
    Traceback (most recent call last):
    ...
    graphnn.onnx.converters.Unsupported: Relu on int64: graphnn computes it on float32/float64 tensors only
    """


def converter(*op_types):
    """Register a function as the converter of these ONNX op types.

    >>> @converter("MyIdentity")
    ... def _same(ctx, node, ins, attrs): return [ins[0]]
    >>> CONVERTERS["MyIdentity"] is _same
    True
    >>> del CONVERTERS["MyIdentity"]        # the table is shared by every import: as it was
    """
    def register(fn):
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn
    return register


# ------------------------------------------------------------------ helpers

def is_const(v) -> bool:
    """Whether a converter's input is a known constant (a NumPy array) rather than a graph tensor.

    >>> from graphnn import Graph
    >>> is_const(np.zeros(2)), is_const(Graph().input("x", (None, 2)))
    (True, False)
    """
    return isinstance(v, np.ndarray)


def shape_of(v) -> tuple:
    """The shape of a constant or a graph tensor (None for the batch).

    >>> from graphnn import Graph
    >>> shape_of(np.zeros((2, 3))), shape_of(Graph().input("x", (None, 2)))
    ((2, 3), (None, 2))
    """
    return tuple(v.shape)


def dtype_of(v) -> str:
    """The dtype's name, of a constant or a graph tensor.

    >>> from graphnn import Graph
    >>> dtype_of(np.zeros(2, "float32")), dtype_of(Graph().input("ids", (None,), dtype="int64"))
    ('float32', 'int64')
    """
    return str(v.dtype)


def need_floats(*values, what="this op"):
    """Refuse integer or bool operands where graphnn computes on floats only (None is skipped).

    >>> need_floats(np.zeros(2, "float32"), None)
    >>> need_floats(np.array([True]), what="Exp")
    Traceback (most recent call last):
    ...
    graphnn.onnx.converters.Unsupported: Exp on bool: graphnn computes it on float32/float64 tensors only
    """
    for v in values:
        if v is not None and not dtype_of(v).startswith("float"):
            raise Unsupported(f"{what} on {dtype_of(v)}: graphnn computes it on float32/float64 "
                              "tensors only")


def const(v, what: str) -> np.ndarray:
    """``v`` must be known when the model loads (an initializer or folded).

    >>> const(np.array([3, 2]), "the shape of Reshape")
    array([3, 2])
    >>> from graphnn import Graph
    >>> const(Graph().input("s", (2,), dtype="int64"), "the shape of Reshape")
    Traceback (most recent call last):
    ...
    graphnn.onnx.converters.Unsupported: the shape of Reshape must be a constant (an initializer or computable at load time)
    """
    if not is_const(v):
        raise Unsupported(f"{what} must be a constant (an initializer or computable at load time)")
    return v


def out(node, i: int = 0) -> str:
    """The name of the node's output ``i``: the name its graphnn op gets.

    >>> split = helper.make_node("Split", ["x"], ["a", "b"]); out(split), out(split, 1)
    ('a', 'b')
    """
    return node.output[i]


def reshape(ctx, x, shape, name):
    """A reshape that keeps the batch symbol where the input has it. A nameless
    constant is reshaped at once; the same shape is no op at all.

    >>> from graphnn import Graph
    >>> from graphnn.onnx.importer import ImportContext
    >>> g = Graph(); ctx = ImportContext(g, 21); x = g.input("x", (None, 6))
    >>> reshape(ctx, x, (None, 3, 2), "r"), reshape(ctx, x, (None, 6), "same") is x
    (<Tensor 'r' (N, 3, 2) float32>, True)
    >>> reshape(ctx, np.arange(6.0), (2, 3), "k").shape
    (2, 3)
    """
    shape = tuple(shape)
    if shape_of(x) == shape:
        return x
    if is_const(x) and id(x) not in ctx.names:       # a value of no name: reshape it here
        return x.reshape(shape)
    return ctx.op("reshape", [x], name, shape=shape)   # a weight stays one (trainable) param


def _axis(a, rank, default):
    axis = a.get("axis", default)
    if not -rank <= axis < rank:
        raise Unsupported(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


# ------------------------------------------------------------------ elementwise

def _binary(op):
    def convert(ctx, node, ins, a):
        same_ints = op != "divide" and len({dtype_of(v) for v in ins}) == 1 \
            and dtype_of(ins[0]).startswith(("int", "uint"))
        if not same_ints:                        # integers: Add, Sub, Mul of one dtype
            need_floats(*ins, what=node.op_type)
        return [ctx.op(op, ins, out(node))]
    return convert


converter("Add")(_binary("add"))
converter("Mul")(_binary("multiply"))


@converter("Sub")
def _sub(ctx, node, ins, a):
    """x - x of integers (ONNX's function bodies make typed zeros so) is a constant."""
    x, y = ins
    if x is y and not dtype_of(x).startswith("float") and None not in shape_of(x):
        return [np.zeros(shape_of(x), dtype=dtype_of(x))]
    return _binary("subtract")(ctx, node, ins, a)

converter("Div")(_binary("divide"))


@converter("Max")
def _max(ctx, node, ins, a):
    """max(x, 0) is relu; graphnn has no general elementwise maximum."""
    tensors = [v for v in ins if not is_const(v)]
    zeros = [v for v in ins if is_const(v) and v.size == 1 and float(v.reshape(-1)[0]) == 0.0]
    if len(tensors) != 1 or len(zeros) != len(ins) - 1:
        raise Unsupported("Max of anything but a tensor and 0 (which is relu)")
    need_floats(tensors[0], what="Max")
    return [ctx.op("relu", tensors, out(node))]


@converter("Pow")
def _pow(ctx, node, ins, a):
    """x ** k for a constant whole k from 1 to 4, as products."""
    x, k = ins
    need_floats(x, what="Pow")
    k = const(k, "Pow's exponent")
    if k.size != 1 or float(k.reshape(-1)[0]) not in (1.0, 2.0, 3.0, 4.0):
        raise Unsupported(f"exponent {k.reshape(-1).tolist()}; supported: constant 1, 2, 3 or 4")
    k, name = int(k.reshape(-1)[0]), out(node)
    if k == 1:
        return [ctx.op("linear", [x], name)]
    square = ctx.op("multiply", [x, x], name if k == 2 else f"{name}/square")
    if k == 2:
        return [square]
    return [ctx.op("multiply", [square, x if k == 3 else square], name)]


@converter("Neg")
def _neg(ctx, node, ins, a):
    need_floats(ins[0], what="Neg")
    return [ctx.op("scale", [ins[0]], out(node), factor=-1.0)]


@converter("ReduceSum", "ReduceMax", "ReduceMean")
def _reduce(ctx, node, ins, a):
    x = ins[0]
    need_floats(x, what=node.op_type)
    from_input = node.op_type == "ReduceSum" and ctx.opset >= 13 or ctx.opset >= 18
    axes = (const(ins[1], "axes") if len(ins) > 1 and ins[1] is not None else None) if from_input \
        else a.get("axes")
    if axes is not None and len(axes) == 0:
        axes = None
    if axes is None and a.get("noop_with_empty_axes", 0):
        return [ctx.op("linear", [x], out(node))]
    axes = None if axes is None else [int(v) for v in axes]
    keep = bool(a.get("keepdims", 1))
    if node.op_type == "ReduceMax":
        return [ctx.op("reduce_max", [x], out(node), axes=axes, keepdims=keep)]
    if node.op_type == "ReduceSum":
        return [ctx.op("reduce_sum", [x], out(node), axes=axes, keepdims=keep)]
    s = shape_of(x)
    picked = range(len(s)) if axes is None else [v % len(s) for v in axes]
    if any(s[i] is None for i in picked):
        raise Unsupported("a mean over the batch axis (its size is not known when loading)")
    total = ctx.op("reduce_sum", [x], f"{out(node)}/sum", axes=axes, keepdims=keep)
    return [ctx.op("scale", [total], out(node), factor=1.0 / prod(s[i] for i in picked))]


@converter("Sum")
def _sum(ctx, node, ins, a):
    need_floats(*ins, what="Sum")
    if len(ins) == 1:
        return [ctx.op("linear", ins, out(node))]
    if len({shape_of(v) for v in ins}) == 1:
        return [ctx.op("add_n", ins, out(node))]
    total = ins[0]                      # broadcasting operands: a chain of adds
    for i, v in enumerate(ins[1:], 1):
        total = ctx.op("add", [total, v], out(node) if i == len(ins) - 1 else f"{out(node)}/add{i}")
    return [total]


def _unary(op, **defaults):
    def convert(ctx, node, ins, a):
        need_floats(ins[0], what=node.op_type)
        attrs = {k: float(a.get(onnx_name, value)) for k, (onnx_name, value) in defaults.items()}
        return [ctx.op(op, [ins[0]], out(node), **attrs)]
    return convert


for _onnx, _graphnn in (("Relu", "relu"), ("Tanh", "tanh"), ("Sigmoid", "sigmoid"),
                        ("Softplus", "softplus"), ("Exp", "exp"), ("Log", "log"), ("Identity", "linear")):
    converter(_onnx)(_unary(_graphnn))
converter("LeakyRelu")(_unary("leaky_relu", alpha=("alpha", 0.01)))
converter("Elu")(_unary("elu", alpha=("alpha", 1.0)))


converter("Erf")(_unary("erf"))


@converter("Gelu")
def _gelu(ctx, node, ins, a):
    """approximate='tanh' is graphnn's gelu; 'none' (exact) is 0.5 x (1 + erf(x / sqrt 2))."""
    x, name = ins[0], out(node)
    need_floats(x, what="Gelu")
    if a.get("approximate", b"none") in (b"tanh", "tanh"):
        return [ctx.op("gelu", [x], name)]
    e = ctx.op("erf", [ctx.op("scale", [x], f"{name}/scaled", factor=2 ** -0.5)], f"{name}/erf")
    half = ctx.op("scale", [ctx.op("multiply", [e, x], f"{name}/x_erf")], f"{name}/half_x_erf", factor=0.5)
    return [ctx.op("add", [half, ctx.op("scale", [x], f"{name}/half_x", factor=0.5)], name)]


@converter("Softmax", "LogSoftmax")
def _softmax(ctx, node, ins, a):
    x = ins[0]
    need_floats(x, what=node.op_type)
    rank = len(shape_of(x))
    if ctx.opset < 13:            # the old form: softmax of x flattened from axis on
        axis = _axis(a, rank, 1)
        if axis != rank - 1:
            raise Unsupported(f"opset {ctx.opset} {node.op_type} over axes {axis}.. (flattened); "
                              "graphnn takes one axis (the last, before opset 13)")
    else:
        axis = _axis(a, rank, -1)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    return [ctx.op(op, [x], out(node), axis=axis)]


@converter("Dropout")
def _dropout(ctx, node, ins, a):
    """Inference (or a ratio of 0): the input passes through and the mask, when
    asked for, keeps everything (ones, which the backend returns as bool)."""
    training = ins[2] if len(ins) > 2 else None
    ratio = ins[1] if len(ins) > 1 else None
    no_drop = is_const(ratio) and float(ratio) == 0.0
    if training is not None and (not is_const(training) or bool(training)) and not no_drop:
        raise Unsupported("training_mode=True (a random mask); graphnn imports inference graphs, "
                          "where Dropout passes its input through")
    y = ctx.op("linear", [ins[0]], out(node))
    if len(node.output) > 1 and node.output[1]:
        if None in shape_of(ins[0]):
            raise Unsupported("the mask output of a batch of unknown size")
        return [y, np.ones(shape_of(ins[0]), dtype=np.float32)]
    return [y]


# ------------------------------------------------------------------ shapes

@converter("Concat")
def _concat(ctx, node, ins, a):
    rank = len(shape_of(ins[0]))
    return [ctx.op("concat", ins, out(node), axis=_axis(a, rank, 0))]


@converter("Transpose")
def _transpose(ctx, node, ins, a):
    rank = len(shape_of(ins[0]))
    perm = list(a.get("perm", range(rank - 1, -1, -1)))
    return [ctx.op("transpose", [ins[0]], out(node), perm=perm)]


def reshape_target(in_shape, spec, allowzero=False) -> tuple:
    """ONNX Reshape's target (0 copies, -1 infers, BATCH is the batch) as a
    graphnn shape (None for the batch).

    >>> reshape_target((None, 2, 3), [BATCH, -1]), reshape_target((None, 2, 3), [0, 3, 2])
    ((None, 6), (None, 3, 2))
    >>> reshape_target((None, 6), [-1, 3, 2])             # -1 where only the batch is left
    (None, 3, 2)
    >>> reshape_target((None, 6), [BATCH, -2])            # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    graphnn.onnx.converters.Unsupported: target shape [..., -2]: dimension -2
    """
    target, infer = [], None
    for i, d in enumerate(int(v) for v in spec):
        if d == BATCH:
            target.append(None)
        elif d == 0 and not allowzero:
            target.append(in_shape[i])
        elif d == -1:
            infer = i
            target.append(-1)
        elif d > 0:
            target.append(d)
        else:
            raise Unsupported(f"target shape {list(spec)}: dimension {d}")
    known_in = prod(d for d in in_shape if d is not None)
    known_out = prod(d for d in target if d not in (None, -1))
    if infer is not None:
        if None in in_shape and None not in target:
            target[infer] = None              # -1 stands for the batch
            if known_in != known_out:
                raise Unsupported(f"cannot reshape {in_shape} into {list(spec)}")
        else:
            if known_out == 0 or known_in % known_out:
                raise Unsupported(f"cannot reshape {in_shape} into {list(spec)}")
            target[infer] = known_in // known_out
    return tuple(target)


@converter("Reshape")
def _reshape(ctx, node, ins, a):
    x, spec = ins[0], const(ins[1], "Reshape's shape")
    return [reshape(ctx, x, reshape_target(shape_of(x), spec, a.get("allowzero", 0)), out(node))]


@converter("Flatten")
def _flatten(ctx, node, ins, a):
    x = ins[0]
    s = shape_of(x)
    axis = a.get("axis", 1)
    axis = axis + len(s) if axis < 0 else axis
    if axis == 1 and s[0] is None:
        return [ctx.op("flatten", [x], out(node)) if len(s) > 2 else reshape(ctx, x, s, out(node))]
    if None in s:
        raise Unsupported(f"Flatten at axis {axis} of {s}: it would merge the batch with other axes")
    return [reshape(ctx, x, (prod(s[:axis]), prod(s[axis:])), out(node))]


def _raw_axes(ins, a):
    """Squeeze's and Unsqueeze's axes: an attribute before opset 13, an input after."""
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(ins) > 1 and ins[1] is not None:
        return [int(v) for v in const(ins[1], "axes")]
    return None


@converter("Unsqueeze")
def _unsqueeze(ctx, node, ins, a):
    s = list(shape_of(ins[0]))
    raw = _raw_axes(ins, a) or []
    for ax in sorted(v % (len(s) + len(raw)) for v in raw):
        s.insert(ax, 1)
    return [reshape(ctx, ins[0], s, out(node))]


@converter("Squeeze")
def _squeeze(ctx, node, ins, a):
    s = shape_of(ins[0])
    raw = _raw_axes(ins, a)
    axes = [i for i, d in enumerate(s) if d == 1] if raw is None else [v % len(s) for v in raw]
    return [reshape(ctx, ins[0], [d for i, d in enumerate(s) if i not in axes], out(node))]


@converter("Slice")
def _slice(ctx, node, ins, a):
    """Step 1 is graphnn's slice; any other step (negative too) gathers the rows
    that NumPy's x[start:end:step] picks on that axis, by constant indices."""
    x = ins[0]
    s = shape_of(x)
    if ctx.opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = const(ins[1], "starts"), const(ins[2], "ends")
        axes = const(ins[3], "axes") if len(ins) > 3 and ins[3] is not None else None
        steps = const(ins[4], "steps") if len(ins) > 4 and ins[4] is not None else None
    axes = list(range(len(starts))) if axes is None else [int(v) % len(s) for v in axes]
    steps = [1] * len(axes) if steps is None else [int(v) for v in steps]
    y = x
    for k, (axis, start, end, step) in enumerate(zip(axes, starts, ends, steps)):
        size = s[axis]
        if size is None:
            raise Unsupported("slicing the batch axis")
        picked = np.arange(size)[int(start):int(end):step]       # NumPy's clamping is ONNX's
        if picked.size == 0:
            raise Unsupported(f"an empty slice [{int(start)}:{int(end)}:{step}] of axis {axis}: "
                              "graphnn's dimensions are positive")
        name = out(node) if k == len(axes) - 1 else f"{out(node)}/axis{axis}"
        if step != 1:
            gather = helper.make_node("Gather", ["x", "i"], [name])
            y = CONVERTERS["Gather"](ctx, gather, [y, picked.astype(np.int64)], {"axis": axis})[0]
        elif picked.size != size:
            y = ctx.op("slice", [y], name, axis=axis, start=int(picked[0]), stop=int(picked[-1]) + 1)
    return [y if y is not x else ctx.op("linear", [x], out(node))]


from . import convert_loss, convert_matrix, convert_nn, convert_resize, convert_rnn, convert_select  # noqa: E402, F401  (they fill the table)
