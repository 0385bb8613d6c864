"""plot_model: a graph, its training graph, or its compiled program, as graphviz.

Three views of one model:

- ``graph``: the declared layers (a block such as a dense or conv layer is one
  node, or with ``expand_nested`` a cluster of its ops), each with its activation
  (``dense + relu``); shapes show the batch as N;
- ``training``: every node of the training graph, forward, backward (blue) and
  parameter updates (orange);
- ``compiled``: the Program's instructions in order, fused kernels as groups,
  each edge a buffer with its arena offset and size;
- ``distributed``: the compiled view of the data-parallel training step, with
  the gradient all-reduce (green).

Big networks stay readable (graphnn.viz_fold): a chain of identical layers is
drawn once with "x k", the unrolled steps of an LSTM or GRU as one step in a
cluster that gives their number (``expand_repeats=True`` draws them all);
``focus="conv2"`` draws one layer or block with grey boxes for its neighbours;
``depth=1`` one box per layer and role. A view that would still have more than
``max_nodes`` boxes is drawn to a smaller depth, and one line says how to expand it.

DOT text always works; SVG, PNG and PDF need graphviz's ``dot`` program. Without
it the .dot file is written and one line says how to get ``dot``.

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("x", (None, 4)); _ = g.dense(x, 2, activation="relu", name="fc")
>>> "fc (dense + relu)" in plot_model(g).source
True
"""
from __future__ import annotations

import os
import sys
from math import prod

import graphviz

from .compiler.ir import operands
from .compiler.ops import fmt_shape
from .viz_fold import Folding, count_label, fold
from .viz_program import COLORS, Ids, compiled_view, training_view

VIEWS = ("graph", "training", "compiled", "distributed")   # distributed: with the all-reduce
MAX_NODES = 300                  # beyond this dot takes seconds and the text gets too small
INSTALL_HINT = ("graphviz's `dot` program is not installed, so only {dot} was written; "
                "install graphviz (apt-get install graphviz, brew install graphviz, or "
                "conda install graphviz) to render {fmt}")
FOLDED_HINT = ("graphnn: the {view} view would have {n:,} boxes (over max_nodes={limit}), so it "
               "is drawn to depth {depth}; for more pass focus='<layer>', depth=N or max_nodes=None")


def _label(*lines):
    return "\n".join(line for line in lines if line)


def _graph_and_model(obj):
    # Views take a Model or a Graph by what it holds, importing neither: the
    # builder and the Model both show themselves through this module.
    if hasattr(obj, "graph") and hasattr(obj, "program") and hasattr(obj.graph, "nx"):
        return obj.graph, obj
    if hasattr(obj, "nx") and hasattr(obj, "layers"):
        return obj, None
    raise TypeError(f"plot_model takes a Model or a Graph, got {type(obj).__name__}")


def _members(g, name):
    return [n for n, d in g.nodes(data=True)
            if d.get("group") == name or str(d.get("group", "")).startswith(name + "/")]


def _trainable_note(g, params):
    if not params:
        return ""
    flags = {bool(g.nodes[p].get("trainable", True)) for p in params}
    return "trainable" if flags == {True} else "frozen" if flags == {False} else "partly frozen"


