"""Spec files: a model described as data, in YAML or JSON (schema: docs/spec.md).

    graphnn_spec: 1
    layers:
      - {type: input, name: pixels, shape: [null, 64]}
      - {type: dense, name: hidden, inputs: [pixels], units: 64, activation: relu}
      - {type: dense, name: logits, inputs: [hidden], units: 10}
    model: {inputs: [pixels], outputs: [logits], loss: softmax_cross_entropy}

Each layer entry names a builder method (``type``) and its arguments; ``inputs``
refers to earlier entries by name. A graph with no builder records (one made in
networkx) is written op by op, as ``{type: op, op: matmul, ...}`` entries.
Mistakes raise SpecError naming the entry, the key and, for YAML, the line.

>>> g = load_spec({"layers": [{"type": "input", "name": "x", "shape": [None, 3]},
...                           {"type": "relu", "name": "r", "inputs": ["x"]}]})
>>> g["r"].shape
(None, 3)
"""
from __future__ import annotations

import errno
import json
import os
import re

import yaml

from .graph import SPEC_FORMAT as FORMAT
from .graph import Graph, Tensor
from .layers import LAYER_TYPES

LINE = "__line__"
CALLER = re.compile(r"\s+\[(called|created) at [^\]]*\]")


class SpecError(ValueError):
    """A spec that cannot be turned into a graph; the message says where. A
    ValueError; every bad entry is reported at once.

    >>> load_spec('''
    ... layers:
    ...   - {type: input, name: x, shape: [null, 4]}
    ...   - {type: dense, inputs: y, units: 8}
    ...   - {type: dense, inputs: x, unit: 8}
    ... ''')
    Traceback (most recent call last):
    ...
    graphnn.spec.SpecError: 2 bad layer entries in the spec:
      layers[1] (line 4): key 'inputs' refers to ['y'], which no earlier entry names
      layers[2] (line 5): unknown key(s) ['unit']; dense takes activation, bias_init, kernel_init, kernel_regularizer, name, share, units, use_bias
    """


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


def read_spec(src) -> dict:
    """A spec as a dict, from a dict, a .yaml/.yml/.json path, or YAML/JSON text.
    YAML mappings carry the line they start on (key ``__line__``), for errors.

    >>> read_spec("layers: [{type: input, name: x, shape: [null, 2]}]")
    {'layers': [{'type': 'input', 'name': 'x', 'shape': [None, 2], '__line__': 1}], '__line__': 1}
    >>> read_spec("- just a list")
    Traceback (most recent call last):
    ...
    graphnn.spec.SpecError: spec: expected a mapping with a 'layers' list, got list
    """
    if isinstance(src, dict):
        return src
    text, where = src, "spec"
    if isinstance(src, os.PathLike) or (isinstance(src, str) and _looks_like_a_path(src)):
        where = os.fspath(src)
        if not os.path.isfile(where):
            raise FileNotFoundError(errno.ENOENT, "no such spec file", where)
        with open(src, encoding="utf-8") as f:
            text = f.read()
    elif not isinstance(src, str):
        raise SpecError(f"a spec is a dict, a path or YAML/JSON text, got {type(src).__name__}")
    try:
        data = (json.loads(text) if where.endswith(".json") else yaml.load(text, Loader=_LineLoader))
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SpecError(f"{where}: not valid {'JSON' if where.endswith('.json') else 'YAML'}: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping with a 'layers' list, got {type(data).__name__}")
    return data


def _looks_like_a_path(text: str) -> bool:
    """One line naming an existing file or ending in a spec suffix (not YAML text)."""
    return "\n" not in text and (os.path.exists(text) or
                                 text.strip().endswith((".yaml", ".yml", ".json")))


def _where(i, entry):
    line = f" (line {entry[LINE]})" if isinstance(entry, dict) and LINE in entry else ""
    name = f" {entry.get('name')!r}" if isinstance(entry, dict) and entry.get("name") else ""
    return f"layers[{i}]{name}{line}"


def _without_lines(value):
    """The data without the loader's line markers, at any depth."""
    if isinstance(value, dict):
        return {k: _without_lines(v) for k, v in value.items() if k != LINE}
    if isinstance(value, list):
        return [_without_lines(v) for v in value]
    return value


