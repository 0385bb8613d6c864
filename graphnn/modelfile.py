"""Reading a model file without trusting it.

A ``.gnn`` file may be truncated, damaged, or written to do harm. Everything
in it is checked before anything is built from it: the zip's member names and
declared sizes, the JSON members' types and keys, every array's ``.npy`` header
(dtype and shape), and the bytes the declared shapes would need, which must fit
the memory limit. Only then are arrays read, with ``allow_pickle=False``. Every
error is a ModelFileError naming the file and the member at fault.

>>> import io, zipfile
>>> buffer = io.BytesIO()
>>> with zipfile.ZipFile(buffer, "w") as z:
...     z.writestr("../evil", b"")
>>> try:
...     open_members(io.BytesIO(buffer.getvalue()), "m.gnn")
... except ModelFileError as e:
...     print(e)
m.gnn: member '../evil': unsafe member name (absolute, '..' or backslash)
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from math import prod
from zlib import error as zlib_error

import numpy as np

MEMBERS = ("meta.json", "graph.json", "layers.json", "variables.npz")
JSON_LIMIT = 64 << 20          # bytes a JSON member may declare
FLOAT_DTYPES = ("float16", "float32", "float64")


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and member.
    A ValueError, so ``except ValueError`` catches it too.

    >>> issubclass(ModelFileError, ValueError)
    True
    """


