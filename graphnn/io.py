"""Saving and loading models: one zip file, no pickle.

    model.gnn (a zip)
      meta.json       format and version, inputs, outputs, seed, compile settings
      graph.json      the declared graph: nodes with their attributes, edges with ports
      layers.json     the builder's layer records (for specs, summaries, plots)
      variables.npz   weights and optimizer state, by name

The writing half (``save_model``, atomic) is ``graphnn.archive``, beneath the
Model so that ``Model.save`` can use it; ``load_model`` builds a Model, so it
lives here, above it.

>>> import os, tempfile, numpy as np
>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, inputs=x, outputs=g.dense(x, 2))
>>> with tempfile.TemporaryDirectory() as d:
...     save_model(m, os.path.join(d, "m.gnn")); back = load_model(os.path.join(d, "m.gnn"))
>>> np.array_equal(back.predict(np.ones((1, 3))), m.predict(np.ones((1, 3))))
True
"""
from __future__ import annotations

import errno
import os
from math import prod

import numpy as np

from . import modelfile as mf
from .archive import FORMAT, MEMBERS, VERSION, graph_from_json, graph_to_json, save_model  # noqa: F401

STATE_FACTOR = 8      # bytes of variables.npz per byte of weights, at most (slots, headers)


def _read(path: str, max_bytes: int) -> dict:
    """Every member, checked (graphnn.modelfile) before anything is allocated."""
    parts, npz_size = mf.open_members(path, path)
    meta = mf.parse_json(parts, "meta.json", path, dict)
    mf.check_meta(meta, path, FORMAT, VERSION)
    graph = mf.parse_json(parts, "graph.json", path, dict)
    mf.check_graph_json(graph, path)
    layers = mf.parse_json(parts, "layers.json", path, list)
    mf.check_layers(layers, path)
    shapes = mf.declared_shapes(graph, path)
    itemsize = np.dtype(meta.get("dtype", "float32")).itemsize
    weights = sum(prod(s) for s in shapes.values()) * itemsize
    mf.check_total(weights, path, max_bytes)
    mf.check_total(npz_size, path, max_bytes)
    # Weights and optimizer state (a few slots per weight) bound the archive, so a
    # small file cannot make load_model inflate gigabytes the graph has no use for.
    most = STATE_FACTOR * weights + (1 << 20) + 1024 * len(graph["nodes"])
    if npz_size > most:
        raise mf.ModelFileError(f"{path}: member 'variables.npz' declares {npz_size:,} bytes, "
                                f"more than the graph's weights and optimizer state take "
                                f"(at most {most:,})")
    blob = mf.read_member(path, path, "variables.npz")
    headers = mf.array_headers(blob, path)
    mf.check_sizes(shapes, headers, path, max_bytes)
    for node in graph["nodes"]:
        if node["op"] == "param" and node.get("dtype", meta.get("dtype")) != headers[node["name"]][1]:
            raise mf.ModelFileError(f"{path}: member 'variables.npz': array {node['name']!r} has "
                                    f"dtype {headers[node['name']][1]}, the parameter is "
                                    f"{node.get('dtype', meta.get('dtype'))}")
    return {"meta": meta, "graph": graph, "layers": layers, "variables": mf.read_arrays(blob, path),
            "headers": headers}


def load_model(path, max_bytes: int | None = None):
    """Restore a saved model: same graph, weights and optimizer state, compiled as
    it was, so it predicts identically and resumes training identically.

    The file is not trusted: every member is checked before anything is built
    from it (see graphnn.modelfile), and a file declaring more than ``max_bytes``
    of weights (default: this machine's memory) is refused before allocating.

    A trained model comes back with its optimizer state and epoch count, so
    training resumes where it stopped:

    >>> import tempfile
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="adam")
    >>> _ = m.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=3, verbose=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m.save(os.path.join(d, "m.gnn")); back = load_model(os.path.join(d, "m.gnn"))
    >>> back.epoch, back.optimizer, all(np.array_equal(v, back.variables[k]) for k, v in m.variables.items())
    (3, Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08), True)
    >>> with tempfile.TemporaryDirectory() as d:              # doctest: +ELLIPSIS
    ...     _ = open(os.path.join(d, "bad.gnn"), "wb").write(b"not a zip")
    ...     load_model(os.path.join(d, "bad.gnn"))
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: .../bad.gnn: not a graphnn model file or truncated (File is not a zip file)
    """
    from .checks import path_argument
    from .compiler import GraphError
    from .graph import Graph
    from .model import Model
    path = path_argument(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such model file", path)
    data = _read(path, mf.memory_limit() if max_bytes is None else int(max_bytes))
    meta = data["meta"]
    graph = Graph(dtype=meta.get("dtype", "float32"))
    graph.nx = graph_from_json(data["graph"])
    graph.layers = data["layers"]
    graph._layer_of = {rec["output"]: rec["name"] for rec in graph.layers}
    # The saved weights replace the initial ones: initialize with zeros (no random
    # draws, no float64 temporaries), then put the declared initializers back.
    inits = {n: d["init"] for n, d in graph.nx.nodes(data=True) if d.get("op") == "param" and "init" in d}
    for n in inits:
        graph.nx.nodes[n]["init"] = "zeros"
    try:
        model = Model(graph, inputs=meta["inputs"], outputs=meta["outputs"], seed=meta["seed"])
        for n, init in inits.items():
            graph.nx.nodes[n]["init"] = model._checked.nodes[n]["init"] = init
        if meta.get("compile"):
            model.compile_from_config(meta["compile"])
    except (GraphError, KeyError, TypeError, ValueError) as e:
        raise mf.ModelFileError(f"{path}: the saved model does not build: {e}") from None
    model._fits, model._steps = meta.get("fits", 0), meta.get("steps", 0)
    model.epoch = meta.get("epoch", 0)           # fit(initial_epoch=model.epoch) resumes
    missing = sorted(set(model.variables) - set(data["headers"]))
    unexpected = sorted(set(data["headers"]) - set(model.variables))
    if missing or unexpected:
        raise mf.ModelFileError(f"{path}: member 'variables.npz' does not match the model: "
                                f"missing {missing}, unexpected {unexpected}")
    for k, v in model.variables.items():
        shape, dtype = data["headers"][k]
        if (shape, dtype) != (v.shape, v.dtype):
            raise mf.ModelFileError(f"{path}: member 'variables.npz': array {k!r} is {shape} "
                                    f"{dtype}, the model's variable is {v.shape} {v.dtype}")
    model.load_state_dict(data["variables"], strict=True, source=path)
    return model
