"""The training and compiled views of plot_model (see graphnn.viz).

Both collect *items* (a node of the training graph, an instruction of the
Program), fold them (graphnn.viz_fold: repeats, steps, depth), cut them down to
one layer with ``focus``, and draw what is left.

>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, inputs=x, outputs=g.dense(x, 2, name="fc"))
>>> m.compile(loss="mse", optimizer="sgd")
>>> import graphviz; dot = graphviz.Digraph()
>>> training_view(m, dot, depth=1)      # x, target, loss, its gradients, lr; fc: 4 roles
10
"""
from __future__ import annotations

from .compiler.ops import OPS, fmt_shape
from .viz_fold import Folding, count_label, fold, layer_of

COLORS = {"forward": "white", "backward": "#dbe9f6", "update": "#fde0c5", "source": "#eeeeee",
          "allreduce": "#d8f0d2", "context": "#f6f6f6"}


class Ids:
    """Short graphviz ids (n0, n1, ...) for any hashable names.

    >>> ids = Ids(); ids("fc/W"), ids(("in", "x")), ids("fc/W")
    ('n0', 'n1', 'n0')
    """

    def __init__(self):
        self.ids = {}

    def __call__(self, name):
        return self.ids.setdefault(name, f"n{len(self.ids)}")


def in_focus(name: str, focus: str | None) -> bool:
    """Whether node ``name`` lies in layer or block ``focus`` (everything does without one).

    >>> in_focus("enc/fc/W", "enc"), in_focus("encoder/W", "enc"), in_focus("x", None)
    (True, False, True)
    """
    return focus is None or name == focus or name.startswith(focus + "/")


def check_focus(names, focus):
    """A focus that names no layer is an error that lists the layers there are.

    >>> check_focus(["x", "fc/matmul"], "fc")
    >>> check_focus(["x", "fc/matmul", "loss"], "conv")
    Traceback (most recent call last):
    ...
    ValueError: focus='conv' names no layer or block of this model; layers: fc, loss, x
    """
    if focus is not None and not any(in_focus(n, focus) for n in names):
        layers = sorted({layer_of(n) for n in names})
        raise ValueError(f"focus={focus!r} names no layer or block of this model; layers: "
                         f"{', '.join(layers[:30])}{' ...' if len(layers) > 30 else ''}")


def focused(items: dict, edges: list, focus: str | None) -> dict:
    """``items`` cut down to those in ``focus``, plus one grey box per outside layer
    that sends or receives a value across the cut.

    >>> items = {1: (("fc", "matmul"), {"node": "fc/matmul"}), 2: (("x", ""), {"node": "x"}),
    ...          3: (("out", ""), {"node": "out/relu"})}
    >>> focused(items, [(2, 1, {})], "fc")        # x feeds fc: kept, as context; out is dropped
    {1: (('fc', 'matmul'), {'node': 'fc/matmul'}), 2: (('context', 'x', ''), {'node': 'x', 'role': 'context'})}
    """
    if focus is None:
        return items
    inside = {k: v for k, v in items.items() if in_focus(v[1]["node"], focus)}
    core = set(inside)
    for u, v, _ in edges:
        for here, there in ((u, v), (v, u)):
            if here in core and there in items and there not in inside:
                layer = layer_of(items[there][1]["node"])
                inside[there] = (("context", layer, ""), {**items[there][1], "role": "context"})
    return inside


def _draw(dot, nodes, edges, fold_, label, ids):
    """Nodes (clustered by folded layer), then edges; returns the number of boxes."""
    clusters: dict = {}
    for key in nodes:
        clusters.setdefault(fold_.cluster_label(key[0]) if key[0] != "context" else None, []).append(key)
    for title, keys in clusters.items():
        if title is None:
            for key in keys:
                label(dot, key, nodes[key], clustered=False)
            continue
        with dot.subgraph(name=f"cluster_{ids(title)}") as sub:
            sub.attr(label=title, style="rounded,dashed", color="#7a7a7a", fontsize="11")
            for key in keys:
                label(sub, key, nodes[key], clustered=True)
    for key, loop in fold_.loops(nodes):
        dot.edge(ids(key), ids(key), style="dashed", label=loop, fontsize="8")
    for (ku, kv), infos in edges.items():
        src, dst = ids(ku), ids(kv)
        attrs = {"fontsize": "8"}
        if all(i.get("next_step") for i in infos):
            attrs.update(style="dashed", label="next step")
        elif len(infos) == 1 and infos[0].get("label"):
            attrs["label"] = infos[0]["label"]
        if all(i.get("loose") for i in infos):
            attrs["constraint"] = "false"
        dot.edge(src, dst, **attrs)
    return len(nodes)


