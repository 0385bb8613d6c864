"""The IR as a readable program: one line per node, operands by name.

    %hidden/matmul = matmul(%x, %hidden/W) : (N, 3) f32

Sources show what they are (``input``, ``param init=zeros``, ``constant 1.0``);
an op's attributes are shown where they differ from the op's defaults; a
fused node names its parts; an update names what it overwrites. Nodes come
in topological order, ties broken by the order they were added, so the
listing is stable and follows the user's code. A planned Program prints the
same way, one line per instruction, each buffer with its arena offset.

``graphnn inspect SPEC --passes`` prints the graph after every pass with this.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.pipeline import check_graph
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
>>> _ = add_op(g, "W", "param", [], shape=(3, 2), dtype="float32", init="zeros")
>>> _ = add_op(g, "h", "matmul", ["x", "W"])
>>> print(format_graph(check_graph(g, ["h"])))
%x = input : (N, 3) f32
%W = param init='zeros' : (3, 2) f32
%h = matmul(%x, %W) : (N, 2) f32
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .ir import add_op, new_graph, op_attrs, operands
from .ops import OPS, fmt_shape
from .ops.base import REQUIRED

DTYPES = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int16": "i16",
          "int32": "i32", "int64": "i64", "uint8": "u8", "bool": "bool"}
SOURCE_ATTRS = ("shape", "dtype", "value", "trainable")   # shown another way, or not at all


def short_dtype(dtype) -> str:
    """``float32`` -> ``f32`` (other names unchanged).

    >>> short_dtype("int64")
    'i64'
    """
    return DTYPES.get(str(dtype), str(dtype))


def _example_graph() -> nx.MultiDiGraph:
    """For the examples: the checked graph y = x @ W, z = leaky_relu(y, alpha=0.2), with
    x an input (N, 3) and W a zero param (3, 2)."""
    from .pipeline import check_graph  # only the examples need the pipeline
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    add_op(g, "W", "param", [], shape=(3, 2), dtype="float32", init="zeros")
    add_op(g, "y", "matmul", ["x", "W"])
    add_op(g, "z", "leaky_relu", ["y"], alpha=0.2)
    return check_graph(g, ["z"])


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_value(x) for x in v)
        return f"({inner}{',' if len(v) == 1 else ''})" if isinstance(v, tuple) else f"[{inner}]"
    return repr(v)


def _attrs(op: str, attrs: dict) -> str:
    """`` k=v`` for each attribute that differs from the op's default."""
    spec = OPS[op].attrs
    shown = []
    for k, v in attrs.items():
        default = spec[k].default if k in spec else REQUIRED
        if op in ("input", "param", "state", "constant") and k in SOURCE_ATTRS:
            continue
        if default is REQUIRED or v != default:
            shown.append(f"{k}={fmt_shape(v) if k == 'shape' else _value(v)}")
    return "".join(" " + s for s in shown)


def _constant(value) -> str:
    array = np.asarray(value)
    return _value(array.item()) if array.size == 1 else f"<{array.size} values>"


def node_line(g: nx.MultiDiGraph, node: str) -> str:
    """One node as ``%name = op(%operand, ...) attrs : shape dtype`` (attributes
    at their defaults left out).

    >>> c = _example_graph()      # checked: y = x @ W, z = leaky_relu(y, alpha=0.2)
    >>> node_line(c, "y"), node_line(c, "z")
    ('%y = matmul(%x, %W) : (N, 2) f32', '%z = leaky_relu(%y) alpha=0.2 : (N, 2) f32')
    """
    d = g.nodes[node]
    op = d["op"]
    attrs = op_attrs(g, node)
    if op == "fused":                # fused[matmul+bias_add+relu], the parts' attributes aside
        parts = [attrs["anchor"], *attrs["epilogue"]]
        call, extra = "fused[" + "+".join(p["op"] for p in parts) + "]", ""
    else:
        call, extra = op, _attrs(op, attrs)
    if op == "constant":
        extra = " " + _constant(d.get("value")) + extra
    args = operands(g, node)
    text = f"%{node} = {call}" + (f"({', '.join('%' + a for a in args)})" if args else "") + extra
    if OPS[op].kind == "update":
        written = [args[p] for p in OPS[op].mutates if p < len(args)]
        return text + " : writes " + ", ".join("%" + w for w in written)
    if "shape" in d:
        text += f" : {fmt_shape(d['shape'])} {short_dtype(d.get('dtype', '?'))}"
    return text


