"""Programs: plain data that round-trips through JSON, a memory plan with no
overlap between live buffers, and planned runs equal to unplanned ones."""
from __future__ import annotations

import json

import numpy as np
from graphnn.compiler.emit import emit_program
from graphnn.compiler.ir import add_op, new_graph
from graphnn.compiler.pipeline import build_program, check_graph, prune
from graphnn.compiler.plan import plan_memory
from graphnn.runtime import Executor, Program
from hypothesis import given, settings
from hypothesis import strategies as st

from graphnn import Graph, Model
from tests.runtime.checker import overlapping_buffers, unplanned


def mlp_training_program(batch=16):
    g = Graph(dtype="float64")
    x = g.input("x", (None, 6))
    h = g.dense(x, 8, activation="tanh", name="h")
    h2 = g.dense(h, 8, activation="relu", name="h2")
    out = g.dense(g.add(h, h2), 3, name="out")
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="softmax_cross_entropy", optimizer="adam")
    return model, model.program("train", batch)


def test_program_round_trips_through_json():
    _, program = mlp_training_program()
    again = Program.from_dict(json.loads(json.dumps(program.to_dict())))
    assert again == program and str(again) == str(program)


def test_training_plan_has_no_overlap_and_beats_naive():
    _, program = mlp_training_program()
    assert overlapping_buffers(program) == []
    m = program.memory
    assert m.lower_bound_bytes <= m.planned_bytes < m.naive_bytes


def test_planned_run_equals_unplanned_run_exactly():
    model, program = mlp_training_program(batch=5)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(size=(5, 6)), "target": rng.integers(0, 3, 5)}
    results = []
    for p in (program, unplanned(program)):
        variables = {k: v.copy() for k, v in model.variables.items()}
        out = Executor(p, variables).run(feeds)
        results.append(({k: np.array(v) for k, v in out.items()}, variables))
    (out_a, var_a), (out_b, var_b) = results
    for k in out_a:
        assert np.array_equal(out_a[k], out_b[k])
    for k in var_a:
        assert np.array_equal(var_a[k], var_b[k])


def test_plan_memory_on_intervals_is_optimal_for_a_chain():
    sizes = {f"b{i}": 100 for i in range(6)}
    lifetimes = {f"b{i}": (i, i + 1) for i in range(6)}
    _offsets, report = plan_memory(sizes, lifetimes)
    assert report.planned_bytes == report.lower_bound_bytes == 256
    assert report.naive_bytes == 6 * 128


def _overlaps(offsets, sizes, lifetimes):
    """Pairs of storages alive at one step whose byte ranges meet (a brute-force check)."""
    names = sorted(sizes)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if lifetimes[a][0] <= lifetimes[b][1] and lifetimes[b][0] <= lifetimes[a][1]
            and offsets[a] < offsets[b] + sizes[b] and offsets[b] < offsets[a] + sizes[a]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(-1, 30), st.integers(0, 12)),
                min_size=1, max_size=60),
       st.booleans())
def test_plan_memory_never_overlaps_live_storages(items, search):
    sizes = {f"s{i}": size for i, (size, _, _) in enumerate(items)}
    lifetimes = {f"s{i}": (start, start + length) for i, (_, start, length) in enumerate(items)}
    offsets, report = plan_memory(sizes, lifetimes, search=search)
    assert _overlaps(offsets, sizes, lifetimes) == []
    assert all(o % 64 == 0 for o in offsets.values())
    top = max(offsets[n] + sizes[n] for n in sizes)
    assert report.lower_bound_bytes <= report.planned_bytes and top <= report.planned_bytes
    # the lower bound by brute force: the most bytes (rounded up to 64) alive at one step
    steps = range(min(s for s, _ in lifetimes.values()), max(e for _, e in lifetimes.values()) + 1)
    assert report.lower_bound_bytes == max(
        sum(-(-sizes[n] // 64) * 64 for n, (s, e) in lifetimes.items() if s <= t <= e) for t in steps)


def test_the_thorough_search_never_ends_above_the_fast_plan():
    rng = np.random.default_rng(3)
    sizes = {f"s{i}": int(rng.integers(1, 4000)) for i in range(150)}
    lifetimes = {n: (int(s), int(s + rng.integers(0, 20))) for n, s in
                 zip(sizes, rng.integers(0, 100, len(sizes)))}
    fast = plan_memory(sizes, lifetimes)[1].planned_bytes
    assert plan_memory(sizes, lifetimes, search=True)[1].planned_bytes <= fast


OPS_DRAWN = ["relu", "tanh", "sigmoid", "leaky_relu", "softmax", "add", "add_n", "bias_add",
             "linear", "view", "softplus"]


@st.composite
def random_dags(draw):
    """Random DAGs over one input: elementwise ops (some in place, some with
    scratch), sums with repeated operands, biases (params), and views."""
    n = draw(st.integers(2, 16))
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from(OPS_DRAWN))
        k = {"add": 2, "add_n": draw(st.integers(2, 3))}.get(kind, 1)
        srcs = [draw(st.integers(-1, i - 1)) for _ in range(k)]
        ops.append((kind, srcs))
    outs = draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=3))
    return ops, sorted(outs)


