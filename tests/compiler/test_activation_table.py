"""Every activation of the op table, driven by the table itself: a new
activation record is checked here without a line added.

- the builder knows it as a method, as ``activation=`` and as a spec ``type``;
- after a dense layer it fuses into the GEMM's epilogue (of the prediction
  program) when its record says it can (elementwise, in place), and fused
  programs compute what unfused ones do, training step and prediction, in float64.
"""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler.fuse import EPILOGUE_KINDS
from graphnn.compiler.ops import OPS, with_role

from graphnn import Graph, Model, optim
from graphnn.spec import load_spec
from tests.helpers import sample

ACTIVATIONS = sorted(with_role("activation"))


def _dense(activation_kind, spec=False):
    layers = [{"type": "input", "name": "x", "shape": [None, 6]},
              {"type": "dense", "name": "h", "inputs": ["x"], "units": 5, "activation": activation_kind},
              {"type": "dense", "name": "y", "inputs": ["h"], "units": 3}]
    g = Graph("float64")
    x = g.input("x", (None, 6))
    y = g.dense(g.dense(x, 5, activation=activation_kind, name="h"), 3, name="y")
    return (load_spec({"dtype": "float64", "layers": layers}) if spec else g), y.name


def test_the_table_has_the_activations_the_builder_always_had():
    assert {"linear", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "swish", "gelu",
            "softmax", "log_softmax"} <= set(ACTIVATIONS)


@pytest.mark.parametrize("kind", ACTIVATIONS)
def test_builder_method_and_spec_type_apply_the_op(kind):
    g = Graph()
    x = g.input("x", (None, 4))
    assert getattr(g, kind)(x).op == kind
    spec = load_spec({"layers": [{"type": "input", "name": "x", "shape": [None, 4]},
                                 {"type": kind, "name": "a", "inputs": ["x"]}]})
    assert spec.nx.nodes["a"]["op"] == kind


@pytest.mark.parametrize("kind", ACTIVATIONS)
def test_after_a_dense_layer_it_fuses_and_fused_equals_unfused(kind):
    rng = np.random.default_rng(0)
    x, t = sample("wide", (7, 6), rng), rng.integers(0, 3, size=7)
    results = {}
    for fuse in (True, False):
        g, y = _dense(kind, spec=not fuse)          # the spec file builds the same graph
        model = Model(g, inputs="x", outputs=y, seed=1)
        model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1), fuse=fuse)
        program = model.program("predict", 7)   # (in training, a gradient that reads
                                                 # the activation's input keeps it apart)
        model.fit(x, t, epochs=1, batch_size=7, verbose=0, shuffle=False)
        results[fuse] = (model.predict(x), program)
    (fused, program), (unfused, _) = results[True], results[False]
    np.testing.assert_allclose(fused, unfused, rtol=1e-12, atol=1e-12)
    op = OPS[kind]
    if op.fusion in EPILOGUE_KINDS and op.inplace and not op.view:
        first = program.instructions[0]
        assert first.kernel == "fused" and first.attrs["epilogue"][-1]["op"] == kind
