"""plot_model: a graph, its training graph, or its compiled program, as graphviz.

Three views of one model:

- ``graph``: the declared layers (a block such as a dense or conv layer is one
  node, or with ``expand_nested`` a cluster of its ops); shapes show the batch as N;
- ``training``: every node of the training graph, forward, backward (blue) and
  parameter updates (orange);
- ``compiled``: the Program's instructions in order, fused kernels as groups,
  each edge a buffer with its arena offset and size.

DOT text always works; SVG, PNG and PDF need graphviz's ``dot`` program. Without
it the .dot file is written and one line says how to get ``dot``.

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("x", (None, 4)); _ = g.dense(x, 2, name="fc")
>>> "fc (dense)" in plot_model(g).source
True
"""
from __future__ import annotations

import os
import sys
from math import prod

import graphviz

from .compiler.ir import operands
from .compiler.ops import OPS, fmt_shape

VIEWS = ("graph", "training", "compiled", "distributed")   # distributed: with the all-reduce
COLORS = {"forward": "white", "backward": "#dbe9f6", "update": "#fde0c5", "source": "#eeeeee",
          "allreduce": "#d8f0d2"}
INSTALL_HINT = ("graphviz's `dot` program is not installed, so only {dot} was written; "
                "install graphviz (apt-get install graphviz, brew install graphviz, or "
                "conda install graphviz) to render {fmt}")


def _label(*lines):
    return "\n".join(line for line in lines if line)


class _Ids:
    """Short graphviz ids (n0, n1, ...) for any names."""

    def __init__(self):
        self.ids = {}

    def __call__(self, name):
        return self.ids.setdefault(name, f"n{len(self.ids)}")


def _graph_and_model(obj):
    # Views take a Model or a Graph by what it holds, importing neither: the
    # builder and the Model both show themselves through this module.
    if hasattr(obj, "graph") and hasattr(obj, "program") and hasattr(obj.graph, "nx"):
        return obj.graph, obj
    if hasattr(obj, "nx") and hasattr(obj, "layers"):
        return obj, None
    raise TypeError(f"plot_model takes a Model or a Graph, got {type(obj).__name__}")


def _layer_view(graph, dot, show_shapes, show_dtype, show_params, expand_nested):
    g, ids = graph.nx, _Ids()
    records = graph.layers or [{"type": d["op"], "name": n, "output": n, "inputs": operands(g, n)}
                               for n, d in g.nodes(data=True) if d["op"] != "param"]
    node_of = {}
    for rec in records:
        out = g.nodes[rec["output"]]
        members = [n for n, d in g.nodes(data=True)
                   if d.get("group") == rec["name"] or str(d.get("group", "")).startswith(rec["name"] + "/")]
        params = [n for n in members if g.nodes[n]["op"] == "param"]
        count = sum(prod(g.nodes[p]["shape"]) for p in params)
        shape = fmt_shape(out.get("shape")) if show_shapes else ""
        dtype = out.get("dtype", "") if show_dtype else ""
        if expand_nested and len(members) > 1:
            with dot.subgraph(name=f"cluster_{ids(rec['name'])}") as sub:
                sub.attr(label=f"{rec['name']} ({rec['type']})", style="rounded", color="#888888")
                for n in members:
                    d = g.nodes[n]
                    if d["op"] == "param":
                        if show_params:
                            sub.node(ids(n), _label(n.split("/")[-1], fmt_shape(d["shape"])),
                                     shape="box", style="filled", fillcolor=COLORS["source"], fontsize="9")
                        continue
                    sub.node(ids(n), _label(f"{n.split('/')[-1]} ({d['op']})",
                                            fmt_shape(d.get("shape")) if show_shapes else ""))
                for n in members:
                    for src in operands(g, n):
                        if src in members and (show_params or g.nodes[src]["op"] != "param"):
                            sub.edge(ids(src), ids(n))
            node_of[rec["name"]] = ids(rec["output"])
            first = [n for n in members if g.nodes[n]["op"] != "param" and
                     any(s not in members for s in operands(g, n))]
            node_of[("entry", rec["name"])] = [ids(n) for n in first] or [ids(rec["output"])]
        else:
            label = _label(f"{rec['name']} ({rec['type']})", shape, dtype,
                           f"params {count:,}" if show_params and count else "")
            kind = "source" if rec["type"] == "input" else "forward"
            dot.node(ids(rec["name"]), label, shape="box", style="rounded,filled",
                     fillcolor=COLORS[kind])
            node_of[rec["name"]] = ids(rec["name"])
            node_of[("entry", rec["name"])] = [ids(rec["name"])]
    outputs = {rec["name"]: g.nodes[rec["output"]].get("shape") for rec in records}
    for rec in records:
        for src in rec.get("inputs", []):
            if src in node_of:
                for entry in node_of[("entry", rec["name"])]:
                    dot.edge(node_of[src], entry,
                             label=fmt_shape(outputs.get(src)) if show_shapes else "", fontsize="9")


def _training_view(model, dot, show_shapes, show_params):
    if model is None or model._loss is None:
        raise ValueError("the training view needs a compiled Model (model.compile(...))")
    if not model._built:
        model.program("train", 1)
    g = next(iter(model._built.values()))["train"]
    ids = _Ids()
    for n, d in g.nodes(data=True):
        op = OPS[d["op"]]
        role = "source" if op.kind == "source" else d.get("role", "forward")
        if op.kind == "source" and not show_params and d["op"] != "input":
            continue
        dot.node(ids(n), _label(n, d["op"], fmt_shape(d.get("shape")) if show_shapes and op.kind != "update" else ""),
                 shape="box", style="rounded,filled", fillcolor=COLORS.get(role, "white"), fontsize="10")
    for u, v in g.edges():
        if u in ids.ids and v in ids.ids:
            dot.edge(ids(u), ids(v))