def build_random(ops, outs):
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 3), dtype="float64")
    add_op(g, "b", "constant", [], value=[0.5, -1.0, 2.0], shape=(3,), dtype="float64")
    names = []
    for i, (kind, srcs) in enumerate(ops):
        ins = ["x" if s < 0 else names[s] for s in srcs]
        if kind == "bias_add":
            names.append(add_op(g, f"n{i}", "bias_add", [ins[0], "b"]))
        elif kind == "view":              # reshape then flatten: a view of a view
            add_op(g, f"n{i}/r", "reshape", [ins[0]], shape=(None, 1, 3))
            names.append(add_op(g, f"n{i}", "flatten", [f"n{i}/r"]))
        else:
            names.append(add_op(g, f"n{i}", kind, ins))
    used = {s for _, srcs in ops for s in srcs}
    outputs = sorted({f"n{i}" for i in range(len(ops)) if i not in used} | {f"n{i}" for i in outs})
    return check_graph(prune(g, outputs), outputs), outputs


@settings(max_examples=1000, deadline=None)
@given(random_dags(), st.integers(1, 5), st.booleans())
def test_random_dags_plan_without_overlap_and_run_as_unplanned(dag, batch, fuse):
    g, outputs = build_random(*dag)
    program = build_program(g, outputs, batch, fuse=fuse)
    assert overlapping_buffers(program) == []
    assert program.memory.planned_bytes >= program.memory.lower_bound_bytes
    x = np.random.default_rng(batch).normal(size=(batch, 3))
    a = Executor(program).run({"x": x})
    b = Executor(unplanned(program)).run({"x": x})
    reference = Executor(build_program(g, outputs, batch, fuse=False)).run({"x": x})
    for k in outputs:
        assert np.array_equal(a[k], b[k])
        np.testing.assert_allclose(a[k], reference[k], rtol=1e-13, atol=1e-15)


def test_view_of_a_result_computed_in_place():
    """flatten(relu(bias_add(...))): relu runs over bias_add's bytes, and the
    flatten view must follow it there."""
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 2, 3), dtype="float64")
    add_op(g, "b", "constant", [], value=[1.0, -1.0, 0.5], shape=(3,), dtype="float64")
    add_op(g, "s", "bias_add", ["x", "b"], axis=-1)
    add_op(g, "t", "tanh", ["s"])
    add_op(g, "r", "relu", ["t"])
    add_op(g, "f", "flatten", ["r"])
    add_op(g, "y", "tanh", ["f"])
    g = check_graph(g, ["y"])
    program = emit_program(g, ["y"], 4)
    assert [i.inplace for i in program.instructions] == [[], ["s"], ["t"], ["f"]]
    assert overlapping_buffers(program) == []
    x = np.random.default_rng(0).normal(size=(4, 2, 3))
    expected = np.tanh(np.maximum(np.tanh(x + [1.0, -1.0, 0.5]), 0)).reshape(4, 6)
    np.testing.assert_allclose(Executor(program).run({"x": x})["y"], expected, rtol=1e-14)
