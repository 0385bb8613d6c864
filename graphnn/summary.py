"""model.summary(): one row per layer, parameter and FLOP counts, the memory plan.

Rows come from the builder's layer records (a graph made in networkx gets one
row per op); ``expand_nested=True`` adds an indented row for each layer inside a
block (an inception's convolutions, a sequential's layers). A parameter read by
several layers is counted once, in the first row that reads it, and marked
"shared" in the others. FLOPs are per sample (forward pass, batch 1).

For a compiled model three more columns say where each layer's memory goes in a
training step at ``batch_size``: activations kept for the backward pass (arena
buffers written going forward and read going backward), its weights, and its
optimizer state (Adam's moments, momentum, ...).

>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 4))
>>> m = Model(g, inputs=x, outputs=g.dense(x, 3, name="fc"))
>>> print(m.summary(memory=False).splitlines()[4])
fc (dense)    (N, 3)        15       yes        27     x
"""
from __future__ import annotations

from math import prod

from .compiler.ir import op_attrs, operands
from .compiler.ops import OPS, concrete, fmt_shape
from .viz_program import instruction_role


class Summary(str):
    """The summary text; shown as the table itself at a prompt or in a notebook.

    >>> s = Summary("a | b")
    >>> s, isinstance(s, str), s.upper()
    (a | b, True, 'A | B')
    """

    def __repr__(self) -> str:
        return str(self)


def _members(g, name):
    return {n for n, d in g.nodes(data=True)
            if d.get("group") == name or str(d.get("group", "")).startswith(name + "/")}


def _rows(model, expand_nested=False):
    """[(name, type, output node, nodes of the layer, connected-to names, depth)]."""
    g, graph = model._checked, model.graph
    if not graph.layers:
        return [(n, d["op"], n, {n}, operands(g, n), 0) for n, d in g.nodes(data=True) if d["op"] != "param"]
    nested = getattr(graph, "nested_layers", [])
    rows = []
    for rec in graph.layers:
        if rec["name"] not in g and rec["output"] not in g:
            continue
        rows.append((rec["name"], rec["type"], rec["output"], _members(g, rec["name"]) | {rec["output"]},
                     rec.get("inputs", []), 0))
        if expand_nested:
            for sub in nested:
                if sub["name"].startswith(rec["name"] + "/") and sub["output"] in g:
                    depth = sub["name"].count("/")
                    rows.append((sub["name"].split("/", 1)[1], sub["type"], sub["output"],
                                 _members(g, sub["name"]) | {sub["output"]}, [], depth))
    return rows


def _flops(g, nodes) -> int:
    total = 0
    for n in nodes:
        op = OPS[g.nodes[n]["op"]]
        if op.kind == "source":
            continue
        ins = [concrete(g.nodes[i]["shape"], 1) for i in operands(g, n)]
        total += int(op.flops(ins, concrete(g.nodes[n]["shape"], 1), op_attrs(g, n)))
    return total


def fmt_bytes(n: int) -> str:
    """Bytes for people: 0, 512 B, 12.5 KiB, 3.1 MiB.

    >>> fmt_bytes(0), fmt_bytes(512), fmt_bytes(12800), fmt_bytes(3 * 2**20)
    ('0', '512 B', '12.5 KiB', '3.0 MiB')
    """
    if n == 0:
        return "0"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def layer_memory(program) -> dict:
    """{buffer name: (what, bytes, node, writer)} for a training Program. ``what`` is
    "kept" for arena buffers that a forward instruction writes and a backward one
    reads, "weights" for parameters, "optimizer" for the other state an update
    writes. ``node`` is the graph node the buffer is charged to: the writer when its
    own gradient reads it (a relu's output), else the first backward reader (a
    convolution's im2col columns, named after the convolution's input).

    A dense layer of 3 -> 2 with a relu, trained with Adam at batch 4: W is
    3 x 2 float32 (24 B), b 8 B, each with Adam's two moments and step count;
    the relu's output (4 x 2 x 4 B) is kept for the backward pass:

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, x, g.dense(x, 2, activation="relu", name="fc"))
    >>> m.compile(loss="mse", optimizer="adam")
    >>> for name, row in sorted(layer_memory(m.program("train", 4)).items()): print(name, row)
    fc/W ('weights', 24, 'fc/W', 'fc/W')
    fc/W/adam_m ('optimizer', 24, 'fc/W', 'fc/W')
    fc/W/adam_t ('optimizer', 8, 'fc/W', 'fc/W')
    fc/W/adam_v ('optimizer', 24, 'fc/W', 'fc/W')
    fc/b ('weights', 8, 'fc/b', 'fc/b')
    fc/b/adam_m ('optimizer', 8, 'fc/b', 'fc/b')
    fc/b/adam_t ('optimizer', 8, 'fc/b', 'fc/b')
    fc/b/adam_v ('optimizer', 8, 'fc/b', 'fc/b')
    fc/relu ('kept', 32, 'fc/relu', 'fc/relu')
    """
    root = {n: (b.view_of or n) for n, b in program.buffers.items()}
    writer, readers = {}, {}
    for ins in program.instructions:
        role = instruction_role(ins)
        for o in ins.outputs:
            writer.setdefault(root[o], (role, ins.node))
        if role == "backward":
            for i in ins.inputs:
                readers.setdefault(root[i], []).append(ins.node)
    found = {}
    for ins in program.instructions:
        if ins.kernel.endswith("_update"):
            param, *state = [o for o in ins.outputs if program.buffers[o].offset is None]
            found[param] = ("weights", program.buffers[param].nbytes, param, param)
            for s in state:
                found[s] = ("optimizer", program.buffers[s].nbytes, param, param)
    for name, b in program.buffers.items():
        role, node = writer.get(name, (None, None))
        if b.offset is not None and not b.view_of and role == "forward" and name in readers:
            mine = [r for r in readers[name] if r.startswith(node + "/")]     # its own gradient
            found[name] = ("kept", b.nbytes, node if mine else readers[name][0], node)
    return found