def _compiled_view(model, dot, batch_size, show_params, distributed=False):
    if model is None:
        raise ValueError("the compiled view needs a Model")
    if distributed:
        from .distributed import training_program
        program = training_program(model, batch_size)
    else:
        program = model.program("train" if model._loss is not None else "predict", batch_size)
    ids, made = _Ids(), {}
    dot.attr(label=f"compiled program, batch {batch_size}: arena {program.memory.planned_bytes:,} B "
                   f"(lower bound {program.memory.lower_bound_bytes:,} B, naive "
                   f"{program.memory.naive_bytes:,} B)", labelloc="t")
    for name in program.inputs:
        dot.node(ids(name), _label(name, "input"), shape="box", style="filled", fillcolor=COLORS["source"])
        made[name] = ids(name)
    for i, ins in enumerate(program.instructions):
        role = ("update" if ins.kernel.endswith("_update") else
                "allreduce" if ins.kernel in ("allreduce_bucket", "bucket_slice") else
                "backward" if "/grad_" in ins.node or ins.node.endswith("grad_seed") else "forward")
        # Weights and optimizer state are named in the label, not drawn: as nodes
        # they would pull long edges across the whole program.
        kept = [n for n in ins.inputs + ins.outputs if program.buffers[n].offset is None
                and program.buffers[n].value is None]
        reads = f"\n+ {', '.join(dict.fromkeys(n.split('/')[-1] if n.count('/') < 2 else n for n in kept))}" \
            if show_params and kept else ""
        if ins.kernel == "fused":
            parts = [ins.attrs["anchor"]] + ins.attrs["epilogue"]
            with dot.subgraph(name=f"cluster_i{i}") as sub:
                sub.attr(label=f"{i}: fused {ins.node}{reads}", style="rounded,filled",
                         fillcolor=COLORS[role], fontsize="10")
                for k, p in enumerate(parts):
                    sub.node(f"i{i}_{k}", p["kernel"], shape="box", style="rounded,filled", fillcolor="white")
                    if k:
                        sub.edge(f"i{i}_{k - 1}", f"i{i}_{k}", style="dashed", label="in place")
            entry, exit_ = f"i{i}_0", f"i{i}_{len(parts) - 1}"
        else:
            node = f"i{i}"
            dot.node(node, f"{i}: {ins.kernel}\n{ins.node}{reads}", shape="box",
                     style="rounded,filled", fillcolor=COLORS[role], fontsize="10")
            entry = exit_ = node
        for name in ins.inputs:
            b = program.buffers[name]
            src = made.get(name, made.get(b.view_of))
            if src is None or b.offset is None:
                continue
            dot.edge(src, entry, label=f"{name}\n@{b.offset}, {b.nbytes:,} B", fontsize="8")
        for name in ins.outputs:
            if program.buffers[name].offset is not None:
                made[name] = exit_
        for name, b in program.buffers.items():      # views follow their source
            if b.view_of in made and name not in made:
                made[name] = made[b.view_of]


def plot_model(model_or_graph, to_file: str | None = None, show_shapes: bool = True,
               show_dtype: bool = False, show_params: bool = True, rankdir: str = "TB",
               expand_nested: bool = False, view: str = "graph", batch_size: int = 32
               ) -> graphviz.Digraph:
    """Draw a Model or Graph with graphviz; write ``to_file`` (format from its
    suffix: .svg, .png, .pdf or .dot) when given. Returns the ``graphviz.Digraph``."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    from .checks import plot_arguments
    plot_arguments(to_file, rankdir, batch_size)
    graph, model = _graph_and_model(model_or_graph)
    dot = graphviz.Digraph("graphnn", graph_attr={"rankdir": rankdir, "fontname": "Helvetica"},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"fontname": "Helvetica"})
    if view == "graph":
        _layer_view(graph, dot, show_shapes, show_dtype, show_params, expand_nested)
    elif view == "training":
        _training_view(model, dot, show_shapes, show_params)
    else:
        _compiled_view(model, dot, batch_size, show_params, view == "distributed")
    if to_file:
        write(dot, to_file)
    return dot


def write(dot: graphviz.Digraph, to_file: str) -> str:
    """Write DOT or a rendering, by suffix; returns the path written."""
    stem, suffix = os.path.splitext(os.fspath(to_file))
    fmt = suffix.lstrip(".").lower() or "dot"
    folder = os.path.dirname(os.path.abspath(to_file))
    os.makedirs(folder, exist_ok=True)
    if fmt in ("dot", "gv"):
        with open(to_file, "w", encoding="utf-8") as f:
            f.write(dot.source)
        return os.fspath(to_file)
    try:
        return dot.render(outfile=os.fspath(to_file), format=fmt, cleanup=True)
    except graphviz.ExecutableNotFound:
        path = stem + ".dot"
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot.source)
        print(INSTALL_HINT.format(dot=path, fmt=fmt.upper()), file=sys.stderr)
        return path


def mimebundle(obj, include=None, exclude=None):
    """Jupyter display: SVG when ``dot`` is there, else the DOT text."""
    dot = plot_model(obj)
    try:
        return {"image/svg+xml": dot.pipe(format="svg").decode("utf-8")}
    except graphviz.ExecutableNotFound:
        return {"text/plain": dot.source}
