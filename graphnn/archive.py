"""The model file format, written: one zip, no pickle, replaced atomically.

    model.gnn (a zip)
      meta.json       format and version, inputs, outputs, seed, compile settings
      graph.json      the declared graph: nodes with their attributes, edges with ports
      layers.json     the builder's layer records (for specs, summaries, plots)
      variables.npz   weights and optimizer state, by name

The write is atomic: the zip goes to a temporary file beside the target, is
flushed to disk, then renamed over it, so an error or a crash mid-save leaves
the previous file as it was. ``Model.save`` writes through ``save_model``;
reading a file back into a Model is ``graphnn.io.load_model`` (which checks
every member first, see ``graphnn.modelfile``). This module knows a model only
by what it holds, so the Model can save itself without an import circle.

>>> import networkx as nx
>>> g = nx.MultiDiGraph(); g.add_node("x", op="input", shape=(None, 2)); g.add_node("y", op="relu")
>>> _ = g.add_edge("x", "y", port=0)
>>> sorted(graph_from_json(graph_to_json(g)).nodes["x"].items())
[('op', 'input'), ('shape', (None, 2))]
"""
from __future__ import annotations

import errno
import io
import json
import os
import secrets
import zipfile

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
    """Nodes (with attributes) and edges (with ports), as plain data: tuples
    become lists, NumPy scalars Python numbers; both edges of add(x, x) are kept.

    >>> g = nx.MultiDiGraph(); g.add_node("x", op="input", shape=(None, 2))
    >>> g.add_node("y", op="leaky_relu", alpha=np.float32(0.5))
    >>> _ = g.add_edge("x", "y", port=0); _ = g.add_edge("x", "y", port=1)
    >>> graph_to_json(g)
    {'nodes': [{'name': 'x', 'op': 'input', 'shape': [None, 2]}, {'name': 'y', 'op': 'leaky_relu', 'alpha': 0.5}], 'edges': [['x', 'y', 0], ['x', 'y', 1]]}
    """
    return {"nodes": [{"name": n, **_jsonable(d)} for n, d in g.nodes(data=True)],
            "edges": [[u, v, d["port"]] for u, v, d in g.edges(data=True)]}


SHAPE_KEYS = ("shape", "pool_size", "strides", "padding", "dilation", "kernel_size", "input_hw")


def graph_from_json(data: dict) -> nx.MultiDiGraph:
    """The graph of ``graph_to_json``. The builder's ``source`` (file:line of the
    code that made a node) is dropped: it points into code that is not this run's.
    Shape-like attributes become tuples again.

    >>> data = {"nodes": [{"name": "x", "op": "input", "shape": [None, 2], "source": "a.py:3"},
    ...                   {"name": "y", "op": "add"}], "edges": [["x", "y", 0], ["x", "y", 1]]}
    >>> g = graph_from_json(data)
    >>> g.nodes["x"], [d["port"] for _, _, d in g.edges(data=True)]
    ({'op': 'input', 'shape': (None, 2)}, [0, 1])
    """
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
    left by an earlier save that was killed are removed.

    >>> import tempfile, zipfile
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_model(m, os.path.join(d, "m.gnn"))
    ...     zipfile.ZipFile(os.path.join(d, "m.gnn")).namelist(), os.listdir(d)
    (['meta.json', 'graph.json', 'layers.json', 'variables.npz'], ['m.gnn'])
    >>> with tempfile.TemporaryDirectory() as d:              # doctest: +ELLIPSIS
    ...     save_model(m, os.path.join(d, "no", "m.gnn"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] no folder .../no to save the model in: '.../no/m.gnn'
    """
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
            "epoch": getattr(model, "epoch", 0),
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
