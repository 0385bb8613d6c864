"""summary() against hand counts; plot_model's DOT pinned, rendered with dot,
and written as DOT with a hint when dot is missing."""
from __future__ import annotations

import os
import shutil

import graphviz
import pytest

from graphnn import Graph, Model, plot_model

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def small_cnn():
    g = Graph()
    x = g.input("img", (None, 1, 8, 8))
    h = g.max_pool2d(g.conv2d(x, 4, 3, padding="same", activation="relu", name="conv"), 2)
    logits = g.dense(g.flatten(h), 10, name="logits")
    return g, Model(g, inputs=x, outputs=logits)


def test_summary_counts_by_hand():
    _g, model = small_cnn()
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    text = model.summary()
    rows = {line.split()[0]: line for line in text.splitlines() if line[:1].isalpha()}
    # conv: 4 filters x 1 channel x 3 x 3 + 4 biases; logits: 64 inputs x 10 + 10
    assert " 40 " in rows["conv"] and "(N, 4, 8, 8)" in rows["conv"]
    assert " 650 " in rows["logits"] and "flatten" in rows["logits"]
    # FLOPs per sample: conv 2*4*64*9 = 4,608 (+ bias 256 + relu 256); dense 2*64*10 + 10
    assert "5,120" in rows["conv"] and "1,290" in rows["logits"]
    assert "Total params: 690 (trainable 690, non-trainable 0)" in text
    assert "Memory, training step at batch 32: arena" in text


def test_summary_counts_shared_parameters_once():
    g = Graph()
    x = g.input("x", (None, 4))
    w = g.param("shared_W", (4, 4))
    a = g.op("matmul", [x, w], name="first")
    b = g.op("matmul", [a, w], name="second")
    text = Model(g, inputs=x, outputs=b).summary(memory=False)
    assert "Total params: 16 (trainable 16" in text
    assert "(shared)" in next(line for line in text.splitlines() if line.startswith("second"))


def test_frozen_parameters_are_not_trainable():
    g = Graph()
    x = g.input("x", (None, 2))
    y = g.add(x, g.param("offset", (2,), trainable=False))
    assert "non-trainable 2" in Model(g, inputs=x, outputs=y).summary(memory=False)


@pytest.mark.parametrize("view", ["graph", "expanded", "compiled"])
def test_dot_source_matches_golden_file(view):
    _g, model = small_cnn()
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    dot = plot_model(model, view="graph" if view == "expanded" else view,
                     expand_nested=view == "expanded", batch_size=2)
    path = os.path.join(GOLDEN, f"small_cnn_{view}.dot")
    if os.environ.get("GRAPHNN_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(dot.source)
    with open(path) as f:
        assert dot.source == f.read()


def test_training_view_colours_backward_and_updates():
    _, model = small_cnn()
    model.compile(loss="softmax_cross_entropy", optimizer="adam")
    source = plot_model(model, view="training").source
    assert "grad_relu_grad" in source and "#dbe9f6" in source and "adam_update" in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot program is not installed")
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_renders_by_suffix(tmp_path, suffix, magic):
    _, model = small_cnn()
    path = tmp_path / f"net{suffix}"
    plot_model(model, str(path))
    assert path.read_bytes().startswith(magic)


def test_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    _, model = small_cnn()

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])
    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    plot_model(model, str(tmp_path / "net.svg"))
    assert (tmp_path / "net.dot").read_text().startswith("digraph")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "install graphviz" in err[0]


def test_dot_suffix_needs_no_program(tmp_path):
    g, _ = small_cnn()
    plot_model(g, str(tmp_path / "net.dot"))
    assert "conv (conv2d + relu)" in (tmp_path / "net.dot").read_text()


def test_jupyter_display_and_bad_view():
    g, model = small_cnn()
    bundle = model._repr_mimebundle_()
    assert "image/svg+xml" in bundle or "text/plain" in bundle
    with pytest.raises(ValueError, match="view must be one of"):
        plot_model(g, view="fancy")
    with pytest.raises(ValueError, match="compiled Model"):
        plot_model(model, view="training")