def load_spec(src, name: str | None = None) -> Graph:
    """Build the Graph a spec describes (``src``: dict, path, or YAML/JSON text;
    ``name``: what errors call it, by default the file's path).

    >>> text = '''
    ... layers:
    ...   - {type: input, name: x, shape: [null, 4]}
    ...   - {type: dense, name: hidden, inputs: x, units: 8, activation: relu}
    ...   - {type: dense, name: out, inputs: hidden, units: 3}
    ... model: {loss: softmax_cross_entropy, optimizer: sgd}
    ... '''
    >>> g = load_spec(text)
    >>> [r["name"] for r in g.layers], g["out/bias_add"]
    (['x', 'hidden', 'out'], <Tensor 'out/bias_add' (N, 3) float32>)
    """
    spec = read_spec(src)
    source = name or (os.fspath(src) if not isinstance(src, dict) and
                    (isinstance(src, os.PathLike) or _looks_like_a_path(src)) else "the spec")
    unknown = sorted(set(spec) - {"graphnn_spec", "dtype", "layers", "model", LINE})
    if unknown:
        raise SpecError(f"unknown top-level key(s) {unknown}; expected graphnn_spec, dtype, layers, model")
    if spec.get("graphnn_spec", FORMAT) != FORMAT:
        raise SpecError(f"graphnn_spec: this graphnn reads format {FORMAT}, got {spec['graphnn_spec']!r}")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError("'layers' must be a non-empty list of layer entries")
    if spec.get("dtype", "float32") not in ("float16", "float32", "float64"):
        raise SpecError(f"dtype: expected float16, float32 or float64, got {spec['dtype']!r}")
    g = Graph(dtype=spec.get("dtype", "float32"))
    made: dict[str, Tensor] = {}
    failed: set[str] = set()          # names of bad entries: what reads them is not reported
    errors: list[str] = []
    for i, entry in enumerate(layers):
        where = _where(i, entry)
        try:
            out = _entry(g, entry, where, made, failed)
        except SpecError as e:
            errors.append(str(e))
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                failed.add(entry["name"])
            continue
        if out is None:                # reads a bad entry: already reported
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                failed.add(entry["name"])
            continue
        name = entry.get("name")
        made[name if isinstance(name, str) else g._layer_of.get(out.name, out.name)] = out
        made.setdefault(out.name, out)
    if errors:
        head = f"{len(errors)} bad layer entr{'y' if len(errors) == 1 else 'ies'} in {source}:"
        raise SpecError("\n".join([head, *(f"  {e}" for e in errors)]))
    return g


def _entry(g, entry, where, made, failed):
    """One layer entry built into ``g``: its output, or None when it reads a bad entry."""
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a mapping, got {entry!r}")
    entry = _without_lines(entry)
    kind = entry.pop("type", None)
    if kind is None:
        raise SpecError(f"{where}: missing key 'type'")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise SpecError(f"{where}: unknown type {kind!r}; known: {', '.join(sorted(LAYER_TYPES))}")
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        raise SpecError(f"{where}: key 'name' must be a string, got {name!r}")
    refs = entry.pop("inputs", [])
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise SpecError(f"{where}: key 'inputs' must be a name or a list of names, got {refs!r}")
    if any(r in failed for r in refs):
        return None
    missing = [r for r in refs if r not in made]
    if missing:
        raise SpecError(f"{where}: key 'inputs' refers to {missing}, which no earlier entry names")
    try:
        return _build(g, kind, [made[r] for r in refs], entry, where)
    except SpecError:
        raise
    except (TypeError, ValueError) as e:
        # The spec's line is where the mistake is; the Python line that loaded it is not.
        raise SpecError(f"{where}: {CALLER.sub('', str(e))}") from None


def _build(g, kind, tensors, entry, where):
    signature = LAYER_TYPES[kind]
    params = list(signature.parameters.values())[1:]
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params} | {"share"}      # any layer may share another's weights
    bad = sorted(k for k in entry if k not in names and not takes_kwargs)
    if bad:
        allowed = sorted(names - {"x", "a", "b", "pred", "target", "logits", "labels", "probs", "inputs"})
        raise SpecError(f"{where}: unknown key(s) {bad}; {kind} takes {', '.join(allowed)}")
    args = {k: tuple(v) if isinstance(v, list) and k in ("shape", "kernel_size", "strides", "padding",
                                                         "dilation", "pool_size") else v
            for k, v in entry.items()}
    method = getattr(g, kind)
    if kind in ("input", "param"):
        return method(**args)
    if kind == "op":
        return method(args.pop("op"), tensors, **args)
    return method(*tensors, **args)


