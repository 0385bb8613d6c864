"""Bug 4 of issue 9: a model with concat works outside training too. concat
takes a list, records its inputs, and so saves, round-trips through a spec,
and shows its input edges in summary() and plot_model."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, load_model
from graphnn.spec import load_spec, model_from_spec, save_spec
from graphnn.viz import plot_model

A = np.arange(8.0).reshape(4, 2)
B = -np.arange(12.0).reshape(4, 3)


def concat_model(as_list=True):
    g = Graph(dtype="float64")
    a, b = g.input("a", (None, 2)), g.input("b", (None, 3))
    cat = g.concat([a, b], name="cat") if as_list else g.concat(a, b, name="cat")
    return Model(g, inputs=[a, b], outputs=g.dense(cat, 2, name="out"), seed=1)


def reference(model):
    w = model.get_weights()
    return np.concatenate([A, B], axis=1) @ w["out/W"] + w["out/b"]


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "arguments"])
def test_concat_computes_numpy_concatenate(as_list):
    model = concat_model(as_list)
    rec = next(r for r in model.graph.layers if r["type"] == "concat")
    assert rec["inputs"] == ["a", "b"] and "tensors" not in rec
    np.testing.assert_allclose(model.predict([A, B]), reference(model), rtol=1e-12)


def test_concat_model_saves_and_loads(tmp_path):
    model = concat_model()
    model.save(tmp_path / "m.gnn")
    again = load_model(tmp_path / "m.gnn")
    np.testing.assert_array_equal(again.predict([A, B]), model.predict([A, B]))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_concat_model_round_trips_through_a_spec(tmp_path, suffix):
    model = concat_model()
    path = str(tmp_path / f"net{suffix}")
    save_spec(model.graph, path, model={"inputs": ["a", "b"], "outputs": ["out"], "seed": 1})
    assert next(r for r in load_spec(path).layers if r["type"] == "concat")["inputs"] == ["a", "b"]
    again = model_from_spec(path)
    np.testing.assert_array_equal(again.predict([A, B]), model.predict([A, B]))


def test_summary_and_plot_show_the_concat_inputs():
    model = concat_model()
    row = next(line for line in model.summary().splitlines() if line.startswith("cat (concat)"))
    assert row.rstrip().endswith("a, b")
    source = plot_model(model).source
    ids = {name: line.split()[0] for line in source.splitlines()
           for name in ("a (input)", "b (input)", "cat (concat)") if f'"{name}' in line}
    assert f"{ids['a (input)']} -> {ids['cat (concat)']}" in source
    assert f"{ids['b (input)']} -> {ids['cat (concat)']}" in source