def memory_limit() -> int:
    """The bytes of weights a file may declare by default: this machine's memory.

    >>> memory_limit() > 0
    True
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not (name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0])


def open_members(source, path: str) -> tuple[dict[str, bytes], int]:
    """The JSON members' bytes and the declared size of variables.npz, after
    checking the zip's member names and sizes (the weights are read later, by
    read_member, once the graph says how big they may be).

    >>> import io, zipfile
    >>> def archive(**members):
    ...     buffer = io.BytesIO()
    ...     with zipfile.ZipFile(buffer, "w") as z:
    ...         for name, data in members.items(): z.writestr(name.replace("_", "."), data)
    ...     return io.BytesIO(buffer.getvalue())
    >>> parts, npz = open_members(archive(meta_json="{}", graph_json="{}", layers_json="[]",
    ...                                   variables_npz=b"12345"), "m.gnn")
    >>> parts, npz
    ({'meta.json': b'{}', 'graph.json': b'{}', 'layers.json': b'[]'}, 5)
    >>> open_members(archive(meta_json="{}"), "m.gnn")
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: m.gnn: not a graphnn model file (missing graph.json, layers.json, variables.npz)
    """
    with _zip(source, path) as z:
        infos = z.infolist()
        for info in infos:
            if not _safe_name(info.filename):
                raise ModelFileError(f"{path}: member {info.filename!r}: unsafe member name "
                                     "(absolute, '..' or backslash)")
        names = [i.filename for i in infos]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ModelFileError(f"{path}: member(s) {repeated} appear more than once")
        missing = [m for m in MEMBERS if m not in names]
        if missing:
            raise ModelFileError(f"{path}: not a graphnn model file (missing {', '.join(missing)})")
        parts = {}
        for m in MEMBERS[:3]:
            size = z.getinfo(m).file_size
            if size > JSON_LIMIT:
                raise ModelFileError(f"{path}: member {m!r} declares {size} bytes; at most "
                                     f"{JSON_LIMIT} are read")
            parts[m] = _guarded(lambda m=m: z.read(m), path, m)
        return parts, z.getinfo(MEMBERS[3]).file_size


def read_member(source, path: str, member: str) -> bytes:
    """One member's bytes (its size already checked by the caller).

    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as z:
    ...     z.writestr("a.txt", b"hello")
    >>> read_member(buffer, "m.zip", "a.txt")
    b'hello'
    """
    with _zip(source, path) as z:
        return _guarded(lambda: z.read(member), path, member)


def _zip(source, path):
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
        raise ModelFileError(f"{path}: not a graphnn model file or truncated ({e})") from None
    except OSError as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ModelFileError(f"{path}: unreadable model file ({e})") from None


def _guarded(read, path, member):
    try:
        return read()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError,
            RuntimeError, OSError, zlib_error) as e:
        raise ModelFileError(f"{path}: member {member!r} is damaged or truncated ({e})") from None


def parse_json(parts: dict, member: str, path: str, kind: type):
    """Member ``member`` as JSON, which must be a ``kind`` (dict or list).

    >>> parse_json({"meta.json": b"[1]"}, "meta.json", "m.gnn", dict)
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: m.gnn: member 'meta.json' must hold a JSON object, got list
    """
    try:
        value = json.loads(parts[member])
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ModelFileError(f"{path}: member {member!r} is not valid JSON ({e})") from None
    if not isinstance(value, kind):
        raise ModelFileError(f"{path}: member {member!r} must hold a JSON "
                             f"{'object' if kind is dict else 'array'}, got {type(value).__name__}")
    return value


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_names(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(s, str) for s in v)


def check_meta(meta: dict, path: str, fmt: str, version: int) -> None:
    """Every key of meta.json that load_model reads, with its type.

    >>> check_meta({"format": "f", "version": "1"}, "m.gnn", "f", 1)
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: m.gnn: member 'meta.json': 'version' must be an int >= 1, got '1'
    """
    where = f"{path}: member 'meta.json'"
    if meta.get("format") != fmt:
        raise ModelFileError(f"{path}: not a graphnn model file (format {meta.get('format')!r})")
    v = meta.get("version")
    if not _is_int(v) or v < 1:
        raise ModelFileError(f"{where}: 'version' must be an int >= 1, got {v!r}")
    if v > version:
        raise ModelFileError(f"{path}: written by a newer graphnn (file format {v}, this graphnn "
                             f"reads up to {version}); upgrade graphnn")
    checks = {"inputs": (_is_names, "a non-empty list of node names"),
              "outputs": (_is_names, "a non-empty list of node names"),
              "seed": (_is_int, "an int"),
              "dtype": (lambda d: d in FLOAT_DTYPES, f"one of {list(FLOAT_DTYPES)}"),
              "fits": (lambda n: _is_int(n) and n >= 0, "an int >= 0"),
              "steps": (lambda n: _is_int(n) and n >= 0, "an int >= 0"),
              "epoch": (lambda n: _is_int(n) and n >= 0, "an int >= 0"),
              "compile": (lambda c: c is None or isinstance(c, dict), "null or an object")}
    required = ("inputs", "outputs", "seed")
    for key, (ok, expect) in checks.items():
        if key not in meta:
            if key in required:
                raise ModelFileError(f"{where}: missing key {key!r}")
            continue
        if not ok(meta[key]):
            raise ModelFileError(f"{where}: {key!r} must be {expect}, got {meta[key]!r}")
    if meta.get("compile"):
        _check_compile(meta["compile"], where)


def _check_compile(c: dict, where: str) -> None:
    loss = c.get("loss")
    if not (isinstance(loss, list) and len(loss) == 2 and loss[0] in ("name", "node")
            and isinstance(loss[1], str)):
        raise ModelFileError(f"{where}: compile.loss must be ['name' or 'node', str], got {loss!r}")
    if not isinstance(c.get("optimizer"), dict) or not isinstance(c["optimizer"].get("name"), str):
        raise ModelFileError(f"{where}: compile.optimizer must be an object with a 'name', "
                             f"got {c.get('optimizer')!r}")
    if not isinstance(c.get("metrics", []), list):
        raise ModelFileError(f"{where}: compile.metrics must be a list, got {c['metrics']!r}")
    targets = c.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, list) and len(t) in (2, 3)
                                                for t in targets):
        raise ModelFileError(f"{where}: compile.targets must be a list of [shape, dtype, "
                             f"weighted], got {targets!r}")


def check_graph_json(graph: dict, path: str) -> None:
    """graph.json: nodes (objects with a str name and op) and edges [src, dst, port].

    >>> check_graph_json({"nodes": [{"name": "x", "op": "input"}], "edges": [["x", "y", 0]]}, "m.gnn")
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: m.gnn: member 'graph.json': edges[0] must be [source, target, port] between listed nodes, got ['x', 'y', 0]
    """
    where = f"{path}: member 'graph.json'"
    nodes, edges = graph.get("nodes"), graph.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise ModelFileError(f"{where}: expected an object with lists 'nodes' and 'edges'")
    names = set()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) \
                or not isinstance(node.get("op"), str):
            raise ModelFileError(f"{where}: nodes[{i}] must be an object with a str 'name' and "
                                 f"'op', got {node!r}"[:300])
        if node["name"] in names:
            raise ModelFileError(f"{where}: node {node['name']!r} is listed twice")
        names.add(node["name"])
    for i, edge in enumerate(edges):
        if not (isinstance(edge, list) and len(edge) == 3 and edge[0] in names
                and edge[1] in names and _is_int(edge[2]) and edge[2] >= 0):
            raise ModelFileError(f"{where}: edges[{i}] must be [source, target, port] between "
                                 f"listed nodes, got {edge!r}"[:300])


def check_layers(layers: list, path: str) -> None:
    """layers.json: one object per builder call, with str type, name and output.

    >>> check_layers([{"type": "dense", "name": "fc", "output": "fc/bias_add"}], "m.gnn")
    """
    for i, rec in enumerate(layers):
        if not (isinstance(rec, dict) and all(isinstance(rec.get(k), str)
                                              for k in ("type", "name", "output"))
                and isinstance(rec.get("inputs", []), list)):
            raise ModelFileError(f"{path}: member 'layers.json': layers[{i}] must be an object "
                                 f"with str 'type', 'name' and 'output', got {rec!r}"[:300])


def declared_shapes(graph: dict, path: str) -> dict[str, tuple]:
    """The shape of every param node, checked to be a list of ints >= 0.

    >>> declared_shapes({"nodes": [{"name": "w", "op": "param", "shape": [3, 2]}]}, "m.gnn")
    {'w': (3, 2)}
    """
    shapes = {}
    for node in graph["nodes"]:
        if node["op"] != "param":
            continue
        shape = node.get("shape")
        if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
            raise ModelFileError(f"{path}: member 'graph.json': parameter {node['name']!r} has "
                                 f"shape {shape!r}; expected a list of ints >= 0")
        shapes[node["name"]] = tuple(shape)
    return shapes


def array_headers(blob: bytes, path: str) -> dict[str, tuple[tuple, np.dtype]]:
    """{name: (shape, dtype)} from the .npy headers of an npz, reading no data.
    Rejects pickled (object) arrays, non-real dtypes, and headers whose data
    would not fit in the member's bytes.

    >>> buffer = io.BytesIO(); np.savez(buffer, w=np.zeros((2, 3), "float32"))
    >>> array_headers(buffer.getvalue(), "m.gnn")
    {'w': ((2, 3), dtype('float32'))}
    """
    where = f"{path}: member 'variables.npz'"
    headers = {}
    try:
        z = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, ValueError, EOFError) as e:
        raise ModelFileError(f"{where}: not an npz archive ({e})") from None
    with z:
        for info in z.infolist():
            name = info.filename
            if not name.endswith(".npy") or not _safe_name(name):
                raise ModelFileError(f"{where}: entry {name!r} is not a safe .npy name")
            try:
                with z.open(info) as f:
                    major, minor = np.lib.format.read_magic(f)
                    if (major, minor) == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif major in (2, 3):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"unsupported .npy version {major}.{minor}")
                    offset = f.tell()
            except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile,
                    RuntimeError) as e:
                raise ModelFileError(f"{where}: entry {name!r} has no valid .npy header ({e})") from None
            key = name[:-4]
            if dtype.hasobject:
                raise ModelFileError(f"{where}: array {key!r} holds Python objects (a pickle); "
                                     "refused")
            if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
                raise ModelFileError(f"{where}: array {key!r} has dtype {dtype}; only real "
                                     "numbers are weights")
            if info.file_size - offset != prod(shape) * dtype.itemsize:
                raise ModelFileError(f"{where}: array {key!r} declares shape {shape} {dtype} "
                                     f"({prod(shape) * dtype.itemsize} bytes) but holds "
                                     f"{info.file_size - offset} bytes")
            headers[key] = (tuple(shape), dtype)
    return headers


def check_sizes(shapes: dict, headers: dict, path: str, limit: int) -> None:
    """Every parameter has an array of its declared shape; all arrays fit ``limit``.

    >>> check_sizes({"w": (2, 3)}, {"w": ((3, 2), np.dtype("float32"))}, "m.gnn", 1 << 20)
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: m.gnn: member 'variables.npz': array 'w' has shape (3, 2), but graph.json declares (2, 3)
    """
    where = f"{path}: member 'variables.npz'"
    for name, shape in shapes.items():
        if name not in headers:
            raise ModelFileError(f"{where}: no array for parameter {name!r}")
        if headers[name][0] != shape:
            raise ModelFileError(f"{where}: array {name!r} has shape {headers[name][0]}, but "
                                 f"graph.json declares {shape}")
    check_total(sum(prod(s) * d.itemsize for s, d in headers.values()), path, limit)


def check_total(total: int, path: str, limit: int) -> None:
    """Refuse a file whose weights would need more than ``limit`` bytes.

    >>> check_total(10 ** 18, "m.gnn", 1 << 30)
    Traceback (most recent call last):
    ...
    graphnn.modelfile.ModelFileError: m.gnn: the file declares 1,000,000,000,000,000,000 bytes of weights, more than the limit of 1,073,741,824 bytes (load_model's max_bytes)
    """
    if total > limit:
        raise ModelFileError(f"{path}: the file declares {total:,} bytes of weights, more than "
                             f"the limit of {limit:,} bytes (load_model's max_bytes)")


def read_arrays(blob: bytes, path: str) -> dict[str, np.ndarray]:
    """The arrays themselves (headers already checked), never unpickling.

    >>> buffer = io.BytesIO(); np.savez(buffer, w=np.ones(2))
    >>> read_arrays(buffer.getvalue(), "m.gnn")["w"]
    array([1., 1.])
    """
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: member 'variables.npz' is corrupt ({e})") from None
