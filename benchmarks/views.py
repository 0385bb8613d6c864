"""How long every view of every example takes to draw, and how big it is.

For each example model (and a 60-layer MLP) and each view, the time of
``plot_model`` plus graphviz's ``dot`` rendering SVG (wall clock, one run; the
limit the views are held to is 10 s), the boxes drawn and the picture's size.
``--images FOLDER`` also writes the README's pictures there.

    .venv/bin/python benchmarks/views.py [--images docs/images]
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time

from graphnn import Graph, Model, optim, plot_model
from graphnn.demo import digits_cnn

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mlp60(seed=0):
    g = Graph()
    h = g.input("pixels", (None, 784))
    for _ in range(60):
        h = g.dense(h, 64, activation="relu")
    return Model(g, inputs="pixels", outputs=g.dense(h, 10, name="logits"), seed=seed)


MODELS = {   # name -> (builder, loss)
    "demo (digits CNN)": (digits_cnn, "softmax_cross_entropy"),
    "a_greater_than_b": (lambda: example("a_greater_than_b").build(), "binary_cross_entropy"),
    "a_approx_b": (lambda: example("a_approx_b").build(), "binary_cross_entropy"),
    "mnist_mlp": (lambda: example("mnist_mlp").build(), "softmax_cross_entropy"),
    "mnist_cnn": (lambda: example("mnist_cnn").build(), "softmax_cross_entropy"),
    "mnist_inception": (lambda: example("mnist_inception").build(), "softmax_cross_entropy"),
    "mnist_lstm": (lambda: example("mnist_lstm").build("lstm"), "softmax_cross_entropy"),
    "mnist_gru": (lambda: example("mnist_lstm").build("gru"), "softmax_cross_entropy"),
    "mnist_vae": (lambda: example("mnist_vae").build_vae(), "binary_cross_entropy"),
    "mnist_autoencoder": (lambda: example("mnist_autoencoder").build(), "mse"),
    "mnist_siamese": (lambda: example("mnist_siamese").build(), "binary_cross_entropy"),
    "mlp60 (60 x dense 64)": (mlp60, "softmax_cross_entropy"),
}
VIEWS = {   # name -> plot_model arguments
    "graph": {},
    "graph, expand_nested": {"expand_nested": True},
    "training": {"view": "training"},
    "compiled": {"view": "compiled"},
    "graph, expand_repeats": {"expand_repeats": True},
    "training, expand_repeats": {"view": "training", "expand_repeats": True},
    "compiled, expand_repeats": {"view": "compiled", "expand_repeats": True},
}


def measure(model, kwargs, limit=60):
    start = time.perf_counter()
    dot = plot_model(model, **kwargs)
    try:
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.source, capture_output=True, text=True,
                             timeout=limit, check=True).stdout
    except subprocess.TimeoutExpired:
        return float("inf"), len(re.findall(r"^\s+\w+ \[label=", dot.source, flags=re.MULTILINE)), "killed"
    seconds = time.perf_counter() - start
    boxes = len(re.findall(r"^\s+\w+ \[label=", dot.source, flags=re.MULTILINE))
    size = re.search(r'<svg width="(\d+)pt" height="(\d+)pt"', svg)
    return seconds, boxes, f"{size.group(1)} x {size.group(2)}" if size else "?"


def images(folder):
    """The README's pictures: net.svg, memory.png and curves.png as ``make demo``
    writes them (copied from a demo run), the layer view and one layer of the
    compiled step of the same model, and the LSTM example's layer view."""
    import shutil
    import tempfile

    from graphnn.demo import run_demo
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory() as out:
        run_demo(out=out, verbose=0)
        for name in ("net.svg", "memory.png", "curves.png"):
            shutil.copy(os.path.join(out, name), os.path.join(folder, name))
    model = digits_cnn()
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(3e-3), metrics=["accuracy"])
    plot_model(model, os.path.join(folder, "layers.svg"))
    plot_model(model, os.path.join(folder, "compiled_hidden.svg"), view="compiled", focus="hidden")
    lstm = example("mnist_lstm").build("lstm")
    lstm.compile(loss="softmax_cross_entropy", optimizer="adam")
    plot_model(lstm, os.path.join(folder, "lstm_layers.svg"), expand_nested=True)
    made = ["net.svg", "memory.png", "curves.png", "layers.svg", "compiled_hidden.svg", "lstm_layers.svg"]
    return [os.path.join(folder, m) for m in made]


def main(argv):
    print(f"{'model':24s} {'view':26s} {'seconds':>8s} {'boxes':>6s}  picture (pt)")
    worst = 0.0
    for name, (build, loss) in MODELS.items():
        model = build()
        model.compile(loss=loss, optimizer="adam")
        model.program("train", 32)                     # compile once, outside the timings
        for view, kwargs in VIEWS.items():
            seconds, boxes, size = measure(model, kwargs)
            worst = max(worst, seconds)
            print(f"{name:24s} {view:26s} {seconds:8.2f} {boxes:6d}  {size}", flush=True)
    print(f"slowest view: {worst:.2f} s")
    if "--images" in argv:
        for path in images(argv[argv.index("--images") + 1]):
            print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