def _title(key, infos, clustered, depth):
    layer, local = key[0], key[1]
    if key[0] == "context":
        return local or key[1]
    name = (local or layer) if clustered else (f"{layer}/{local}" if local else layer)
    if depth is not None and len(infos) > 1:
        return f"{name}: {key[-1]}"
    return name


# ------------------------------------------------------------------ training view
def training_items(model, show_shapes=True, show_params=True, fold_=None, depth=None):
    """(items, edges) of the training graph: for each node, its folding key
    (layer, name in the layer, role) and what its box shows; an edge per operand.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, x, g.dense(x, 2, name="fc"))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> items, edges = training_items(m)
    >>> [(n, key, info["op"]) for n, (key, info) in items.items() if n.startswith("fc/")][:4]
    [('fc/W', ('fc', 'W', 'source'), 'param'), ('fc/matmul', ('fc', 'matmul', 'forward'), 'matmul'), ('fc/b', ('fc', 'b', 'source'), 'param'), ('fc/bias_add', ('fc', 'bias_add', 'forward'), 'bias_add')]
    >>> sorted({info["role"] for _, info in items.values()}), len(items), len(edges)
    (['backward', 'forward', 'source', 'update'], 14, 18)
    """
    if model is None or model._loss is None:
        raise ValueError("the training view needs a compiled Model (model.compile(...))")
    if not model._built:
        model.program("train", 1)
    g = next(iter(model._built.values()))["train"]
    fold_ = fold_ or Folding(model.graph)
    items = {}
    for n, d in g.nodes(data=True):
        op = OPS[d["op"]]
        role = "source" if op.kind == "source" else d.get("role", "forward")
        if op.kind == "source" and not show_params and d["op"] != "input":
            continue
        shape = fmt_shape(d.get("shape")) if show_shapes and op.kind != "update" else ""
        items[n] = (fold_.key(n, depth) + (role,),
                    {"node": n, "op": d["op"], "shape": shape, "role": role, "step": fold_.step(n)})
    # In a view by layers (depth), the gradient flowing from backward box to backward
    # box does not rank the drawing: each layer's backward box then sits beside its
    # forward box, and no edge spans the whole network (dot's time grows with the
    # ranks that edges span: minutes for a 60-layer MLP drawn the usual way).
    loose = depth is not None
    edges = [(u, v, {"next_step": _next_step(items, u, v),
                     "loose": loose and items[u][1]["role"] == items[v][1]["role"] == "backward"})
             for u, v in g.edges() if u in items and v in items]
    return items, edges


def _next_step(items, u, v):
    su, sv = items[u][1]["step"], items[v][1]["step"]
    return su is not None and sv is not None and su != sv


def training_view(model, dot, show_shapes=True, show_params=True, depth=None, focus=None,
                  expand_repeats=False) -> int:
    """Draw the training graph; returns the number of boxes drawn: a box per
    node, per layer and role with ``depth=1``, and only one layer's (with grey
    boxes for its neighbours) with ``focus``.

    >>> import graphviz
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, x, g.dense(x, 2, name="fc"))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> training_view(m, graphviz.Digraph()), training_view(m, graphviz.Digraph(), focus="fc")
    (14, 11)
    >>> dot = graphviz.Digraph(); training_view(m, dot, depth=1)
    10
    >>> "fillcolor=\\"#fde0c5\\"" in dot.source                 # the update boxes' colour
    True
    """
    fold_ = Folding(model.graph, expand_repeats or focus is not None)
    items, edges = training_items(model, show_shapes, show_params, fold_, depth)
    check_focus([i[1]["node"] for i in items.values()], focus)
    nodes, merged = fold(focused(items, edges, focus), edges)
    merged = {k: v for k, v in merged.items() if not k[0][0] == k[1][0] == "context"}
    ids = Ids()

    def label(where, key, infos, clustered):
        first = infos[0]
        role = first["role"]
        if key[0] == "context":
            where.node(ids(key), f"{key[1]}\n(outside)", shape="box", style="rounded,dashed,filled",
                       fillcolor=COLORS["context"], fontsize="10", color="#999999")
            return
        if depth is not None and len(infos) > 1:
            text = f"{_title(key, infos, clustered, depth)}\n{len(infos)} ops"
        else:
            shape = first["shape"] if all(i["shape"] == first["shape"] for i in infos) else ""
            name = _title(key, infos, clustered, depth) if len(infos) > 1 or clustered else first["node"]
            text = "\n".join(t for t in (name, first["op"] + count_label(len(infos)), shape) if t)
        where.node(ids(key), text, shape="box", style="rounded,filled",
                   fillcolor=COLORS.get(role, "white"), fontsize="10")

    return _draw(dot, nodes, merged, fold_, label, ids)


