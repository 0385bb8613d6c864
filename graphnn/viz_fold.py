"""Folding for the views: what lets a picture of a big network stay small.

Every node of a graph (or instruction of a Program) gets a *key*; nodes with the
same key are drawn as one box with a count. Three rules make the keys:

- **repeats**: a chain of at least three identical layers (same type, arguments,
  output and parameter shapes, each reading only the one before) folds into its
  first layer, drawn once with "x k";
- **steps**: the unrolled time steps of a recurrent layer (``gru/cell3``,
  ``gru/cell4``, ...) fold into one step (``gru/cell{t}``) inside a cluster that
  says how many steps there are; a layer whose steps are one scan op (the LSTM's
  ``lstm_scan`` and its gradient) is one box with a loop that says the count;
- **depth**: ``depth=1`` draws one box per layer and role (forward, backward,
  update), ``depth=2`` one per sub-layer of a block, and so on.

>>> from graphnn import Graph
>>> g = Graph(); h = g.input("x", (None, 4))
>>> for _ in range(5):
...     h = g.dense(h, 4, activation="relu")
>>> fold = Folding(g)
>>> fold.key("dense_3/matmul"), fold.runs["dense"]
(('dense', 'matmul'), 5)
"""
from __future__ import annotations

import re

from .compiler.ops import OPS

MIN_RUN = 3                      # shorter chains stay as they are: a pair reads fine
RECURRENT = ("lstm", "gru")
_STEP = re.compile(r"\d+")


def layer_of(node: str) -> str:
    """The top-level layer a node belongs to (the first part of its name).

    >>> layer_of("dense_3/matmul"), layer_of("x")
    ('dense_3', 'x')
    """
    return node.split("/", 1)[0]


def _signature(graph, rec):
    """What makes two layers identical: type, arguments, output and parameter shapes."""
    g = graph.nx
    args = tuple(sorted((k, repr(v)) for k, v in rec.items()
                        if k not in ("name", "inputs", "output", "type")))
    params = tuple(sorted((n[len(rec["name"]):], tuple(d["shape"])) for n, d in g.nodes(data=True)
                          if d["op"] == "param" and n.startswith(rec["name"] + "/")))
    return rec["type"], args, tuple(g.nodes[rec["output"]].get("shape") or ()), params


def find_runs(graph) -> dict:
    """{first layer of a run: [every layer of the run]} for chains of identical layers.

    >>> from graphnn import Graph
    >>> g = Graph(); h = g.input("x", (None, 4))
    >>> for units in (4, 4, 4, 4, 2):       # the fifth differs: not in the run
    ...     h = g.dense(h, units, activation="relu")
    >>> find_runs(g)
    {'dense': ['dense', 'dense_1', 'dense_2', 'dense_3']}
    """
    records = [r for r in graph.layers if r["type"] not in ("input", "param")]
    readers: dict[str, int] = {}
    for rec in graph.layers:
        for src in rec.get("inputs", []):
            readers[src] = readers.get(src, 0) + 1
    runs, current = {}, []
    for rec in records:
        if current and rec.get("inputs") == [current[-1]["name"]] and \
                readers.get(current[-1]["name"]) == 1 and \
                _signature(graph, rec) == _signature(graph, current[0]):
            current.append(rec)
            continue
        if len(current) >= MIN_RUN:
            runs[current[0]["name"]] = [r["name"] for r in current]
        current = [rec]
    if len(current) >= MIN_RUN:
        runs[current[0]["name"]] = [r["name"] for r in current]
    return runs


