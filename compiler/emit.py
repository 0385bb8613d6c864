"""emit_program: turn a scheduled graph into a runtime Program for one batch size.

Buffers take their node's name. Inputs and computed values live in the arena,
params, state and constants are persistent. Three kinds of sharing are decided
here, then ``plan_memory`` places what is left:

- a view op (reshape, flatten, linear) runs no kernel: its buffer is a view of
  its operand's bytes;
- an in-place op (relu, bias_add, a gradient of an activation, ...) writes its
  result over operand 0 when nothing reads that operand's storage afterwards;
- scratch buffers a kernel asks for live for that one instruction;
- a node whose op is an ``extra_output`` (a routed max pool's routes) runs no
  kernel: its operand's instruction writes it, beside its own result.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.infer import infer_shapes
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 2), dtype="float32")
>>> _ = add_op(g, "y", "tanh", ["x"]); _ = add_op(g, "z", "relu", ["y"])
>>> p = emit_program(infer_shapes(g), ["z"], batch_size=4)
>>> p.instructions[1].inplace, p.buffers["z"].offset == p.buffers["y"].offset
(['y'], True)
"""
from __future__ import annotations

import networkx as nx

from ..runtime.program import Buffer, Instruction, Program
from .ir import op_attrs, operands, topological_order
from .ops import OPS, concrete
from .plan import plan_memory
from .schedule import schedule


def _concrete_attrs(attrs: dict, batch: int) -> dict:
    return {k: list(concrete(tuple(v), batch)) if k == "shape" and isinstance(v, (tuple, list)) else v
            for k, v in attrs.items()}


def emit_program(g: nx.MultiDiGraph, outputs: list[str], batch_size: int,
                 guard: tuple[str, ...] = (), inplace: bool = True) -> Program:
    """Schedule ``g``, plan its arena for ``batch_size`` and list its instructions.

    ``guard`` names scalar outputs (the loss) checked for NaN/inf right after
    they are computed, before any update can run. ``inplace=False`` gives every
    result its own storage (for comparisons).

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.infer import infer_shapes
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 2), dtype="float32")
    >>> _ = add_op(g, "y", "tanh", ["x"]); _ = add_op(g, "z", "relu", ["y"])
    >>> p = emit_program(infer_shapes(g), ["z"], batch_size=4, guard=("z",), inplace=False)
    >>> [i.kernel for i in p.instructions], p.buffers["z"].shape
    (['tanh', 'relu', 'check_finite'], (4, 2))
    >>> p.buffers["y"].offset, p.buffers["z"].offset       # no in-place write: apart
    (64, 128)
    """
    order = schedule(g, outputs)
    step = {n: i for i, n in enumerate(order)}
    end = len(order)
    buffers: dict[str, Buffer] = {}
    root: dict[str, str] = {}                 # buffer -> the storage it lives in

    def find(n):                              # in-place merges chain: follow to the end
        while root[n] != n:
            n = root[n]
        return n

    for node, d in g.nodes(data=True):
        op = OPS[d["op"]]
        if op.kind != "update":
            buffers[node] = Buffer(node, concrete(d["shape"], batch_size), d["dtype"],
                                   persistent=op.persistent,
                                   value=d.get("value") if d["op"] == "constant" else None)
            root[node] = node

    # Views first: they are fixed by the graph, whatever the schedule.
    for node in topological_order(g):
        if OPS[g.nodes[node]["op"]].view:
            src = root[operands(g, node)[0]]
            root[node] = src
            buffers[node].view_of = src
            buffers[node].persistent = buffers[src].persistent

    extras: dict[str, list[str]] = {}         # node -> the further results its instruction writes
    for node in order:
        if OPS[g.nodes[node]["op"]].extra_output:
            extras.setdefault(operands(g, node)[0], []).append(node)
    reads: dict[str, int] = {}                # storage -> last step that reads it
    for node in order:
        if OPS[g.nodes[node]["op"]].extra_output:
            continue                          # written by its operand's instruction, reads nothing
        for i in operands(g, node):
            reads[root[i]] = max(reads.get(root[i], -1), step[node])
    pinned = {root[n] for n, d in g.nodes(data=True) if d["op"] == "input"}
    pinned |= {root[o] for o in outputs}
    first: dict[str, int] = {}
    instructions = []
    for node in order:
        d = g.nodes[node]
        op, ins = OPS[d["op"]], operands(g, node)
        if op.view or op.extra_output:
            continue
        attrs = _concrete_attrs(op_attrs(g, node), batch_size)
        if op.kind == "update":
            outs = [ins[p] for p in op.mutates if p < len(ins)]
        else:
            outs = [node, *extras.get(node, ())]
        over = []
        if inplace and op.inplace and op.kind != "update":
            src = find(ins[0])
            b = buffers[src]
            if (not b.persistent and src not in pinned and reads.get(src) == step[node]
                    and b.nbytes == buffers[node].nbytes
                    and all(find(i) != src for i in ins[1:])):
                root[node] = src
                reads[src] = max(reads[src], reads.pop(node, -1))
                if node in pinned:
                    pinned.add(src)
                over = [ins[0]]
        for k, (shape, dtype) in enumerate(op.scratch_buffers(
                [g.nodes[i]["shape"] for i in ins], d["shape"], op_attrs(g, node), d["dtype"])):
            name = f"{node}/scratch{k}"
            buffers[name] = Buffer(name, concrete(shape, batch_size), dtype)
            root[name] = name
            reads[name] = step[node]
            outs.append(name)
        for o in outs:
            first.setdefault(find(o), step[node])
        instructions.append(Instruction(op.kernel, ins, outs, attrs, node, over))
        if node in guard:
            instructions.append(Instruction("check_finite", [node], [], {"what": node}, node))

    storages = {find(n) for n in root if not buffers[n].persistent}
    lifetimes = {}
    for r in storages:
        start = -1 if g.has_node(r) and g.nodes[r]["op"] == "input" else first.get(r, reads.get(r, 0))
        last = end if r in pinned else max(reads.get(r, start), start)
        lifetimes[r] = (start, last)
    offsets, report = plan_memory({r: buffers[r].nbytes for r in storages}, lifetimes)
    for name, b in buffers.items():
        if not b.persistent:
            b.offset = offsets[find(name)]
    inputs = [n for n, d in g.nodes(data=True) if d["op"] == "input"]
    return Program(buffers, instructions, inputs, list(outputs), batch_size, report)