# ------------------------------------------------------------------ compiled view
def instruction_role(ins) -> str:
    """forward, backward, update or allreduce: what an instruction of a training Program does.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, x, g.dense(x, 2, name="fc"))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> p = m.program("train", 2)
    >>> [(i.kernel, instruction_role(i)) for i in p.instructions][2:6]
    [('check_finite', 'forward'), ('mse_grad', 'backward'), ('bias_grad', 'backward'), ('sgd_update', 'update')]
    """
    if ins.kernel.endswith("_update"):
        return "update"
    if ins.kernel in ("allreduce_bucket", "bucket_slice"):
        return "allreduce"
    if "/grad_" in ins.node or ins.node.endswith("grad_seed"):
        return "backward"
    return "forward"


def compiled_items(program, fold_, depth=None):
    """(items, edges): instructions and fed inputs; an edge per arena buffer read,
    labelled with the buffer, its offset and size.

    >>> from graphnn.viz_fold import Folding
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, x, g.dense(x, 2, name="fc"))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> items, edges = compiled_items(m.program("train", 2), Folding(m.graph))
    >>> [(k, info["kernel"]) for k, (_, info) in items.items()][:4]
    [(('in', 'x'), 'input'), (('in', 'target'), 'input'), (0, 'fused[matmul+bias_add]'), (1, 'mse')]
    >>> [(u, v, info["label"].replace("\\n", " ")) for u, v, info in edges][:2]    # x: 2 x 4 float32
    [(('in', 'x'), 0, 'x @64, 32 B'), (0, 1, 'fc/bias_add @128, 16 B')]
    """
    items, made, edges = {}, {}, []
    for name in program.inputs:
        items[("in", name)] = (fold_.key(name, depth) + ("source", "input"),
                               {"node": name, "role": "source", "kernel": "input", "index": None, "step": None})
        made[name] = ("in", name)
    for i, ins in enumerate(program.instructions):
        role = instruction_role(ins)
        kernel = "fused[" + "+".join(p["kernel"] for p in [ins.attrs["anchor"]] + ins.attrs["epilogue"]) + "]" \
            if ins.kernel == "fused" else ins.kernel
        items[i] = (fold_.key(ins.node, depth) + (role, kernel if depth is None else ""),
                    {"node": ins.node, "role": role, "kernel": kernel, "index": i, "ins": ins,
                     "step": fold_.step(ins.node)})
        for name in ins.inputs:
            b = program.buffers[name]
            src = made.get(name, made.get(b.view_of))
            if src is None or b.offset is None:
                continue
            edges.append((src, i, {"label": f"{name}\n@{b.offset}, {b.nbytes:,} B",
                                   "next_step": False, "buffer": name}))
        for name in ins.outputs:
            if program.buffers[name].offset is not None:
                made[name] = i
        for name, b in program.buffers.items():      # views follow their source
            if b.view_of in made and name not in made:
                made[name] = made[b.view_of]
    for u, v, info in edges:
        info["next_step"] = _next_step(items, u, v)
    return items, edges