def to_spec(graph: Graph, outputs: list | None = None, model: dict | None = None) -> dict:
    """The spec of ``graph`` (its builder records, or its ops one by one: see
    ``Graph.to_spec``), with the ``model`` section if given: what load_spec reads back.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 4)); _ = g.dense(x, 2, name="out")
    >>> to_spec(g, model={"loss": "mse"})
    {'graphnn_spec': 1, 'dtype': 'float32', 'layers': [{'type': 'input', 'name': 'x', 'shape': [None, 4]}, {'type': 'dense', 'name': 'out', 'inputs': ['x'], 'units': 2}], 'model': {'loss': 'mse'}}
    >>> [r["name"] for r in load_spec(to_spec(g)).layers]
    ['x', 'out']
    """
    spec = graph.to_spec(outputs)
    if model:
        spec["model"] = model
    return spec


def save_spec(graph: Graph, path: str, model: dict | None = None) -> None:
    """Write the spec as YAML (.yaml/.yml) or JSON (any other suffix).

    >>> import tempfile
    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 4)); _ = g.relu(x, name="r")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_spec(g, os.path.join(d, "m.yaml"), model={"outputs": ["r"]})
    ...     print(open(os.path.join(d, "m.yaml")).read(), end="")
    graphnn_spec: 1
    dtype: float32
    layers:
    - type: input
      name: x
      shape: [null, 4]
    - type: relu
      name: r
      inputs: [x]
    model:
      outputs: [r]
    """
    spec = to_spec(graph, model=model)
    with open(path, "w", encoding="utf-8") as f:
        if path.endswith((".yaml", ".yml")):
            yaml.safe_dump(spec, f, sort_keys=False, default_flow_style=None)
        else:
            json.dump(spec, f, indent=2)


def model_from_spec(src):
    """A Model from a spec with a ``model`` section ({inputs, outputs, loss,
    optimizer, metrics, seed}); compiled when the section names a loss. Inputs
    default to the input entries, outputs to the last entry.

    >>> text = '''
    ... layers:
    ...   - {type: input, name: x, shape: [null, 4]}
    ...   - {type: dense, name: hidden, inputs: x, units: 8, activation: relu}
    ...   - {type: dense, name: out, inputs: hidden, units: 3}
    ... model: {loss: softmax_cross_entropy, optimizer: sgd}
    ... '''
    >>> m = model_from_spec(text)
    >>> m.inputs, m.outputs, m.optimizer
    (['x'], ['out/bias_add'], SGD(lr=0.01, momentum=0.0, nesterov=False))
    """
    from . import optim
    from .model import Model
    spec = read_spec(src)
    graph = load_spec(spec, name=None if isinstance(src, dict) else
                      os.fspath(src) if isinstance(src, os.PathLike) or _looks_like_a_path(src) else None)
    section = {k: v for k, v in (spec.get("model") or {}).items() if k != LINE}
    unknown = sorted(set(section) - {"inputs", "outputs", "loss", "optimizer", "metrics", "seed"})
    if unknown:
        raise SpecError(f"model: unknown key(s) {unknown}; expected inputs, outputs, loss, optimizer, "
                        "metrics, seed")
    for key in ("inputs", "outputs"):
        value = section.get(key)
        if isinstance(value, str):
            section[key] = [value]
        elif value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise SpecError(f"model.{key}: expected a list of layer names, got {value!r}")
    if not isinstance(section.get("seed", 0), int) or isinstance(section.get("seed"), bool):
        raise SpecError(f"model.seed: expected an int, got {section['seed']!r}")
    inputs = section.get("inputs") or [r["name"] for r in graph.layers if r["type"] == "input"]
    outputs = section.get("outputs") or [graph.layers[-1]["name"]]
    refs = {r["name"]: r["output"] for r in graph.layers}
    unknown = [n for n in inputs + outputs if n not in refs and n not in graph.nx]
    if unknown:
        raise SpecError(f"model: {unknown} name no layer of the spec; layers: {sorted(refs)}")
    try:
        model = Model(graph, inputs=[refs.get(i, i) for i in inputs],
                      outputs=[refs.get(o, o) for o in outputs], seed=section.get("seed", 0))
    except (KeyError, ValueError) as e:
        raise SpecError(f"model: {e}") from None
    if section.get("loss"):
        opt = section.get("optimizer", "adam")
        if isinstance(opt, dict):
            try:
                opt = optim.from_spec({"name": "adam", **{k: v for k, v in opt.items() if k != LINE}})
            except (TypeError, ValueError) as e:
                raise SpecError(f"model.optimizer: {e}") from None
        loss = section["loss"]
        if not isinstance(loss, str):
            raise SpecError(f"model.loss: expected a loss name or a layer name, got {loss!r}")
        try:
            model.compile(loss=graph[refs[loss]] if loss in refs else loss, optimizer=opt,
                          metrics=section.get("metrics"))
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"model: {e}") from None
    return model