def _layer_view(graph, dot, show_shapes=True, show_dtype=False, show_params=True,
                expand_nested=False, show_activations=True, show_trainable=False,
                expand_repeats=False):
    g, ids = graph.nx, Ids()
    records = graph.layers or [{"type": d["op"], "name": n, "output": n, "inputs": operands(g, n)}
                               for n, d in g.nodes(data=True) if d["op"] != "param"]
    fold_ = Folding(graph, expand_repeats)
    node_of = {}
    for rec in records:
        name = rec["name"]
        if fold_.fold_to.get(name, name) != name:        # drawn by the first of its run
            node_of[name] = node_of[fold_.fold_to[name]]
            continue
        out = g.nodes[rec["output"]]
        members = _members(g, name)
        # its own parameters and those it reads (a param record, an add of a weight)
        params = sorted({p for n in members + [rec["output"]]
                         for p in ([n] if g.nodes[n]["op"] == "param" else operands(g, n))
                         if g.nodes[p]["op"] == "param"})
        count = sum(prod(g.nodes[p]["shape"]) for p in params if p in members or p == rec["output"])
        kind = rec["type"]
        if show_activations and rec.get("activation") not in (None, "linear"):
            kind += f" + {rec['activation']}"
        if rec.get("share"):
            kind += f", shares {rec['share']}"
        repeat = count_label(fold_.runs.get(name, 1))
        title = f"{name}{repeat} ({kind})"
        shape = fmt_shape(out.get("shape")) if show_shapes else ""
        dtype = out.get("dtype", "") if show_dtype else ""
        each = " each" if repeat else ""
        trainable = _trainable_note(g, params) if show_trainable else ""
        if expand_nested and len(members) > 1:
            with dot.subgraph(name=f"cluster_{ids(name)}") as sub:
                steps = (f"a scan over {fold_.scans[name]} steps" if name in fold_.scans else
                         f"{fold_.steps[name]} unrolled steps, drawn once" if name in fold_.steps else "")
                sub.attr(label=_label(title, steps, trainable), style="rounded", color="#888888")
                keys = {}
                for n in members:
                    d = g.nodes[n]
                    if d["op"] == "param" and not show_params:
                        continue
                    keys[n] = (fold_.key(n), {"node": n, "op": d["op"], "shape": d.get("shape")})
                boxes, edges = fold(keys, [(s, n, {"next": None not in (fold_.step(s), fold_.step(n))
                                                   and fold_.step(s) != fold_.step(n)})
                                           for n in members for s in operands(g, n)])
                for key, infos in boxes.items():
                    d, local = infos[0], key[1] or key[0]
                    if d["op"] == "param":
                        sub.node(ids(key), _label(local, fmt_shape(d["shape"])), shape="box",
                                 style="filled", fillcolor=COLORS["source"], fontsize="9")
                    else:
                        sub.node(ids(key), _label(f"{local} ({d['op']}){count_label(len(infos))}",
                                                  fmt_shape(d["shape"]) if show_shapes else ""))
                for (ku, kv), infos in edges.items():
                    dashed = {"style": "dashed", "label": "next step", "fontsize": "8"} \
                        if all(i["next"] for i in infos) else {}
                    sub.edge(ids(ku), ids(kv), **dashed)
                for key, loop in fold_.loops(boxes):
                    sub.edge(ids(key), ids(key), style="dashed", label=loop, fontsize="8")
            node_of[name] = ids(fold_.key(rec["output"]))
            first = [n for n in members if g.nodes[n]["op"] != "param" and
                     any(s not in members for s in operands(g, n))]
            node_of[("entry", name)] = list(dict.fromkeys(ids(fold_.key(n)) for n in first)) or [node_of[name]]
        else:
            label = _label(title, shape, dtype,
                           f"params {count:,}{each}" if show_params and count else "", trainable)
            fill = COLORS["source"] if rec["type"] == "input" else COLORS["forward"]
            dot.node(ids(name), label, shape="box", style="rounded,filled", fillcolor=fill)
            node_of[name] = ids(name)
            node_of[("entry", name)] = [ids(name)]
    outputs = {rec["name"]: g.nodes[rec["output"]].get("shape") for rec in records}
    drawn = set()
    for rec in records:
        target = fold_.fold_to.get(rec["name"], rec["name"])
        for src in rec.get("inputs", []):
            if src in node_of and fold_.fold_to.get(src, src) != target:
                for entry in node_of[("entry", target)]:
                    if (node_of[src], entry) not in drawn:
                        drawn.add((node_of[src], entry))
                        dot.edge(node_of[src], entry,
                                 label=fmt_shape(outputs.get(src)) if show_shapes else "", fontsize="9")
    return len(dot.body)


