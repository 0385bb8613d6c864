"""Spec files: graph -> spec -> graph round trips, and errors that say where."""
from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest

from graphnn import Graph, SpecError, load_spec, model_from_spec, save_spec
from tests.example_graphs import EXAMPLE_GRAPHS


def same_graph(a: nx.MultiDiGraph, b: nx.MultiDiGraph, ignore=("source",)) -> bool:
    strip = lambda g: {n: {k: v for k, v in d.items() if k not in ignore} for n, d in g.nodes(data=True)}
    return strip(a) == strip(b) and sorted(a.edges(data="port")) == sorted(b.edges(data="port"))


@pytest.mark.parametrize("name", sorted(EXAMPLE_GRAPHS))
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_through_a_file(tmp_path, name, suffix):
    g = EXAMPLE_GRAPHS[name]("float32")[0]
    save_spec(g, str(tmp_path / f"net{suffix}"))
    again = load_spec(str(tmp_path / f"net{suffix}"))
    assert same_graph(g.nx, again.nx)
    assert again.to_spec() == g.to_spec()


def test_networkx_graph_round_trips_op_by_op():
    g = EXAMPLE_GRAPHS["mlp"]("float32")[0]
    hand = Graph.from_networkx(g.nx)
    spec = hand.to_spec()
    assert {entry["type"] for entry in spec["layers"]} == {"input", "param", "op"}
    # op by op there are no layer groups to restore
    assert same_graph(load_spec(spec).nx, g.nx, ignore=("source", "group"))


def test_model_from_spec_trains():
    spec = {"layers": [{"type": "input", "name": "x", "shape": [None, 2]},
                       {"type": "dense", "name": "out", "inputs": ["x"], "units": 1,
                        "activation": "sigmoid"}],
            "model": {"loss": "binary_cross_entropy", "optimizer": {"name": "adam", "lr": 0.05},
                      "metrics": ["accuracy"]}}
    model = model_from_spec(spec)
    x = np.random.default_rng(0).uniform(size=(200, 2))
    y = (x[:, :1] > x[:, 1:]).astype("float32")
    assert model.fit(x, y, epochs=30, verbose=0).history["accuracy"][-1] > 0.9


YAML_WITH_TYPO = """graphnn_spec: 1
layers:
  - {type: input, name: x, shape: [null, 4]}
  - type: dense
    name: hidden
    inputs: [x]
    unit: 8
"""


@pytest.mark.parametrize("text, match", [
    (YAML_WITH_TYPO, r"layers\[1\] 'hidden' \(line 4\): unknown key\(s\) \['unit'\]; dense takes"),
    ("layers:\n  - {type: dense2, name: d}\n", r"layers\[0\] 'd' \(line 2\): unknown type 'dense2'"),
    ("layers:\n  - {type: relu, inputs: [nope]}\n", r"refers to \['nope'\]"),
    ("layers:\n  - {name: x}\n", "missing key 'type'"),
    ("layers: [\n", "not valid YAML"),
    ("layers: []\n", "non-empty list"),
    ("graphnn_spec: 7\nlayers:\n  - {type: input, name: x, shape: [null, 2]}\n", "format 1"),
    ("layers:\n  - {type: input, name: x, shape: [null, 2]}\n  - {type: dense, inputs: [x], units: 0}\n",
     "units must be a positive int"),
    ("stuff: 1\nlayers:\n  - {type: input, name: x, shape: [null, 2]}\n", "unknown top-level key"),
])
def test_errors_name_the_entry_key_and_line(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=match):
        load_spec(str(path))


def test_json_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{\"layers\": [")
    with pytest.raises(SpecError, match="bad.json: not valid JSON"):
        load_spec(str(path))
    path.write_text(json.dumps({"layers": [{"type": "input", "name": "x", "shape": [None, 2]}],
                                "model": {"loss": "mse", "optimiser": "adam"}}))
    with pytest.raises(SpecError, match=r"model: unknown key\(s\) \['optimiser'\]"):
        model_from_spec(str(path))
