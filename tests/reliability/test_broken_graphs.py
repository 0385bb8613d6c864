"""Broken graphs, three ways: builder calls, hand-built networkx graphs and spec
files. Each case asserts the error type, that the message names the layer,
node or entry at fault, and that the graph being built is left as it was."""
from __future__ import annotations

import networkx as nx
import pytest

from graphnn import Graph, GraphError, Model, ShapeError
from graphnn.spec import SpecError, load_spec, model_from_spec

# --------------------------------------------------------------------- builder

def _other_graph_tensor(g, x, img):
    other = Graph()
    return g.relu(other.input("elsewhere", (None, 4)))


def _failing_block(g, x, img):
    with g.block("blk"):
        g.relu(x, name="inner")
        g.dense(x, 0, name="bad")


BUILDER = {
    "dense-units-str": (lambda g, x, img: g.dense(x, "10", name="fc"), ValueError, ["dense 'fc'", "units", "'10'"]),
    "dense-units-zero": (lambda g, x, img: g.dense(x, 0, name="fc"), ValueError, ["dense 'fc'", "units"]),
    "dense-units-float": (lambda g, x, img: g.dense(x, 2.5, name="fc"), ValueError, ["dense 'fc'", "2.5"]),
    "dense-units-bool": (lambda g, x, img: g.dense(x, True, name="fc"), ValueError, ["dense 'fc'", "units"]),
    "dense-units-unnamed": (lambda g, x, img: g.dense(x, -1), ValueError, ["dense 'dense'", "units"]),
    "dense-activation": (lambda g, x, img: g.dense(x, 3, activation="relux", name="fc"), ValueError, ["dense 'fc'", "relux"]),
    "dense-kernel-init": (lambda g, x, img: g.dense(x, 3, kernel_init="glorot_unifrom", name="fc"), ValueError, ["fc/W", "glorot_unifrom"]),
    "dense-bias-init": (lambda g, x, img: g.dense(x, 3, bias_init="constant:abc", name="fc"), ValueError, ["fc/b", "constant:NUMBER"]),
    "dense-unknown-kwarg": (lambda g, x, img: g.dense(x, 3, init="zeros", name="fc"), TypeError, ["dense 'fc'", "init"]),
    "dense-4d-input": (lambda g, x, img: g.dense(img, 3, name="fc"), ShapeError, ["fc", "flatten"]),
    "dense-in-block": (lambda g, x, img: _in_block(g, lambda: g.dense(x, 0)), ValueError, ["enc/dense", "units"]),
    "dropout-rate-high": (lambda g, x, img: g.dropout(x, 1.5, name="drop"), ValueError, ["dropout 'drop'", "rate", "1.5"]),
    "dropout-rate-negative": (lambda g, x, img: g.dropout(x, -0.1, name="drop"), ValueError, ["dropout 'drop'", "rate"]),
    "conv-filters-zero": (lambda g, x, img: g.conv2d(img, 0, 3, name="c1"), ValueError, ["conv2d 'c1'", "filters"]),
    "conv-activation": (lambda g, x, img: g.conv2d(img, 4, 3, activation="nope", name="c1"), ValueError, ["conv2d 'c1'", "nope"]),
    "conv-2d-input": (lambda g, x, img: g.conv2d(x, 4, 3, name="c1"), ShapeError, ["c1", "(N, C, H, W)"]),
    "conv-kernel-too-big": (lambda g, x, img: g.conv2d(img, 4, 9, name="c1"), ShapeError, ["c1"]),
    "pool-too-big": (lambda g, x, img: g.max_pool2d(img, 16, name="p1"), ShapeError, ["p1"]),
    "add-shapes": (lambda g, x, img: g.add(x, g["z"], name="sum"), ShapeError, ["sum", "(N, 4)", "(N, 3)"]),
    "concat-shapes": (lambda g, x, img: g.concat([x, img], name="cat"), ShapeError, ["cat"]),
    "concat-not-a-tensor": (lambda g, x, img: g.concat([x, "nowhere"], name="cat"), GraphError, ["nowhere"]),
    "unknown-op": (lambda g, x, img: g.op("frobnicate", [x], name="f"), GraphError, ["'f'", "frobnicate"]),
    "op-arity": (lambda g, x, img: g.op("relu", [x, x], name="r"), GraphError, ["'r'", "operand"]),
    "op-unknown-attr": (lambda g, x, img: g.op("relu", [x], name="r", alpha=2), GraphError, ["'r'", "alpha"]),
    "duplicate-name": (lambda g, x, img: g.relu(x, name="x"), GraphError, ["'x'", "already exists"]),
    "other-graph": (_other_graph_tensor, GraphError, ["elsewhere", "another Graph"]),
    "param-init": (lambda g, x, img: g.param("w", (2, 2), init="nope"), ValueError, ["param 'w'", "nope"]),
    "activation-name": (lambda g, x, img: g.activation(x, "sigmoidal"), ValueError, ["activation", "sigmoidal"]),
    "block-rolls-back": (_failing_block, ValueError, ["blk/bad", "units"]),
}


def _in_block(g, make):
    with g.block("enc"):
        return make()