def plot_model(model_or_graph, to_file: str | None = None, show_shapes: bool = True,
               show_dtype: bool = False, show_params: bool = True, rankdir: str = "TB",
               expand_nested: bool = False, view: str = "graph", batch_size: int = 32,
               show_activations: bool = True, show_trainable: bool = False,
               focus: str | None = None, depth: int | None = None,
               expand_repeats: bool = False, max_nodes: int | None = MAX_NODES
               ) -> graphviz.Digraph:
    """Draw a Model or Graph with graphviz; write ``to_file`` (format from its
    suffix: .svg, .png, .pdf or .dot) when given. Returns the ``graphviz.Digraph``.

    ``focus`` (a layer or block name) and ``depth`` (1: one box per layer and role)
    apply to the training and compiled views; ``expand_repeats`` draws every layer
    of a chain of identical ones and every step of a recurrent layer.

    >>> from graphnn import Graph
    >>> g = Graph(); h = g.input("x", (None, 8))
    >>> for _ in range(10):
    ...     h = g.dense(h, 8, activation="relu")
    >>> "dense x 10 (dense + relu)" in plot_model(g).source
    True
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if depth is not None and not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth must be an int >= 1 or None, got {depth!r}")
    from .checks import plot_arguments
    plot_arguments(to_file, rankdir, batch_size)
    graph, model = _graph_and_model(model_or_graph)

    def draw(d):
        dot = graphviz.Digraph("graphnn", graph_attr={"rankdir": rankdir, "fontname": "Helvetica"},
                               node_attr={"fontname": "Helvetica", "fontsize": "11"},
                               edge_attr={"fontname": "Helvetica"})
        if view == "graph":
            n = _layer_view(graph, dot, show_shapes, show_dtype, show_params, expand_nested,
                            show_activations, show_trainable, expand_repeats)
        elif view == "training":
            n = training_view(model, dot, show_shapes, show_params, d, focus, expand_repeats)
        else:
            n = compiled_view(model, dot, batch_size, show_params, d, focus, expand_repeats,
                              distributed=view == "distributed")
        return dot, n

    dot, n = draw(depth)
    if view != "graph" and depth is None and max_nodes is not None and n > max_nodes:
        for smaller in (3, 2, 1):
            dot, m = draw(smaller)
            if m <= max_nodes:
                break
        print(FOLDED_HINT.format(view=view, n=n, limit=max_nodes, depth=smaller), file=sys.stderr)
    if to_file:
        write(dot, to_file)
    return dot


def write(dot: graphviz.Digraph, to_file: str) -> str:
    """Write DOT or a rendering, by suffix; returns the path written (the .dot
    beside it when ``dot`` is missing). Nothing else is left on disk.

    >>> import tempfile
    >>> dot = graphviz.Digraph(); dot.edge("a", "b")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = write(dot, os.path.join(d, "sub", "g.dot"))     # the folder is made
    ...     open(path).read().split(), os.listdir(os.path.join(d, "sub"))
    (['digraph', '{', 'a', '->', 'b', '}'], ['g.dot'])
    """
    stem, suffix = os.path.splitext(os.fspath(to_file))
    fmt = suffix.lstrip(".").lower() or "dot"
    folder = os.path.dirname(os.path.abspath(to_file))
    os.makedirs(folder, exist_ok=True)
    if fmt in ("dot", "gv"):
        with open(to_file, "w", encoding="utf-8") as f:
            f.write(dot.source)
        return os.fspath(to_file)
    try:
        data = dot.pipe(format=fmt)          # through a pipe: no .gv source file left behind
    except graphviz.ExecutableNotFound:
        path = stem + ".dot"
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot.source)
        print(INSTALL_HINT.format(dot=path, fmt=fmt.upper()), file=sys.stderr)
        return path
    with open(to_file, "wb") as f:
        f.write(data)
    return os.fspath(to_file)


def mimebundle(obj, include=None, exclude=None):
    """Jupyter display: SVG when ``dot`` is there, else the DOT text. Graphs and
    Models show themselves this way in a notebook.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 2)); _ = g.relu(x, name="act")
    >>> bundle = mimebundle(g)
    >>> list(bundle) in (["image/svg+xml"], ["text/plain"]), "act" in next(iter(bundle.values()))
    (True, True)
    """
    dot = plot_model(obj)
    try:
        return {"image/svg+xml": dot.pipe(format="svg").decode("utf-8")}
    except graphviz.ExecutableNotFound:
        return {"text/plain": dot.source}
