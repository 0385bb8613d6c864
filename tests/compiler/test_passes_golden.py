"""The graph after every pass, printed by compiler.printer and pinned for two
small graphs: what validate, infer, autodiff, updates, fuse, lower, schedule
and plan each did shows up as a readable diff. After an intended change, review
the diff and rewrite the files with
GRAPHNN_UPDATE_GOLDEN=1 pytest tests/compiler/test_passes_golden.py."""
from __future__ import annotations

import os

import pytest
from graphnn.compiler.printer import format_stage

from graphnn import Graph, Model, optim

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def dense_classifier():
    g = Graph()
    x = g.input("x", (None, 4))
    h = g.dense(x, 3, activation="relu", name="hidden")
    model = Model(g, inputs=x, outputs=g.dense(h, 2, name="logits"))
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1, momentum=0.9))
    return model, "train", 8


def conv_batch_norm_inference():
    g = Graph()
    x = g.input("img", (None, 1, 5, 5))
    h = g.conv2d(x, 2, 3, padding="same", name="conv")
    h = g.dropout(g.relu(g.batch_norm(h, name="bn")), 0.5, name="drop")
    model = Model(g, inputs=x, outputs=g.dense(g.flatten(h), 3, name="logits"))
    return model, "predict", 2


CASES = {f.__name__: f for f in (dense_classifier, conv_batch_norm_inference)}


def traced(name):
    model, purpose, batch = CASES[name]()
    stages = []
    program = model.program(purpose, batch, trace=lambda p, result: stages.append((p, format_stage(result))))
    text = "".join(f"== after {p} ==\n{listing}\n\n" for p, listing in stages)
    return model, purpose, batch, [p for p, _ in stages], program, text


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_pass_printed_matches_golden_file(name):
    *_, text = traced(name)
    path = os.path.join(GOLDEN, f"passes_{name}.txt")
    if os.environ.get("GRAPHNN_UPDATE_GOLDEN"):
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read()


def test_every_pass_reports_in_order_and_the_traced_program_is_the_usual_one():
    model, purpose, batch, passes, program, _ = traced("dense_classifier")
    assert passes == ["validate", "infer", "loss", "stabilize", "autodiff", "updates",
                      "fuse", "lower", "schedule", "plan"]
    assert str(program) == str(model.program(purpose, batch))
    model, purpose, batch, passes, program, _ = traced("conv_batch_norm_inference")
    assert passes == ["validate", "infer", "inference", "fuse", "lower", "schedule", "plan"]
    assert str(program) == str(model.program(purpose, batch))


def test_a_trace_given_to_compile_sees_the_programs_fit_compiles():
    import numpy as np
    g = Graph()
    x = g.input("x", (None, 2))
    model = Model(g, inputs=x, outputs=g.dense(x, 1))
    seen = []
    model.compile(loss="mse", optimizer="sgd", trace=lambda p, result: seen.append(p))
    model.fit(np.zeros((5, 2)), np.zeros((5, 1)), batch_size=4, verbose=0)
    assert seen.count("plan") == 2 and seen.count("autodiff") == 2    # batches of 4, then 1