@pytest.mark.parametrize("case", sorted(BUILDER), ids=str)
def test_builder_mistake_names_the_layer(case):
    make, error, names = BUILDER[case]
    g = Graph()
    x, img = g.input("x", (None, 4)), g.input("img", (None, 1, 8, 8))
    g.input("z", (None, 3))
    nodes, layers = set(g.nx.nodes), len(g.layers)
    with pytest.raises(error) as info:
        make(g, x, img)
    for name in names:
        assert name in str(info.value), f"{name!r} not in {info.value}"
    assert set(g.nx.nodes) == nodes and len(g.layers) == layers      # nothing was added


def test_builder_error_points_at_the_callers_line():
    g = Graph()
    x = g.input("x", (None, 4))
    with pytest.raises(ValueError, match=r"called at .*test_broken_graphs.py:\d+"):
        g.dense(x, 0, name="fc")


# ------------------------------------------------------------------- networkx

def _base():
    h = nx.MultiDiGraph()
    h.add_node("x", op="input", shape=(None, 3), dtype="float32")
    h.add_node("w", op="param", shape=(3, 2), dtype="float32")
    h.add_node("y", op="matmul")
    h.add_edge("x", "y", port=0)
    h.add_edge("w", "y", port=1)
    return h


def _edit(fn):
    def make():
        h = _base()
        fn(h)
        return h
    return make


def _cycle(h):
    h.add_node("a", op="relu")
    h.add_node("b", op="relu")
    h.add_edge("y", "a", port=0)
    h.add_edge("a", "b", port=0)
    h.add_edge("b", "a", port=1)


NETWORKX = {
    "unknown-op": (_edit(lambda h: h.nodes["y"].update(op="matmull")), ["'y'", "matmull", "did you mean"]),
    "no-op-attribute": (_edit(lambda h: h.nodes["y"].pop("op")), ["'y'", "no 'op'"]),
    "cycle": (_edit(_cycle), ["cycle", "'a'", "'b'"]),
    "missing-operand": (_edit(lambda h: h.remove_edge("w", "y")), ["'y'", "expected 2 operand"]),
    "repeated-port": (_edit(lambda h: (h.remove_edge("w", "y"), h.add_edge("w", "y", port=0))),
                      ["'y'", "more than once"]),
    "port-gap": (_edit(lambda h: (h.remove_edge("w", "y"), h.add_edge("w", "y", port=2))), ["'y'", "gaps"]),
    "edge-without-port": (_edit(lambda h: (h.remove_edge("w", "y"), h.add_edge("w", "y"))), ["'y'", "port"]),
    "unknown-attribute": (_edit(lambda h: h.nodes["y"].update(colour="red")), ["'y'", "colour"]),
    "bad-attribute": (_edit(lambda h: h.nodes["y"].update(transpose_b="yes")), ["'y'", "transpose_b"]),
    "shape-mismatch": (_edit(lambda h: h.nodes["w"].update(shape=(4, 2))), ["'y'", "(N, 3)", "(4, 2)"]),
    "param-initializer": (_edit(lambda h: h.nodes["w"].update(init="glorot")), ["'w'", "glorot"]),
    "unreachable-node": (_edit(lambda h: (h.add_node("lost", op="relu"), h.add_edge("x", "lost", port=0))),
                         ["'lost'", "does not reach"]),
    "structural-and-shape-together": (_edit(lambda h: (h.nodes["w"].update(shape=(4, 2)),
                                                       h.add_node("z", op="frobnicate"),
                                                       h.add_edge("x", "z", port=0))),
                                      ["'z'", "frobnicate", "'y'", "(4, 2)"]),
}


@pytest.mark.parametrize("case", sorted(NETWORKX), ids=str)
def test_hand_built_graph_names_every_node_at_fault(case):
    make, names = NETWORKX[case]
    h = make()
    outputs = ["y", "z"] if "z" in h else ["b"] if "b" in h else ["y"]
    edges = sorted(h.edges(data="port", default=None), key=str)
    with pytest.raises(GraphError) as info:
        Model(Graph.from_networkx(h), inputs="x", outputs=outputs)
    for name in names:
        assert name in str(info.value), f"{name!r} not in {info.value}"
    assert sorted(h.edges(data="port", default=None), key=str) == edges   # the user's graph untouched


def test_model_io_mistakes_are_named():
    h = _base()
    with pytest.raises(GraphError, match="'nowhere'"):
        Model(Graph.from_networkx(h), inputs="x", outputs="nowhere")
    with pytest.raises(GraphError, match="'x'.*not among the model's inputs"):
        Model(Graph.from_networkx(h), inputs=[], outputs="y")


def test_every_problem_of_a_graph_at_once():
    h = _base()
    h.nodes["y"]["op"] = "matmull"
    h.add_node("a", op="relu", colour="red")
    h.add_edge("x", "a", port=0)
    h.add_node("b", op="tanh")
    with pytest.raises(GraphError) as info:
        Model(Graph.from_networkx(h), inputs="x", outputs=["y", "a", "b"])
    assert set(info.value.nodes) >= {"y", "a", "b"}