def test_without_dot_the_demo_reports_the_dot_file_and_leaves_no_gv(tmp_path, monkeypatch, capsys):
    from graphnn.demo import run_demo

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])
    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    result = run_demo(out=str(tmp_path), epochs=1, verbose=1)
    out = capsys.readouterr().out
    reported = out.strip().splitlines()[-1].removeprefix("wrote ").split(", ")
    assert all(os.path.exists(p) for p in reported) and reported == result["files"]
    assert str(tmp_path / "net.dot") in reported and not (tmp_path / "net.svg").exists()
    assert not list(tmp_path.glob("*.gv")) and not list(tmp_path.glob("*.gv.*"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot program is not installed")
def test_rendering_leaves_only_the_file_asked_for(tmp_path):
    _, model = small_cnn()
    plot_model(model, str(tmp_path / "net.png"), view="compiled")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.png"]


def two_dense(optimizer="adam"):
    g = Graph()
    x = g.input("x", (None, 4))
    h = g.dense(x, 8, activation="relu", name="fc1")
    model = Model(g, inputs=x, outputs=g.dense(h, 3, name="out"))
    model.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    return model


HEADS = ("Layer (type)", "Output shape", "Param #", "Trainable", "FLOPs", "Kept for bwd", "Weights",
         "Opt. state", "Connected to")


def cells(text, row_start):
    """The cells of the first row starting with ``row_start``, by the header's columns."""
    head = next(line for line in text.splitlines() if line.startswith("Layer (type)"))
    row = next(line for line in text.splitlines() if line.startswith(row_start))
    starts = [head.index(h) for h in HEADS if h in head]
    return dict(zip([h for h in HEADS if h in head],
                    [row[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]))


def columns(text, name):
    c = cells(text, name + " (")
    return [c["Trainable"], c["Kept for bwd"], c["Weights"], c["Opt. state"]]


def test_memory_per_layer_by_hand():
    text = two_dense().summary(batch_size=16)
    # fc1 keeps its relu output (16 x 8 float32) for relu's gradient and out's weight
    # gradient; W (4 x 8) and b (8) are 160 B; Adam keeps two moments per weight
    # (2 x 160 B) and a float64 step count per parameter (2 x 8 B)
    assert columns(text, "fc1") == ["yes", "512 B", "160 B", "336 B"]
    # out's logits (16 x 3) are read by the loss's gradient; W (8 x 3) + b (3) = 108 B
    assert columns(text, "out") == ["yes", "192 B", "108 B", "232 B"]
    sgd = two_dense("sgd").summary(batch_size=16)
    assert columns(sgd, "fc1")[3] == "0"                  # plain SGD keeps no state


def test_expand_nested_rows_and_trainable_column():
    g = Graph()
    x = g.input("img", (None, 3, 8, 8))
    y = g.inception(x, 4, (2, 4), (2, 4), 4, name="inc")
    z = g.add(g.flatten(y), g.param("offset", (16 * 64,), trainable=False))
    text = Model(g, inputs=x, outputs=z).summary(memory=False, expand_nested=True)
    lines = text.splitlines()
    nested = [line for line in lines if line.startswith("  ")]
    assert [line.split()[0] for line in nested] == ["b1x1", "b3x3_reduce", "b3x3", "b5x5_reduce",
                                                    "b5x5", "pool_proj"]
    counts = [int(cells(text, line[:14])["Param #"].replace(",", "")) for line in nested]
    # 1x1: 3*4+4; 3x3: 3*2+2 then 2*4*9+4; 5x5: 3*2+2 then 2*4*25+4; proj: 3*4+4
    assert counts == [16, 8, 76, 8, 204, 16]
    assert cells(text, "inc (inception)")["Param #"] == f"{sum(counts):,}"
    assert cells(text, "add (add)")["Trainable"] == "no" and "non-trainable 1,024" in text
    assert len(Model(g, inputs=x, outputs=z).summary(memory=False).splitlines()) == len(lines) - 6


def test_layer_view_toggles():
    g = Graph()
    x = g.input("x", (None, 4))
    y = g.dense(x, 3, activation="tanh", name="fc")
    g.add(y, g.param("shift", (3,), trainable=False), name="shifted")
    assert "fc (dense + tanh)" in plot_model(g).source
    assert "fc (dense)" in plot_model(g, show_activations=False).source
    shown = plot_model(g, show_trainable=True).source
    assert "params 15\ntrainable" in shown and "frozen" in shown
    assert "trainable" not in plot_model(g).source
