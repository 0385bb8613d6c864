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

import errno
import io
import json
import os
import secrets
import zipfile
from math import prod

import networkx as nx
import numpy as np

from . import modelfile as mf

FORMAT, VERSION = "graphnn-model", 1
MEMBERS = mf.MEMBERS


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
    """The graph of ``graph_to_json``. The builder's ``source`` (file:line of the
    code that made a node) is dropped: it points into code that is not this run's."""
    g = nx.MultiDiGraph()
    for node in data["nodes"]:
        attrs = {k: tuple(v) if k in SHAPE_KEYS and isinstance(v, list) else v
                 for k, v in node.items() if k not in ("name", "source")}
        g.add_node(node["name"], **attrs)
    for u, v, port in data["edges"]:
        g.add_edge(u, v, port=port)
    return g


TEMP_PREFIX, TEMP_SUFFIX = ".graphnn-", ".tmp"


def _temp_name(path: str) -> str:
    """Beside the target, named after it and this process: ``.m.gnn.graphnn-PID-RANDOM.tmp``."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _remove_stale_temps(path: str) -> None:
    """Delete the temporaries of earlier saves to ``path`` whose process is gone
    (killed mid-write): a live process's temporary is left alone."""
    folder, base = os.path.split(os.path.abspath(path))
    prefix = f".{base}{TEMP_PREFIX}"
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        pid = name[len(prefix):-len(TEMP_SUFFIX)].split("-")[0]
        if pid.isdigit() and _alive(int(pid)):        # this process's too: another thread
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                  # it exists, owned by someone else
        return True
    return True


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` atomically (see the module docstring). The
    file's mode follows the umask, like any file the user creates; temporaries
    left by an earlier save that was killed are removed."""
    from . import __version__
    from .checks import path_argument
    path = path_argument(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"no folder {folder} to save the model in", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a model file", path)
    meta = {"format": FORMAT, "version": VERSION, "graphnn": __version__,
            "inputs": model.inputs, "outputs": model.outputs, "seed": model.seed,
            "dtype": model.graph.dtype, "fits": model._fits, "steps": model._steps,
            "compile": model.compile_config()}
    _remove_stale_temps(path)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in model.variables.items()})
    members = {"meta.json": json.dumps(meta, indent=1),
               "graph.json": json.dumps(graph_to_json(model.graph.nx)),
               "layers.json": json.dumps(_jsonable(model.graph.layers)),
               "variables.npz": buffer.getvalue()}
    tmp = _temp_name(path)
    # os.open applies the umask to 0o666, as open() would; mkstemp would give 0600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in members.items():
                    z.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    mf.check_total(sum(prod(s) for s in shapes.values()) * itemsize, path, max_bytes)
    mf.check_total(npz_size, path, max_bytes)
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
    of weights (default: this machine's memory) is refused before allocating."""
    from .compiler import GraphError
    from .graph import Graph
    from .checks import path_argument
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