def _memory_by_layer(program, names):
    """{row name: {kept, weights, optimizer}}: a buffer counts in every row whose
    name is a prefix of the node it is charged to (a block and its nested layer),
    or of its writer when that node is in no row (the loss reads the logits)."""
    totals = {n: {"kept": 0, "weights": 0, "optimizer": 0} for n in names}
    for what, size, node, writer in layer_memory(program).values():
        rows = [n for n in names if node == n or node.startswith(n + "/")] or \
            [n for n in names if writer == n or writer.startswith(n + "/")]
        for n in rows:
            totals[n][what] += size
    return totals


def summarize(model, batch_size: int = 32, memory: bool = True, expand_nested: bool = False) -> Summary:
    """The table of ``Model.summary`` (which checks the arguments first). The
    layer above, per layer: 32 B kept, 24 + 8 B of weights, 56 + 24 B of Adam state:

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, x, g.dense(x, 2, activation="relu", name="fc"))
    >>> m.compile(loss="mse", optimizer="adam")
    >>> for line in summarize(m, batch_size=4).splitlines()[:6]: print(line.rstrip())
    ======================================================================================================
    Layer (type)  Output shape  Param #  Trainable  FLOPs  Kept for bwd  Weights  Opt. state  Connected to
    ======================================================================================================
    x (input)     (N, 3)        0                   0      0             0        0
    fc (dense)    (N, 2)        8        yes        16     32 B          32 B     80 B        x
    ======================================================================================================
    """
    g = model._checked
    counted: set[str] = set()
    rows = _rows(model, expand_nested)
    train = model.program("train", batch_size) if memory and model._loss is not None else None
    full, top = [], None
    for name, _, _, _, _, depth in rows:             # nested rows carry their block's prefix
        top = name if depth == 0 else top
        full.append(name if depth == 0 else f"{top}/{name}")
    per_layer = _memory_by_layer(train, full) if train is not None else None
    table = []
    for (name, kind, out, nodes, inputs, depth), long_name in zip(rows, full):
        reads = {p for n in nodes for p in ([n] if g.nodes[n]["op"] == "param" else operands(g, n))
                 if g.nodes[p]["op"] == "param"}
        own = reads - counted if not depth else set()
        counted |= own
        shown = reads if depth else own
        params = sum(prod(g.nodes[p]["shape"]) for p in shown)
        shared = " (shared)" if not depth and reads - own else ""
        flags = {bool(g.nodes[p].get("trainable", True)) for p in reads}
        trainable = "" if not flags else "yes" if flags == {True} else "no" if flags == {False} else "partly"
        row = ["  " * depth + f"{name} ({kind})", fmt_shape(g.nodes[out]["shape"]),
               f"{params:,}{shared}", trainable, f"{_flops(g, nodes):,}"]
        if per_layer is not None:
            m = per_layer.get(long_name, {"kept": 0, "weights": 0, "optimizer": 0})
            row += [fmt_bytes(m["kept"]), fmt_bytes(m["weights"]), fmt_bytes(m["optimizer"])]
        table.append((*row, ", ".join(inputs)))
    head = ["Layer (type)", "Output shape", "Param #", "Trainable", "FLOPs"]
    if per_layer is not None:
        head += ["Kept for bwd", "Weights", "Opt. state"]
    head = (*head, "Connected to")
    cols = len(head) - 1
    widths = [max(len(r[i]) for r in [head, *table]) + 2 for i in range(cols)]
    line = lambda r: "".join(c.ljust(w) for c, w in zip(r[:cols], widths)) + r[cols]
    rule = "=" * (sum(widths) + max(len(r[cols]) for r in [head, *table]))
    text = [rule, line(head), "=" * len(rule), *[line(r) for r in table], rule]
    params = [n for n, d in g.nodes(data=True) if d["op"] == "param"]
    trainable = sum(prod(g.nodes[p]["shape"]) for p in params if g.nodes[p].get("trainable", True))
    frozen = sum(prod(g.nodes[p]["shape"]) for p in params) - trainable
    text.append(f"Total params: {trainable + frozen:,} (trainable {trainable:,}, "
                f"non-trainable {frozen:,})")
    if memory:
        plans = [("inference", model.program("predict", batch_size))]
        if train is not None:
            plans.append(("training step", train))
        for label, program in plans:
            m = program.memory
            text.append(f"Memory, {label} at batch {batch_size}: arena {m.planned_bytes:,} B "
                        f"(naive {m.naive_bytes:,} B, lower bound {m.lower_bound_bytes:,} B)")
        if train is not None:
            text.append(f"Per layer (training step at batch {batch_size}): 'Kept for bwd' is what "
                        "the backward pass reads of the forward pass's activations")
    return Summary("\n".join(text))