class Folding:
    """The keys of one graph's nodes. ``expand_repeats=True`` turns off the
    repeats and steps rules (every layer and step drawn).

    >>> from graphnn import Graph
    >>> s = Graph(); x = s.input("x", (None, 3, 2)); _ = s.gru(x, 5); _ = s.lstm(x, 4)
    >>> f = Folding(s)
    >>> f.steps, f.scans                    # the GRU is unrolled, the LSTM one scan
    ({'gru': 3, 'lstm': 3}, {'lstm': 3})
    >>> Folding(s, expand_repeats=True).steps
    {}
    """

    def __init__(self, graph, expand_repeats: bool = False):
        kinds = {r["name"]: r["type"] for r in graph.layers}
        outputs = {r["name"]: r.get("output", r["name"]) for r in graph.layers}   # a layer's value node
        self.runs: dict[str, int] = {}          # first layer of a run -> its length
        self.fold_to: dict[str, str] = {}       # layer -> the first layer of its run
        self.steps: dict[str, int] = {}         # recurrent layer -> its number of steps
        self.scans: dict[str, int] = {}         # top-level layer -> the steps of its scan op
        if expand_repeats:
            return
        for first, members in find_runs(graph).items():
            self.runs[first] = len(members)
            self.fold_to.update({m: first for m in members})
        for name, kind in kinds.items():
            if kind in RECURRENT:
                rec = next(r for r in graph.layers if r["name"] == name)
                src = rec["inputs"][0] if rec.get("inputs") else None      # a layer's name
                source = graph.nx.nodes.get(outputs.get(src, src)) if src else None
                shape = source.get("shape") if source else None
                self.steps[name] = shape[1] if shape and len(shape) == 3 else 0
        for n, d in graph.nx.nodes(data=True):     # keyed as key() keys: a block's, an import's too
            if d["op"] == "lstm_scan":
                x = [u for u, _, e in graph.nx.in_edges(n, data=True) if e.get("port") == 1]
                shape = graph.nx.nodes[x[0]].get("shape") if x else None
                if shape and len(shape) == 3:
                    self.scans[layer_of(n)] = shape[1]

    def loops(self, boxes: dict) -> list[tuple]:
        """[(key, label)] for the boxes of scan ops ({key: [infos with "op" or
        "kernel"]}): each is drawn with an edge to itself, "x T steps".

        >>> from graphnn import Graph
        >>> s = Graph(); x = s.input("x", (None, 3, 2)); _ = s.gru(x, 5); _ = s.lstm(x, 4)
        >>> f = Folding(s)
        >>> f.loops({("lstm", "scan"): [{"op": "lstm_scan"}], ("gru", "cell{t}"): [{"op": "gru_cell"}]})
        [(('lstm', 'scan'), 'x 3 steps')]
        """
        out = []
        for key, infos in boxes.items():
            op = OPS.get(infos[0].get("op", infos[0].get("kernel")))
            if op is not None and op.loops and key[0] in self.scans:     # its record says it loops
                out.append((key, f"x {self.scans[key[0]]} {op.loops}"))
        return out

    def key(self, node: str, depth: int | None = None) -> tuple:
        """(layer, local path as drawn); steps become ``{t}`` in recurrent layers.

    >>> from graphnn import Graph
    >>> s = Graph(); x = s.input("x", (None, 3, 2)); _ = s.gru(x, 5); _ = s.lstm(x, 4)
    >>> f = Folding(s)
        >>> f.key("gru/cell2"), f.key("gru/cell2", depth=1), f.key("lstm/scan")
        (('gru', 'cell{t}'), ('gru', ''), ('lstm', 'scan'))
        """
        parts = node.split("/")
        layer = self.fold_to.get(parts[0], parts[0])
        local = parts[1:]
        if parts[0] in self.steps and local:
            local[0] = _STEP.sub("{t}", local[0])
        if depth is not None:
            local = local[:max(depth - 1, 0)]
        return (layer, "/".join(local))

    def step(self, node: str) -> int | None:
        """The time step of a recurrent layer's node, else None.

    >>> from graphnn import Graph
    >>> s = Graph(); x = s.input("x", (None, 3, 2)); _ = s.gru(x, 5); _ = s.lstm(x, 4)
    >>> f = Folding(s)
        >>> f.step("gru/cell2"), f.step("gru/weights"), f.step("x")
        (2, None, None)
        """
        parts = node.split("/")
        if parts[0] in self.steps and len(parts) > 1:
            found = _STEP.search(parts[1])
            return int(found.group()) if found else None
        return None

    def cluster_label(self, layer: str) -> str | None:
        """What a folded layer's cluster says, or None for a layer drawn as it is.

    >>> from graphnn import Graph
    >>> s = Graph(); x = s.input("x", (None, 3, 2)); _ = s.gru(x, 5); _ = s.lstm(x, 4)
    >>> f = Folding(s)
        >>> f.cluster_label("gru")
        'gru: one of 3 unrolled steps (t = 0..2)'
        >>> f.cluster_label("lstm"), f.cluster_label("x")
        ('lstm: a scan over 3 steps', None)
        """
        if layer in self.runs:
            return f"{layer} x {self.runs[layer]} (a chain of {self.runs[layer]} identical layers)"
        if layer in self.scans and layer in self.steps:     # the LSTM layer itself, not a block around it
            return f"{layer}: a scan over {self.scans[layer]} steps"
        if layer in self.steps:
            return f"{layer}: one of {self.steps[layer]} unrolled steps (t = 0..{self.steps[layer] - 1})"
        return None


def fold(items: dict, edges: list) -> tuple[dict, dict]:
    """Merge ``items`` ({id: (key, info)}) by key and ``edges`` ([(id, id, info)]) by
    their ends' keys; an edge inside one merged item goes, unless it leads from one
    unrolled step to another (a recurrent cell reading the one before: drawn as a loop
    on the folded step). Returns ({key: [infos]}, {(key, key): [infos]}) in first-seen
    order.

    >>> items = {"a": ("dense", "A"), "b": ("dense", "B"), "c": ("out", "C")}
    >>> fold(items, [("a", "b", {}), ("b", "c", {"k": 1}), ("a", "c", {"k": 2})])   # a -> b: inside
    ({'dense': ['A', 'B'], 'out': ['C']}, {('dense', 'out'): [{'k': 1}, {'k': 2}]})
    >>> fold(items, [("a", "b", {"next_step": True})])[1]                           # a step's loop
    {('dense', 'dense'): [{'next_step': True}]}
    """
    nodes: dict = {}
    for key, info in items.values():
        nodes.setdefault(key, []).append(info)
    merged: dict = {}
    for u, v, info in edges:
        if u in items and v in items:
            ku, kv = items[u][0], items[v][0]
            if ku != kv or info.get("next") or info.get("next_step"):
                merged.setdefault((ku, kv), []).append(info)
    return nodes, merged


def count_label(n: int) -> str:
    """" x n" for folded boxes, nothing for one.

    >>> count_label(1), count_label(3)
    ('', ' x 3')
    """
    return f" x {n}" if n > 1 else ""