# ---------------------------------------------------------------------- specs

GOOD = [{"type": "input", "name": "x", "shape": [None, 4]},
        {"type": "dense", "name": "fc", "inputs": ["x"], "units": 3}]


def _spec(*layers, **top):
    return {"graphnn_spec": 1, "layers": list(layers) or GOOD, **top}


SPECS = {
    "top-level-list": ("- 1\n- 2\n", ["mapping"]),
    "unknown-top-key": (_spec(lyaers=[]), ["lyaers"]),
    "newer-format": (_spec(graphnn_spec=2), ["graphnn_spec", "2"]),
    "no-layers": ({"graphnn_spec": 1, "layers": []}, ["layers"]),
    "bad-dtype": (_spec(dtype="float8"), ["dtype", "float8"]),
    "entry-not-mapping": (_spec(GOOD[0], "dense"), ["layers[1]", "mapping"]),
    "missing-type": (_spec(GOOD[0], {"name": "fc", "inputs": ["x"], "units": 3}), ["layers[1]", "'fc'", "type"]),
    "unknown-type": (_spec(GOOD[0], {"type": "densse", "name": "fc"}), ["layers[1]", "densse"]),
    "inputs-a-number": (_spec(GOOD[0], {"type": "dense", "name": "fc", "inputs": 5, "units": 3}),
                        ["layers[1]", "'fc'", "inputs", "5"]),
    "inputs-unknown": (_spec(GOOD[0], {"type": "dense", "name": "fc", "inputs": ["y"], "units": 3}),
                       ["layers[1]", "['y']"]),
    "unknown-key": (_spec(GOOD[0], {"type": "dense", "name": "fc", "inputs": ["x"], "unit": 3}),
                    ["layers[1]", "unit"]),
    "bad-units": (_spec(GOOD[0], {"type": "dense", "name": "fc", "inputs": ["x"], "units": 0}),
                  ["layers[1]", "dense 'fc'", "units"]),
    "bad-name-type": (_spec(GOOD[0], {"type": "dense", "name": 7, "inputs": ["x"], "units": 3}),
                      ["layers[1]", "name"]),
    "shape-error": (_spec(GOOD[0], {"type": "conv2d", "name": "c", "inputs": ["x"], "filters": 2,
                                    "kernel_size": 3}), ["layers[1]", "'c'"]),
    "all-bad-entries-at-once": (_spec(GOOD[0], {"type": "dense", "name": "a", "inputs": ["x"], "units": 0},
                                      {"type": "dense", "name": "b", "inputs": ["a"], "units": 2},
                                      {"type": "relu", "name": "c", "inputs": 5},
                                      {"type": "dropout", "name": "d", "inputs": ["x"], "rate": 2}),
                                ["3 bad layer entries", "'a'", "'c'", "'d'"]),
    "yaml-line-numbers": (("graphnn_spec: 1\nlayers:\n  - {type: input, name: x, shape: [null, 4]}\n"
                           "  - {type: dense, name: fc, inputs: [x], units: -2}\n"), ["line 4", "'fc'"]),
    "invalid-yaml": ("layers: [\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", sorted(SPECS), ids=str)
def test_bad_spec_names_the_entry(case):
    spec, names = SPECS[case]
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    for name in names:
        assert name in str(info.value), f"{name!r} not in {info.value}"
    if case == "all-bad-entries-at-once":
        assert "'b'" not in str(info.value)       # it only reads a bad entry


MODEL_SECTIONS = {
    "unknown-key": ({"los": "mse"}, ["model", "los"]),
    "unknown-output": ({"outputs": ["nope"]}, ["model", "nope"]),
    "outputs-a-number": ({"outputs": 3}, ["model.outputs", "3"]),
    "unknown-loss": ({"loss": "msee"}, ["model", "msee"]),
    "loss-a-number": ({"loss": 2}, ["model.loss"]),
    "bad-optimizer": ({"loss": "mse", "optimizer": {"name": "adam", "lr": -1}}, ["model.optimizer", "lr"]),
    "bad-seed": ({"seed": "zero"}, ["model.seed"]),
}


@pytest.mark.parametrize("case", sorted(MODEL_SECTIONS), ids=str)
def test_bad_model_section_is_named(case):
    section, names = MODEL_SECTIONS[case]
    with pytest.raises(SpecError) as info:
        model_from_spec(_spec(model=section))
    for name in names:
        assert name in str(info.value), f"{name!r} not in {info.value}"


@pytest.mark.parametrize("suffix, text, match", [
    (".yaml", None, "no such spec file"),
    (".json", "{\"layers\": [", "not valid JSON"),
    (".yaml", "just text", "mapping"),
], ids=["missing-file", "bad-json-file", "scalar-yaml-file"])
def test_spec_file_errors_name_the_file(tmp_path, suffix, text, match):
    path = tmp_path / f"net{suffix}"
    if text is not None:
        path.write_text(text)
    error = FileNotFoundError if text is None else SpecError
    with pytest.raises(error, match=match) as info:
        model_from_spec(str(path))
    assert f"net{suffix}" in str(info.value)
