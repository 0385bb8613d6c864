"""Damaged and hostile model files: truncated at many points, corrupted, with
members of the wrong type, pickles that would run code, unsafe member names
and huge declared shapes. Each is refused with an error naming the file (and
the member at fault), runs no code, writes nothing, and allocates nothing big."""
from __future__ import annotations

import io
import json
import os
import pickle
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from graphnn import load_model
from graphnn.modelfile import ModelFileError

from .common import small_model

MARKER = "pwned.txt"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(bytes of a saved model, {member: bytes})."""
    path = tmp_path_factory.mktemp("saved") / "m.gnn"
    small_model().save(path)
    blob = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return blob, {n: z.read(n) for n in z.namelist()}


def zipped(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def refuse(tmp_path, blob: bytes, *names, error=ValueError):
    """Write ``blob`` as bad.gnn; loading it raises ``error`` naming the file and
    ``names``, creates no file, and runs no code."""
    path = tmp_path / "bad.gnn"
    path.write_bytes(blob)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(error) as info:
        load_model(str(path))
    message = str(info.value)
    for name in ("bad.gnn", *names):
        assert name in message, f"{name!r} not in {message}"
    assert sorted(os.listdir(tmp_path)) == before and not os.path.exists(MARKER)
    return message


# ------------------------------------------------------------------ truncated
CUTS = [0, 1, 4, 22, 30, 100, 0.1, 0.25, 0.5, 0.75, 0.9, -22, -1]


@pytest.mark.parametrize("cut", CUTS, ids=lambda c: f"cut-{c}")
def test_truncated_file(tmp_path, saved, cut):
    blob = saved[0]
    end = int(len(blob) * cut) if isinstance(cut, float) else cut % len(blob) if cut < 0 else cut
    refuse(tmp_path, blob[:end], error=ModelFileError)


@pytest.mark.parametrize("where", [0.2, 0.4, 0.6, 0.8], ids=lambda w: f"flip-at-{w}")
def test_corrupted_bytes(tmp_path, saved, where):
    blob = bytearray(saved[0])
    at = int(len(blob) * where)
    blob[at:at + 8] = bytes(b ^ 0xFF for b in blob[at:at + 8])
    refuse(tmp_path, bytes(blob), error=ModelFileError)


# ------------------------------------------------------- members of wrong type
def _meta(saved, **changes):
    meta = json.loads(saved[1]["meta.json"])
    meta.update(changes)
    for k, v in list(meta.items()):
        if v is KeyError:
            del meta[k]
    return {**saved[1], "meta.json": json.dumps(meta)}


def _graph(saved, edit):
    graph = json.loads(saved[1]["graph.json"])
    edit(graph)
    return {**saved[1], "graph.json": json.dumps(graph)}


def _param(graph, key, value):
    node = next(n for n in graph["nodes"] if n["name"] == "hidden/W")
    node[key] = value


MEMBERS = {
    "meta-a-list": (lambda s: {**s[1], "meta.json": "[1, 2]"}, ["meta.json", "object"]),
    "meta-a-number": (lambda s: {**s[1], "meta.json": "42"}, ["meta.json"]),
    "meta-not-json": (lambda s: {**s[1], "meta.json": "{format"}, ["meta.json", "JSON"]),
    "meta-not-utf8": (lambda s: {**s[1], "meta.json": b"\xff\xfe\x00"}, ["meta.json"]),
    "meta-no-inputs": (lambda s: _meta(s, inputs=KeyError), ["meta.json", "inputs"]),
    "meta-inputs-number": (lambda s: _meta(s, inputs=5), ["meta.json", "inputs"]),
    "meta-outputs-empty": (lambda s: _meta(s, outputs=[]), ["meta.json", "outputs"]),
    "meta-version-string": (lambda s: _meta(s, version="1"), ["meta.json", "version"]),
    "meta-version-bool": (lambda s: _meta(s, version=True), ["meta.json", "version"]),
    "meta-version-newer": (lambda s: _meta(s, version=99), ["newer graphnn"]),
    "meta-format": (lambda s: _meta(s, format="other"), ["not a graphnn model file"]),
    "meta-seed-string": (lambda s: _meta(s, seed="0"), ["meta.json", "seed"]),
    "meta-dtype-complex": (lambda s: _meta(s, dtype="complex64"), ["meta.json", "dtype"]),
    "meta-steps-negative": (lambda s: _meta(s, steps=-4), ["meta.json", "steps"]),
    "meta-compile-number": (lambda s: _meta(s, compile=3), ["meta.json", "compile"]),
    "meta-compile-loss": (lambda s: _meta(s, compile={"loss": "mse", "optimizer": {"name": "sgd"}}),
                          ["meta.json", "compile.loss"]),
    "meta-compile-optimizer": (lambda s: _meta(s, compile={"loss": ["name", "mse"], "optimizer": {"name": "sgdx"}}),
                               ["does not build", "sgdx"]),
    "meta-unknown-input": (lambda s: _meta(s, inputs=["ghost"]), ["does not build", "ghost"]),
    "graph-a-number": (lambda s: {**s[1], "graph.json": "42"}, ["graph.json", "object"]),
    "graph-no-nodes": (lambda s: _graph(s, lambda g: g.pop("nodes")), ["graph.json", "nodes"]),
    "graph-node-no-op": (lambda s: _graph(s, lambda g: g["nodes"][0].pop("op")), ["graph.json", "nodes[0]"]),
    "graph-node-twice": (lambda s: _graph(s, lambda g: g["nodes"].append(g["nodes"][0])), ["graph.json", "twice"]),
    "graph-edge-unknown": (lambda s: _graph(s, lambda g: g["edges"].append(["x", "ghost", 0])),
                           ["graph.json", "ghost"]),
    "graph-edge-port-string": (lambda s: _graph(s, lambda g: g["edges"][0].__setitem__(2, "0")),
                               ["graph.json", "edges[0]"]),
    "graph-unknown-op": (lambda s: _graph(s, lambda g: g["nodes"][-1].update(op="frobnicate")),
                         ["does not build", "frobnicate"]),
    "graph-param-shape-string": (lambda s: _graph(s, lambda g: _param(g, "shape", "big")),
                                 ["graph.json", "hidden/W"]),
    "graph-param-shape-negative": (lambda s: _graph(s, lambda g: _param(g, "shape", [-4, 5])),
                                   ["graph.json", "hidden/W"]),
    "layers-an-object": (lambda s: {**s[1], "layers.json": "{}"}, ["layers.json", "array"]),
    "layers-entry-no-output": (lambda s: {**s[1], "layers.json": json.dumps([{"type": "dense", "name": "d"}])},
                               ["layers.json", "layers[0]"]),
    "meta-deeply-nested": (lambda s: {**s[1], "meta.json": "[" * 100000 + "]" * 100000}, ["meta.json"]),
    "graph-cycle": (lambda s: _graph(s, lambda g: g["edges"].append(["logits/bias_add", "hidden/matmul", 2])),
                    ["does not build", "cycle"]),
    "layers-inputs-number": (lambda s: {**s[1], "layers.json": json.dumps(
        [{"type": "dense", "name": "d", "output": "d", "inputs": 3}])}, ["layers.json", "layers[0]"]),
    "member-missing": (lambda s: {k: v for k, v in s[1].items() if k != "layers.json"}, ["missing layers.json"]),
    "npz-garbage": (lambda s: {**s[1], "variables.npz": b"not an npz"}, ["variables.npz"]),
    "npz-missing-weight": (lambda s: {**s[1], "variables.npz": npz(**{"logits/W": np.zeros((5, 3), "float32")})},
                           ["variables.npz", "hidden/W"]),
    "npz-wrong-shape": (lambda s: {**s[1], "variables.npz": _arrays(s, **{"hidden/W": np.zeros((5, 4), "float32")})},
                        ["variables.npz", "hidden/W", "(5, 4)"]),
    "npz-complex": (lambda s: {**s[1], "variables.npz": _arrays(s, **{"hidden/W": np.ones((4, 5), "complex64")})},
                    ["variables.npz", "hidden/W", "complex64"]),
    "npz-float64": (lambda s: {**s[1], "variables.npz": _arrays(s, **{"hidden/W": np.ones((4, 5), "float64")})},
                    ["variables.npz", "hidden/W", "float64"]),
    "npz-extra-array": (lambda s: {**s[1], "variables.npz": _arrays(s, stowaway=np.ones(3, "float32"))},
                        ["variables.npz", "stowaway"]),
    "npz-strings": (lambda s: {**s[1], "variables.npz": _arrays(s, **{"hidden/b": np.array(["a"] * 5)})},
                    ["variables.npz", "hidden/b"]),
}


def _arrays(saved, **changes):
    with np.load(io.BytesIO(saved[1]["variables.npz"])) as f:
        arrays = {k: f[k] for k in f.files}
    return npz(**{**arrays, **changes})


@pytest.mark.parametrize("case", sorted(MEMBERS), ids=str)
def test_member_of_the_wrong_kind(tmp_path, saved, case):
    make, names = MEMBERS[case]
    refuse(tmp_path, zipped(make(saved)), *names, error=ModelFileError)


# ------------------------------------------------------------------- hostile
class RunsCode:
    """Unpickling this would create the marker file."""

    def __reduce__(self):
        return (open, (MARKER, "w"))


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([RunsCode()], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _npy_header(shape, dtype="<f4", data=b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + data


HOSTILE = {
    "whole-file-pickle": (lambda s: pickle.dumps(RunsCode()), ["not a graphnn model file"]),
    "npz-is-pickle": (lambda s: zipped({**s[1], "variables.npz": pickle.dumps(RunsCode())}), ["variables.npz"]),
    "npy-object-pickle": (lambda s: zipped({**s[1], "variables.npz": zipped({"hidden/W.npy": _pickled_npy()})}),
                          ["variables.npz", "pickle"]),
    "member-parent-path": (lambda s: zipped({**s[1], "../../evil.txt": b"x"}), ["../../evil.txt", "unsafe"]),
    "member-absolute-path": (lambda s: zipped({**s[1], "/tmp/evil.txt": b"x"}), ["/tmp/evil.txt", "unsafe"]),
    "member-backslash": (lambda s: zipped({**s[1], "..\\evil.txt": b"x"}), ["unsafe"]),
    "npz-entry-traversal": (lambda s: zipped({**s[1], "variables.npz": zipped({"../hidden/W.npy": b""})}),
                            ["variables.npz", "../hidden/W.npy"]),
    "member-twice": (lambda s: _twice(s), ["more than once"]),
}


def _twice(saved):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in saved[1].items():
            z.writestr(name, data)
        with pytest.warns(UserWarning):
            z.writestr("meta.json", b"{}")
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(HOSTILE), ids=str)
def test_hostile_file(tmp_path, saved, case, monkeypatch):
    monkeypatch.chdir(tmp_path)             # where the marker would appear
    make, names = HOSTILE[case]
    refuse(tmp_path, make(saved), *names, error=ModelFileError)


HUGE = {
    "param-1e9-by-1e9": lambda s: zipped(_graph(s, lambda g: _param(g, "shape", [10 ** 9, 10 ** 9]))),
    "param-1e12-elements": lambda s: zipped(_graph(s, lambda g: _param(g, "shape", [10 ** 6, 10 ** 6]))),
    "npy-header-huge": lambda s: zipped({**s[1], "variables.npz": zipped(
        {"hidden/W.npy": _npy_header((10 ** 9, 10 ** 9), data=b"\0" * 80)})}),
    "npz-inflates-far-past-the-weights": lambda s: _bomb(s),
    "npy-header-lies": lambda s: zipped({**s[1], "variables.npz": zipped(
        {"hidden/W.npy": _npy_header((4, 5), data=b"\0" * 8)})}),
}


def _bomb(saved):
    """variables.npz declared (and deflated) as 32 MB of zeros, for weights of 172 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in saved[1].items():
            if name != "variables.npz":
                z.writestr(name, data)
        with z.open("variables.npz", "w", force_zip64=True) as f:
            chunk = bytes(1 << 24)
            for _ in range(2):
                f.write(chunk)
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(HUGE), ids=str)
def test_huge_declared_shape_is_refused_before_allocating(tmp_path, saved, case):
    blob = HUGE[case](saved)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = refuse(tmp_path, blob, error=ModelFileError)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0 and peak < 64 << 20, (elapsed, peak)
    assert "hidden/W" in message or "bytes" in message


def test_max_bytes_is_the_callers_limit(tmp_path, saved):
    path = tmp_path / "m.gnn"
    path.write_bytes(saved[0])
    with pytest.raises(ModelFileError, match="limit of 100 bytes"):
        load_model(path, max_bytes=100)
    assert load_model(path).predict(np.zeros((1, 4))).shape == (1, 3)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_path_that_is_no_file(tmp_path, kind):
    path = tmp_path / "m.gnn"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(OSError) as info:
        load_model(str(path))
    assert "m.gnn" in str(info.value)


def test_loaded_errors_do_not_point_at_the_saving_code(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.gnn")
    graph = load_model(tmp_path / "m.gnn").graph
    assert not any("source" in d for _, d in graph.nx.nodes(data=True))
