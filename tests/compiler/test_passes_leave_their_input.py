"""No pass mutates the graph it is given: each copies what it changes (or hands
back its input untouched). Checked pass by pass on a graph with every kind of
rewrite: convolution lowering and fusion, batch norm (inference folding, moving
averages), dropout, softmax + cross-entropy, optimizer updates with clipping."""
from __future__ import annotations

import copy

import pytest
from graphnn.compiler.autodiff import differentiate
from graphnn.compiler.emit import emit_program
from graphnn.compiler.fuse import fuse_epilogues, fuse_softmax_cross_entropy
from graphnn.compiler.infer import infer_shapes
from graphnn.compiler.lower import lower
from graphnn.compiler.pipeline import check_graph, inference_graph, prune
from graphnn.compiler.updates import append_updates
from graphnn.compiler.validate import validate

from graphnn import Graph


def _snapshot(g):
    """Every node and edge with a deep copy of its attributes."""
    return (copy.deepcopy(list(g.nodes(data=True))),
            copy.deepcopy(sorted(g.edges(keys=True, data=True), key=repr)))


def _graph():
    g = Graph("float64")
    x = g.input("img", (None, 2, 6, 6))
    h = g.batch_norm(g.conv2d(x, 4, 3, padding="same"))
    h = g.dropout(g.relu(h), 0.25, seed=1)
    h = g.max_pool2d(h, 3, strides=2, padding=1)
    probs = g.softmax(g.dense(g.flatten(h), 3))
    labels = g.input("labels", (None,), dtype="int64")
    loss = g.cross_entropy(probs, labels, name="loss")
    ends = [probs.name, loss.name] + [n for n, d in g.nx.nodes(data=True) if d["op"] == "moving_average"]
    return g.nx, probs.name, loss.name, ends


def _stages():
    """(pass name, function of the graph before it, that graph)."""
    raw, probs, loss, ends = _graph()
    checked = check_graph(raw, ends)
    stable = fuse_softmax_cross_entropy(checked)
    params = [n for n, d in stable.nodes(data=True) if d["op"] == "param" and d.get("trainable", True)]
    diffed, grads = differentiate(stable, loss, params)
    updated, updates = append_updates(diffed, grads, {"name": "adam", "lr": 0.01, "clip_norm": 1.0})
    fused = fuse_epilogues(updated, [loss, probs])
    return [
        ("validate", lambda g: validate(g, ends), raw),
        ("infer", infer_shapes, validate(raw, ends)),
        ("stabilize", fuse_softmax_cross_entropy, checked),
        ("autodiff", lambda g: differentiate(g, loss, params), stable),
        ("updates", lambda g: append_updates(g, grads, {"name": "adam", "lr": 0.01, "clip_norm": 1.0}),
         diffed),
        ("prune", lambda g: prune(g, [loss, *updates]), updated),
        ("inference", lambda g: inference_graph(g, [probs]), checked),
        ("fuse", lambda g: fuse_epilogues(g, [loss, probs]), updated),
        ("lower", lower, fused),
        ("emit", lambda g: emit_program(g, [loss, probs], 4), lower(fused)),
    ]


@pytest.mark.parametrize("stage", _stages(), ids=lambda s: s[0])
def test_the_pass_leaves_its_input_as_it_was(stage):
    name, run, g = stage
    before = _snapshot(g)
    run(g)
    assert _snapshot(g) == before, f"{name} changed the graph it was given"


def test_the_rewrites_did_happen():
    """The graph above exercises every rewrite (else the test above proves little)."""
    raw, probs, _, ends = _graph()

    def ops_of(g):
        return {d["op"] for _, d in g.nodes(data=True)}

    checked = check_graph(raw, ends)
    assert {"im2col", "fused"} <= ops_of(lower(fuse_epilogues(checked, [probs])))
    inference = ops_of(inference_graph(checked, [probs]))
    assert "bn_fold_scale" in inference and not {"normalize", "dropout_mask"} & inference
    assert "softmax_cross_entropy" in ops_of(fuse_softmax_cross_entropy(checked))