def stable_order(g: nx.MultiDiGraph) -> list:
    """Topological order, ties broken by the order nodes were added.

    >>> c = _example_graph()      # checked: y = x @ W, z = leaky_relu(y, alpha=0.2)
    >>> stable_order(c)
    ['x', 'W', 'y', 'z']
    """
    index = {n: i for i, n in enumerate(g)}
    return list(nx.lexicographical_topological_sort(g, key=index.__getitem__))


def format_graph(g: nx.MultiDiGraph, order: list | None = None) -> str:
    """The graph as a program, one line per node, in ``order`` (default: ``stable_order``).

    >>> c = _example_graph()      # checked: y = x @ W, z = leaky_relu(y, alpha=0.2)
    >>> print(format_graph(c))
    %x = input : (N, 3) f32
    %W = param init='zeros' : (3, 2) f32
    %y = matmul(%x, %W) : (N, 2) f32
    %z = leaky_relu(%y) alpha=0.2 : (N, 2) f32
    """
    return "\n".join(node_line(g, n) for n in (order if order is not None else stable_order(g)))


def format_program(program) -> str:
    """A planned Program, one line per instruction: ``%out@offset = kernel(%in@offset, ...)
    : shape dtype``; persistent buffers have no offset. Views and in-place writes
    are named; the first line gives the arena against its lower bound.

    >>> c = _example_graph()      # checked: y = x @ W, z = leaky_relu(y, alpha=0.2)
    >>> from graphnn.compiler.pipeline import build_program
    >>> print(format_program(build_program(c, ["z"], batch_size=2)))
    # batch 2: 1 instructions, arena 192 B (lower bound 192 B, naive 192 B)
    %x@0 = input : (2, 3) f32
    %z@64, %z/scratch0@128 = fused[matmul+leaky_relu](%x@0, %W) : (2, 2) f32
    """
    def place(name):
        b = program.buffers[name]
        return f"%{name}" if b.offset is None else f"%{name}@{b.offset}"

    m = program.memory
    lines = [(f"# batch {program.batch_size}: {len(program.instructions)} instructions, arena "
              f"{m.planned_bytes} B (lower bound {m.lower_bound_bytes} B, naive {m.naive_bytes} B)")]
    for name in program.inputs:
        b = program.buffers[name]
        lines.append(f"{place(name)} = input : {b.shape} {short_dtype(b.dtype)}")
    for ins in program.instructions:
        kernel = ins.kernel
        if kernel == "fused":
            kernel = "fused[" + "+".join(p["kernel"] for p in [ins.attrs["anchor"], *ins.attrs["epilogue"]]) + "]"
        outs = ", ".join(place(o) for o in ins.outputs) or "_"
        text = f"{outs} = {kernel}({', '.join(place(a) for a in ins.inputs)})"
        if ins.outputs:
            b = program.buffers[ins.outputs[0]]
            text += f" : {b.shape} {short_dtype(b.dtype)}"
        if ins.inplace:
            text += "  # in place of " + ", ".join("%" + s for s in ins.inplace)
        lines.append(text)
    views = [b for b in program.buffers.values() if b.view_of]
    lines += [f"{place(b.name)} = view of %{b.view_of} : {b.shape}" for b in views]
    return "\n".join(lines)


def format_stage(obj) -> str:
    """A traced pass's result: a graph, or (after ``plan``) a Program.

    >>> c = _example_graph()      # checked: y = x @ W, z = leaky_relu(y, alpha=0.2)
    >>> from graphnn.compiler.pipeline import build_program
    >>> p = build_program(c, ["z"], batch_size=2)
    >>> format_stage(c) == format_graph(c), format_stage(p) == format_program(p)
    (True, True)
    """
    return format_graph(obj) if isinstance(obj, nx.Graph) else format_program(obj)