def compiled_view(model, dot, batch_size=32, show_params=True, depth=None, focus=None,
                  expand_repeats=False, distributed=False) -> int:
    """Draw the Program's instructions in order; returns the number of boxes drawn
    (the training program once compiled, else the prediction one).

    >>> import graphviz
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, x, g.dense(x, 2, name="fc"))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> dot = graphviz.Digraph(); compiled_view(m, dot, batch_size=2)   # 2 inputs, 8 instructions
    10
    >>> [line.strip() for line in dot.source.splitlines() if "arena" in line]
    ['label="compiled program, batch 2: arena 448 B (lower bound 448 B, naive 640 B)" labelloc=t']
    """
    if model is None:
        raise ValueError("the compiled view needs a Model")
    if distributed:
        from .distributed import training_program
        program = training_program(model, batch_size)
    else:
        program = model.program("train" if model._loss is not None else "predict", batch_size)
    fold_ = Folding(model.graph, expand_repeats or focus is not None)
    m = program.memory
    dot.attr(label=f"compiled program, batch {program.batch_size}: arena {m.planned_bytes:,} B "
                   f"(lower bound {m.lower_bound_bytes:,} B, naive {m.naive_bytes:,} B)", labelloc="t")
    items, edges = compiled_items(program, fold_, depth)
    check_focus([i[1]["node"] for i in items.values()], focus)
    nodes, merged = fold(focused(items, edges, focus), edges)
    merged = {k: v for k, v in merged.items() if not k[0][0] == k[1][0] == "context"}
    ids, ends = Ids(), {}

    def label(where, key, infos, clustered):
        first = infos[0]
        node = ids(key)
        ends[key] = (node, node)
        if key[0] == "context":
            where.node(node, f"{key[1]}\n(outside)", shape="box", style="rounded,dashed,filled",
                       fillcolor=COLORS["context"], fontsize="10", color="#999999")
            return
        if first["kernel"] == "input":
            where.node(node, f"{first['node']}\ninput", shape="box", style="filled", fillcolor=COLORS["source"])
            return
        ins, n = first["ins"], len(infos)
        if n == 1:
            head, name = f"{first['index']}", first["node"]
        else:
            head = f"{first['index']}..{infos[-1]['index']}"
            name = _title(key, infos, clustered, None)
        reads = ""
        if show_params and n == 1:
            # Weights and optimizer state are named in the label, not drawn: as nodes
            # they would pull long edges across the whole program.
            kept = [b for b in ins.inputs + ins.outputs if program.buffers[b].offset is None
                    and program.buffers[b].value is None]
            if kept:
                reads = "\n+ " + ", ".join(dict.fromkeys(b.split("/")[-1] if b.count("/") < 2 else b
                                                         for b in kept))
        if depth is not None and n > 1:
            where.node(node, f"{_title(key, infos, clustered, depth)}\n{n} instructions ({head})",
                       shape="box", style="rounded,filled", fillcolor=COLORS[first["role"]], fontsize="10")
        elif ins.kernel == "fused":
            parts = [ins.attrs["anchor"]] + ins.attrs["epilogue"]
            with where.subgraph(name=f"cluster_{node}") as sub:
                sub.attr(label=f"{head}: fused {name}{count_label(n)}{reads}", style="rounded,filled",
                         fillcolor=COLORS[first["role"]], fontsize="10", color="black")
                for k, p in enumerate(parts):
                    sub.node(f"{node}_{k}", p["kernel"], shape="box", style="rounded,filled", fillcolor="white")
                    if k:
                        sub.edge(f"{node}_{k - 1}", f"{node}_{k}", style="dashed", label="in place",
                                 fontsize="8")
            ends[key] = (f"{node}_0", f"{node}_{len(parts) - 1}")
        else:
            where.node(node, f"{head}: {ins.kernel}{count_label(n)}\n{name}{reads}", shape="box",
                       style="rounded,filled", fillcolor=COLORS[first["role"]], fontsize="10")

    # nodes first (they fill ``ends``), then edges between fused groups' first and last parts
    count = _draw(dot, nodes, {}, fold_, label, ids)
    _draw_edges(dot, merged, ends)
    return count


def _draw_edges(dot, merged, ends):
    for (ku, kv), infos in merged.items():
        attrs = {"fontsize": "8"}
        if all(i.get("next_step") for i in infos):
            attrs.update(style="dashed", label="next step")
        elif len(infos) == 1:
            attrs["label"] = infos[0]["label"]
        else:
            attrs["label"] = f"{len(infos)} buffers"
        dot.edge(ends[ku][1], ends[kv][0], **attrs)
