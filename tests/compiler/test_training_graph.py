"""Training-graph assembly without a Model: the loss, target, sample weights and
penalties added by ``compiler.training``, checked against NumPy formulas."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler import ShapeError, build_program, check_graph
from graphnn.compiler.ir import add_op, new_graph, operands
from graphnn.compiler.training import (
    TARGET,
    TOTAL,
    WEIGHTS,
    LossSpec,
    TargetSpec,
    add_loss,
    build_training_graph,
    graph_ends,
    target_inputs,
    target_spec,
)
from graphnn.runtime import Executor

RNG = np.random.default_rng(7)
X = RNG.normal(size=(6, 4))
W = RNG.normal(size=(4, 3))


def linear(penalty: float | None = None):
    """x (N, 4) @ W (4, 3), optionally with an L2 penalty on W; checked, float64."""
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 4), dtype="float64")
    add_op(g, "W", "param", [], shape=(4, 3), dtype="float64", init="zeros")
    add_op(g, "y", "matmul", ["x", "W"])
    ends = ["y"]
    if penalty is not None:
        add_op(g, "W/penalty", "l2_penalty", ["W"], scale=penalty)
        ends.append("W/penalty")
    return check_graph(g, ends)


def run(graph, loss, feeds):
    program = build_program(graph, [loss], len(X), fuse=False)
    return float(Executor(program, {"W": W.copy()}).run(feeds)[loss])


def test_named_loss_gets_a_target_like_the_output_and_the_mse_formula():
    g = linear()
    spec = LossSpec.named("l2")
    target = target_spec(g, spec, ["y"])
    assert target == TargetSpec((None, 3), "float64", False)
    built = add_loss(g, spec, target, ["y"])
    assert built.loss == "loss" and operands(built.graph, "loss") == ["y", TARGET]
    assert "loss" not in g, "the caller's graph is left as it was"
    t = RNG.normal(size=(6, 3))
    assert run(built.graph, built.loss, {"x": X, TARGET: t}) == pytest.approx(
        np.mean((X @ W - t) ** 2), rel=1e-12)


def test_sample_weights_are_the_third_operand_and_weight_each_row():
    g = linear()
    spec = LossSpec.named("mse")
    built = add_loss(g, spec, target_spec(g, spec, ["y"], weighted=True), ["y"], weight_dtype="float64")
    assert operands(built.graph, "loss") == ["y", TARGET, WEIGHTS]
    t, w = RNG.normal(size=(6, 3)), RNG.uniform(0, 2, size=6)
    expected = np.sum(w * ((X @ W - t) ** 2).sum(1)) / t.size
    assert run(built.graph, built.loss, {"x": X, TARGET: t, WEIGHTS: w}) == pytest.approx(expected, rel=1e-12)


def test_penalties_are_summed_into_the_total_loss():
    g = linear(penalty=0.3)
    spec = LossSpec.named("l1")
    built = add_loss(g, spec, target_spec(g, spec, ["y"]), ["y"])
    assert built.loss == TOTAL and operands(built.graph, TOTAL) == ["loss", "W/penalty"]
    t = RNG.normal(size=(6, 3))
    expected = np.mean(np.abs(X @ W - t)) + 0.3 * np.sum(W ** 2)
    assert run(built.graph, built.loss, {"x": X, TARGET: t}) == pytest.approx(expected, rel=1e-12)
    # penalties given explicitly: none at all
    alone = add_loss(g, spec, target_spec(g, spec, ["y"]), ["y"], penalties=[])
    assert alone.loss == "loss"


def test_class_loss_takes_labels_or_one_hot_rows():
    g = linear()
    spec = LossSpec.named("cross_entropy")
    assert target_spec(g, spec, ["y"]) == ((None,), "int64", False)
    assert target_spec(g, spec, ["y"], np.zeros((6, 3))) == ((None, 3), "float64", False)
    built = add_loss(g, spec, target_spec(g, spec, ["y"]), ["y"])
    labels = RNG.integers(0, 3, size=6)
    z = X @ W
    logp = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    expected = -np.mean(logp[np.arange(6), labels])
    assert run(built.graph, built.loss, {"x": X, TARGET: labels}) == pytest.approx(expected, rel=1e-12)


def test_a_loss_node_of_the_graph_reads_its_own_targets():
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 4), dtype="float64")
    add_op(g, "labels", "input", [], shape=(None, 3), dtype="float64")
    add_op(g, "W", "param", [], shape=(4, 3), dtype="float64", init="zeros")
    add_op(g, "y", "matmul", ["x", "W"])
    add_op(g, "err", "mse", ["y", "labels"])
    g = check_graph(g, ["y", *graph_ends(g)])
    spec = LossSpec(node="err")
    assert target_inputs(g, spec, ["x"]) == ["labels"]
    assert target_spec(g, spec, ["y"]) == (None, None, False)
    built = add_loss(g, spec, target_spec(g, spec, ["y"]), ["y"])
    assert built.loss == "err" and TARGET not in built.graph
    t = RNG.normal(size=(6, 3))
    assert run(built.graph, "err", {"x": X, "labels": t}) == pytest.approx(np.mean((X @ W - t) ** 2))


def test_one_sgd_step_of_the_training_graph_follows_the_mse_gradient():
    g = linear()
    spec = LossSpec.named("mse")
    built = build_training_graph(g, spec, target_spec(g, spec, ["y"]), ["y"],
                                 {"name": "sgd", "lr": 0.1}, fuse=False)
    assert built.loss == "loss" and "loss" in built.eval
    assert not any(d["op"] == "sgd_update" for _, d in built.eval.nodes(data=True))
    t = RNG.normal(size=(6, 3))
    program = build_program(built.train, [built.loss, "y"], 6, guard=(built.loss,), fuse=False)
    variables = {"W": W.copy()}
    variables.update({n: np.full(d["shape"], d["init"], dtype=d["dtype"])
                      for n, d in built.train.nodes(data=True) if d["op"] == "state"})
    Executor(program, variables).run({"x": X, TARGET: t})
    grad = 2 * X.T @ (X @ W - t) / t.size
    np.testing.assert_allclose(variables["W"], W - 0.1 * grad, rtol=1e-12)


def test_bad_loss_descriptions_are_named():
    g = linear()
    with pytest.raises(ValueError, match="not both or neither"):
        LossSpec()
    with pytest.raises(ValueError, match="not both or neither"):
        LossSpec(op="mse", node="y")
    with pytest.raises(ValueError, match="'relu' is not a loss op"):
        LossSpec(op="relu")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        LossSpec.named("hinge")
    with pytest.raises(ValueError, match="'y' is not a loss node"):
        LossSpec.resolve(LossSpec(node="y"), g)
    with pytest.raises(ValueError, match="'y' is not a loss node"):
        add_loss(g, LossSpec(node="y"), TargetSpec(None, None), ["y"])


def test_a_target_that_does_not_fit_the_output_is_a_shape_error_naming_the_loss():
    g = linear()
    with pytest.raises(ShapeError) as err:
        add_loss(g, LossSpec.named("mse"), TargetSpec((None, 5), "float64"), ["y"])
    assert err.value.nodes == ["loss"]


def test_loss_spec_config_round_trips_the_op_not_the_alias():
    for name in ("categorical_cross_entropy", "cross_entropy", "bce", "l2"):
        spec = LossSpec.named(name)
        assert LossSpec.from_config(spec.config()) == spec
    assert LossSpec.from_config(["node", "err"]) == LossSpec(node="err")
