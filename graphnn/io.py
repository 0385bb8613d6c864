"""Saving and loading models: one zip file, no pickle.

    model.gnn (a zip)
      meta.json       format and version, inputs, outputs, seed, compile settings
      graph.json      the declared graph: nodes with their attributes, edges with ports
      layers.json     the builder's layer records (for specs, summaries, plots)
      variables.npz   weights and optimizer state, by name

The write is atomic: the zip goes to a temporary file beside the target, is
flushed to disk, then renamed over it, so an error or a crash mid-save leaves
the previous file as it was.

>>> import os, tempfile, numpy as np
>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, inputs=x, outputs=g.dense(x, 2))
>>> path = os.path.join(tempfile.mkdtemp(), "m.gnn")
>>> save_model(m, path)
>>> np.array_equal(load_model(path).predict(np.ones((1, 3))), m.predict(np.ones((1, 3))))
True
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import networkx as nx
import numpy as np

FORMAT, VERSION = "graphnn-model", 1
MEMBERS = ("meta.json", "graph.json", "layers.json", "variables.npz")


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def graph_to_json(g: nx.MultiDiGraph) -> dict:
    """Nodes (with attributes) and edges (with ports), as plain data."""
    return {"nodes": [{"name": n, **_jsonable(d)} for n, d in g.nodes(data=True)],
            "edges": [[u, v, d["port"]] for u, v, d in g.edges(data=True)]}


SHAPE_KEYS = ("shape", "pool_size", "strides", "padding", "dilation", "kernel_size", "input_hw")


def graph_from_json(data: dict) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for node in data["nodes"]:
        attrs = {k: tuple(v) if k in SHAPE_KEYS and isinstance(v, list) else v
                 for k, v in node.items() if k != "name"}
        g.add_node(node["name"], **attrs)
    for u, v, port in data["edges"]:
        g.add_edge(u, v, port=port)
    return g


def save_model(model, path: str) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring)."""
    from . import __version__
    meta = {"format": FORMAT, "version": VERSION, "graphnn": __version__,
            "inputs": model.inputs, "outputs": model.outputs, "seed": model.seed,
            "dtype": model.graph.dtype, "fits": model._fits, "steps": model._steps,
            "compile": model.compile_config()}
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in model.variables.items()})
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".graphnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("meta.json", json.dumps(meta, indent=1))
                z.writestr("graph.json", json.dumps(graph_to_json(model.graph.nx)))
                z.writestr("layers.json", json.dumps(_jsonable(model.graph.layers)))
                z.writestr("variables.npz", buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            missing = [m for m in MEMBERS if m not in names]
            if missing:
                raise ValueError(f"{path}: not a graphnn model file (missing {', '.join(missing)})")
            parts = {m: z.read(m) for m in MEMBERS}
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a graphnn model file or truncated ({e})") from None
    except (zipfile.LargeZipFile, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: unreadable model file ({e})") from None
    try:
        meta = json.loads(parts["meta.json"])
        graph = json.loads(parts["graph.json"])
        layers = json.loads(parts["layers.json"])
        with np.load(io.BytesIO(parts["variables.npz"]), allow_pickle=False) as npz:
            variables = {k: npz[k] for k in npz.files}
    except (ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ValueError(f"{path}: corrupt model file ({type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a graphnn model file (format {meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{path}: written by a newer graphnn (file format {meta['version']}, "
                         f"this graphnn reads up to {VERSION}); upgrade graphnn")
    return {"meta": meta, "graph": graph, "layers": layers, "variables": variables}


def load_model(path: str):
    """Restore a saved model: same graph, weights and optimizer state, compiled as
    it was, so it predicts identically and resumes training identically."""
    from .graph import Graph
    from .model import Model
    data = _read(path)
    meta = data["meta"]
    graph = Graph(dtype=meta.get("dtype", "float32"))
    graph.nx = graph_from_json(data["graph"])
    graph.layers = data["layers"]
    graph._layer_of = {rec["output"]: rec["name"] for rec in graph.layers}
    model = Model(graph, inputs=meta["inputs"], outputs=meta["outputs"], seed=meta["seed"])
    if meta.get("compile"):
        model.compile_from_config(meta["compile"])
    model._fits, model._steps = meta.get("fits", 0), meta.get("steps", 0)
    model.load_state_dict(data["variables"], strict=True, source=path)
    return model
