"""emit_program: turn a scheduled graph into a runtime Program for one batch size.

Buffers take their node's name. Inputs and computed values live in the arena
(placed by ``plan_memory``); params, state and constants are persistent.
An update instruction lists the buffers it overwrites as its outputs.

>>> from compiler.ir import new_graph, add_op
>>> from compiler.infer import infer_shapes
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 2), dtype="float32")
>>> _ = add_op(g, "y", "relu", ["x"])
>>> print(emit_program(infer_shapes(g), ["y"], batch_size=4).instructions[0])
Instruction(kernel='relu', inputs=['x'], outputs=['y'], attrs={}, node='y')
"""
from __future__ import annotations

import networkx as nx

from runtime.program import Buffer, Instruction, Program

from .ir import consumers, op_attrs, operands
from .ops import OPS, concrete
from .plan import plan_memory
from .schedule import schedule


def _concrete_attrs(attrs: dict, batch: int) -> dict:
    out = {}
    for k, v in attrs.items():
        if k == "shape" and isinstance(v, (tuple, list)):
            v = list(concrete(tuple(v), batch))
        out[k] = v
    return out


def emit_program(g: nx.MultiDiGraph, outputs: list[str], batch_size: int,
                 guard: tuple[str, ...] = ()) -> Program:
    """Schedule ``g``, plan its arena for ``batch_size`` and list its instructions.

    ``guard`` names scalar outputs (the loss) checked for NaN/inf right after
    they are computed, before any update can run."""
    order = schedule(g, outputs)
    step = {n: i for i, n in enumerate(order)}
    buffers, lifetimes, instructions = {}, {}, []
    end = len(order)
    for node, d in g.nodes(data=True):
        op = OPS[d["op"]]
        if op.kind == "update":
            continue
        shape = concrete(d["shape"], batch_size)
        if d["op"] in ("param", "state"):
            buffers[node] = Buffer(node, shape, d["dtype"], persistent=True)
            continue
        if d["op"] == "constant":
            buffers[node] = Buffer(node, shape, d["dtype"], persistent=True, value=d["value"])
            continue
        buffers[node] = Buffer(node, shape, d["dtype"])
        readers = [step[c] for c in consumers(g, node)]
        # Inputs and outputs stay intact for the whole step: the caller reads them
        # afterwards (metrics compare predictions with the fed targets).
        first = -1 if d["op"] == "input" else step[node]
        last = end if node in outputs or d["op"] == "input" else max(readers, default=first)
        lifetimes[node] = (first, max(first, last))
    offsets, report = plan_memory({n: buffers[n].nbytes for n in lifetimes}, lifetimes)
    for name, offset in offsets.items():
        buffers[name].offset = offset
    for node in order:
        op, ins = OPS[g.nodes[node]["op"]], operands(g, node)
        attrs = _concrete_attrs(op_attrs(g, node), batch_size)
        outs = [ins[p] for p in op.mutates if p < len(ins)] if op.kind == "update" else [node]
        instructions.append(Instruction(op.kernel, ins, outs, attrs, node))
        if node in guard:
            instructions.append(Instruction("check_finite", [node], [], {"what": node}, node))
    inputs = [n for n, d in g.nodes(data=True) if d["op"] == "input"]
    return Program(buffers, instructions, inputs, list(outputs), batch_size, report)
