"""Views of big networks stay small: chains of identical layers and unrolled
steps fold, focus and depth cut a view down, and a view still too big folds
itself with one line saying how to expand it. Counts are checked against the
training graph itself (nodes by name) and against the same network made smaller."""
from __future__ import annotations

import re

import pytest

from graphnn import Graph, Model, plot_model


def deep_mlp(layers=60, width=16):
    g = Graph()
    h = g.input("pixels", (None, 32))
    for _ in range(layers):
        h = g.dense(h, width, activation="relu")
    model = Model(g, inputs="pixels", outputs=g.dense(h, 10, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer="adam")
    return model


def recurrent(steps, cell="lstm"):
    g = Graph()
    rows = g.input("rows", (None, steps, 6))
    h = getattr(g, cell)(rows, 5, name=cell)
    model = Model(g, inputs=rows, outputs=g.dense(h, 3, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer="adam")
    return model


def boxes(dot) -> int:
    """Nodes of the DOT text (statements `id [label=...]` outside edges)."""
    return len(re.findall(r"^\s+\w+ \[label=", dot.source, flags=re.MULTILINE))


def training_nodes(model):
    model.program("train", 1)
    return list(next(iter(model._built.values()))["train"].nodes)


def test_a_chain_of_identical_layers_is_one_box_with_its_count():
    model = deep_mlp(60)
    layer_view = plot_model(model)
    # input, the first dense (32 -> 16 differs), the 59 that are alike, logits
    assert boxes(layer_view) == 4 and "dense_1 x 59 (dense + relu)" in layer_view.source
    nodes = training_nodes(model)
    folded_away = [n for n in nodes if re.match(r"dense_([2-9]|[1-5]\d)/", n)]   # dense_2 .. dense_59
    training = plot_model(model, view="training")
    assert boxes(training) == len(nodes) - len(folded_away)
    assert "dense_1 x 59" in training.source
    # folding does not depend on the length of the chain
    assert boxes(plot_model(deep_mlp(10), view="compiled")) == boxes(plot_model(model, view="compiled"))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unrolled_steps_fold_into_one_step(cell):
    """The GRU's 28 steps draw as one; the LSTM is one scan op, drawn with a loop
    that says its step count: either way the picture does not grow with T."""
    short, long = recurrent(4, cell), recurrent(28, cell)
    said = {"gru": ("one of 28 unrolled steps", "28 unrolled steps, drawn once", "next step"),
            "lstm": ("a scan over 28 steps", "a scan over 28 steps", "x 28 steps")}[cell]
    for view in ("training", "compiled"):
        folded = plot_model(long, view=view)
        assert boxes(folded) == boxes(plot_model(short, view=view)) < 300
        assert said[0] in folded.source and (cell == "gru" or "x 28 steps back" in folded.source)
        expanded = boxes(plot_model(short, view=view, expand_repeats=True))
        assert expanded > boxes(folded) if cell == "gru" else expanded == boxes(folded)
    layers = plot_model(long, expand_nested=True)
    assert said[1] in layers.source and said[2] in layers.source


def test_a_gru_over_another_layers_sequence_says_its_step_count():
    """The GRU's input is a layer (an LSTM's sequence, node lstm/sequence): its
    step count is that value's T (was 0: 'one of 0 unrolled steps')."""
    g = Graph()
    rows = g.input("rows", (None, 7, 6))
    h = g.gru(g.lstm(rows, 4, return_sequences=True, name="lstm"), 5, name="gru")
    model = Model(g, inputs=rows, outputs=g.dense(h, 3, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer="adam")
    for source in (plot_model(model, expand_nested=True).source, plot_model(model, view="training").source):
        assert "one of 7 unrolled steps" in source or "7 unrolled steps, drawn once" in source
        assert "0 unrolled steps" not in source


def test_focus_draws_one_layer_and_its_neighbours_in_grey():
    model = deep_mlp(5)
    nodes = training_nodes(model)
    dot = plot_model(model, view="training", focus="dense_2", show_params=True)
    mine = [n for n in nodes if n.startswith("dense_2/")]
    labels = re.findall(r'\[label="([^"]*)"', dot.source)
    inside = [lab for lab in labels if "(outside)" not in lab]
    assert len(inside) == len(mine) and all(lab.split("\n")[0] in mine for lab in inside)
    assert {lab.split("\n")[0] for lab in labels if "(outside)" in lab} >= {"dense_1", "dense_3"}
    compiled = plot_model(model, view="compiled", focus="dense_2")
    assert "dense_3\n(outside)" in compiled.source
    with pytest.raises(ValueError, match="names no layer.*dense_4"):
        plot_model(model, view="training", focus="conv9")


def test_depth_one_is_one_box_per_layer_and_role():
    model = deep_mlp(3)
    dot = plot_model(model, view="training", depth=1, show_params=False)
    labels = re.findall(r'\[label="([^"]*)"', dot.source)
    # per dense layer: forward and backward and update (its two parameters' updates)
    for layer in ("dense", "dense_1", "dense_2", "logits"):
        assert {lab.split("\n")[0] for lab in labels if lab.startswith(layer + ":")} == \
            {f"{layer}: forward", f"{layer}: backward", f"{layer}: update"}


def test_a_view_too_big_folds_itself_and_says_how_to_expand(capsys):
    model = deep_mlp(60)
    dot = plot_model(model, view="training", expand_repeats=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_nodes=300" in err[0] and "focus=" in err[0]
    assert boxes(dot) <= 300
    full = plot_model(model, view="training", expand_repeats=True, max_nodes=None)
    assert boxes(full) == len(training_nodes(model)) and not capsys.readouterr().err
