"""The step guard's spans: variables packed side by side (graphnn.state.packed)
are copied and checked as one span, and the undo still restores every byte
and names the right update."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim
from graphnn.guard import StepGuard, _spans, finite
from graphnn.state import ALIGN, packed


def test_packed_arrays_keep_their_values_and_share_one_aligned_block():
    rng = np.random.default_rng(0)
    arrays = {"w": rng.normal(size=(3, 5)).astype("float32"), "b": rng.normal(size=7).astype("float32"),
              "s": np.arange(4.0), "e": np.zeros((0, 3), "float32")}
    out = packed(arrays)
    assert list(out) == list(arrays)
    for name, a in arrays.items():
        assert out[name].dtype == a.dtype and out[name].shape == a.shape
        assert np.array_equal(out[name], a)
        assert out[name].flags.c_contiguous and out[name].flags.writeable
        assert out[name].ctypes.data % ALIGN == 0
    assert out["w"].base is out["b"].base is out["e"].base       # one block per dtype
    assert out["s"].base is not out["w"].base
    # the gap after 'b' (7 floats of a 64-byte slot) holds zeros, which a check may read
    start = out["b"].ctypes.data - out["w"].ctypes.data
    span = out["w"].base.view(np.uint8)[out["w"].ctypes.data - out["w"].base.ctypes.data:][:start + ALIGN]
    assert not span[start + 28:].any()


def test_a_block_filled_by_its_views_is_one_span_and_a_sparse_one_is_not():
    block = packed({"a": np.ones(16, "float32"), "b": np.ones(16, "float32"),
                    "c": np.ones(1000, "float32")})
    dense = _spans([block["a"], block["b"]])
    assert len(dense) == 1 and dense[0].size == 32              # a and b, side by side
    sparse = _spans([block["a"], block["c"]])                   # b, between them, is not written:
    assert len(dense) == 1 and len(sparse) == 1                 # c fills most of the block
    lone = _spans([block["a"]])
    assert len(lone) == 1 and lone[0] is block["a"]
    far = packed({"a": np.ones(4, "float32"), "gap": np.ones(4000, "float32"), "z": np.ones(4, "float32")})
    assert [s.size for s in _spans([far["a"], far["z"]])] == [4, 4]   # mostly gap: each alone


def test_finite_agrees_with_numpy_on_every_layout():
    rng = np.random.default_rng(1)
    for a in (rng.normal(size=37).astype("float32"), rng.normal(size=(4, 6)),
              np.full(3, 1e30, "float32"), np.array([], "float32")):
        for bad in (None, np.nan, np.inf, -np.inf):
            b = a.copy()
            if bad is not None and b.size:
                b.reshape(-1)[b.size // 2] = bad
            with np.errstate(over="ignore", invalid="ignore"):
                assert finite(b) == bool(np.isfinite(b).all())


def _model(optimizer, activation="tanh"):
    g = Graph()
    x = g.input("x", (None, 3))
    h = g.dense(x, 4, activation=activation, name="hidden")
    model = Model(g, inputs=x, outputs=g.dense(h, 2, name="out"), seed=0)
    model.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    return model


@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.9), lambda: optim.Adam(0.01)],
                         ids=["sgd-momentum", "adam"])
def test_weights_and_state_are_packed_and_the_guard_copies_a_span_per_block(make):
    model = _model(make())
    x, y = np.ones((2, 3), "float32"), np.array([0, 1])
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    ex = next(e for k, e in model._executors.items() if k[0] == "train")
    StepGuard().run(ex)
    undo = ex._step_undo
    written = {name for _, name in undo.writes}
    assert {"hidden/W", "hidden/b", "out/W", "out/b"} <= written
    blocks = {id(model.variables[name].base) for name in written}
    assert len(undo.spans) == len(blocks) <= 3          # weights, optimizer state (+ a scalar step)


def _first_bad_update(ex, x, y):
    """Run the step of ``ex``'s program unguarded, on a copy of its variables:
    (node, variable) of the first update, in program order, that writes a NaN
    or inf, or None; and whether the forward pass stayed finite."""
    from graphnn.runtime import Executor
    probe = Executor(ex.program, {k: v.copy() for k, v in ex.variables.items()})
    probe.feed({"x": x, "target": y})
    with np.errstate(all="ignore"):
        for ins, call in zip(probe.program.instructions, probe.calls):
            try:
                call()
            except FloatingPointError:              # the loss check, before any update
                return None, False
            bad = [o for o in ins.outputs if probe.program.buffers[o].persistent
                   and not np.isfinite(probe.views[o]).all()]
            if bad:
                return (ins.node, bad[0]), True
    return None, True


def test_an_overflow_is_undone_to_the_byte_and_the_first_update_at_fault_named():
    model = _model(optim.SGD(1e38), activation="relu")   # gradients of ~100: p - lr g overflows
    rng = np.random.default_rng(0)
    x, y = (rng.normal(size=(2, 3)) * 100).astype("float32"), np.array([0, 1])
    model.learning_rate = 1e-3                      # a first, finite step binds the program
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, shuffle=False)
    model.learning_rate = 1e38
    ex = next(e for k, e in model._executors.items() if k[0] == "train")
    for _ in range(20):
        expected, forward_finite = _first_bad_update(ex, x, y)
        assert forward_finite, "the case should overflow in an update, not in the loss"
        before = {k: v.copy() for k, v in model.variables.items()}
        if expected is None:
            model.fit(x, y, epochs=1, batch_size=2, verbose=0, shuffle=False)
            continue
        with pytest.raises(FloatingPointError) as info:
            model.fit(x, y, epochs=1, batch_size=2, verbose=0, shuffle=False)
        assert f"node {expected[0]!r}" in str(info.value)
        for k, v in before.items():
            assert np.array_equal(model.variables[k], v), k
        return
    raise AssertionError("the updates never overflowed")
