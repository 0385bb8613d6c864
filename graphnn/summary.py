"""model.summary(): one row per layer, parameter and FLOP counts, the memory plan.

Rows come from the builder's layer records (a graph made in networkx gets one
row per op). A parameter read by several layers is counted once, in the first
row that reads it, and marked "shared" in the others. FLOPs are per sample
(forward pass, batch 1).

>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 4))
>>> m = Model(g, inputs=x, outputs=g.dense(x, 3, name="fc"))
>>> print(m.summary(memory=False).splitlines()[4])
fc (dense)    (N, 3)        15       27     x
"""
from __future__ import annotations

from math import prod

from .compiler.ir import op_attrs, operands
from .compiler.ops import OPS, concrete, fmt_shape


class Summary(str):
    """The summary text; shown as the table itself at a prompt or in a notebook."""

    def __repr__(self) -> str:
        return str(self)


def _rows(model):
    """[(name, type, output node, nodes of the layer, connected-to names)]."""
    g, graph = model._checked, model.graph
    if graph.layers:
        rows = []
        for rec in graph.layers:
            if rec["name"] not in g and rec["output"] not in g:
                continue
            nodes = {n for n, d in g.nodes(data=True)
                     if d.get("group") == rec["name"] or str(d.get("group", "")).startswith(rec["name"] + "/")}
            nodes.add(rec["output"])
            rows.append((rec["name"], rec["type"], rec["output"], nodes, rec.get("inputs", [])))
        return rows
    return [(n, d["op"], n, {n}, operands(g, n)) for n, d in g.nodes(data=True) if d["op"] != "param"]


def _flops(g, nodes) -> int:
    total = 0
    for n in nodes:
        op = OPS[g.nodes[n]["op"]]
        if op.kind == "source":
            continue
        ins = [concrete(g.nodes[i]["shape"], 1) for i in operands(g, n)]
        total += int(op.flops(ins, concrete(g.nodes[n]["shape"], 1), op_attrs(g, n)))
    return total


def summarize(model, batch_size: int = 32, memory: bool = True) -> Summary:
    g = model._checked
    counted: set[str] = set()
    table = []
    for name, kind, out, nodes, inputs in _rows(model):
        reads = {p for n in nodes for p in ([n] if g.nodes[n]["op"] == "param" else operands(g, n))
                 if g.nodes[p]["op"] == "param"}
        own = reads - counted
        counted |= own
        params = sum(prod(g.nodes[p]["shape"]) for p in own)
        shared = " (shared)" if reads - own else ""
        table.append((f"{name} ({kind})", fmt_shape(g.nodes[out]["shape"]),
                      f"{params:,}{shared}", f"{_flops(g, nodes):,}", ", ".join(inputs)))
    head = ("Layer (type)", "Output shape", "Param #", "FLOPs", "Connected to")
    widths = [max(len(r[i]) for r in [head, *table]) + 2 for i in range(4)]
    line = lambda r: "".join(c.ljust(w) for c, w in zip(r[:4], widths)) + r[4]
    rule = "=" * (sum(widths) + max(len(r[4]) for r in [head, *table]))
    text = [rule, line(head), "=" * len(rule), *[line(r) for r in table], rule]
    params = [n for n, d in g.nodes(data=True) if d["op"] == "param"]
    trainable = sum(prod(g.nodes[p]["shape"]) for p in params if g.nodes[p].get("trainable", True))
    frozen = sum(prod(g.nodes[p]["shape"]) for p in params) - trainable
    text.append(f"Total params: {trainable + frozen:,} (trainable {trainable:,}, "
                f"non-trainable {frozen:,})")
    if memory:
        plans = [("inference", model.program("predict", batch_size))]
        if model._loss is not None:
            plans.append(("training step", model.program("train", batch_size)))
        for label, program in plans:
            m = program.memory
            text.append(f"Memory, {label} at batch {batch_size}: arena {m.planned_bytes:,} B "
                        f"(naive {m.naive_bytes:,} B, lower bound {m.lower_bound_bytes:,} B)")
    return Summary("\n".join(text))
