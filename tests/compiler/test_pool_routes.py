"""A training program's max pools keep their gradient's routes
(compiler/ops/pool.py, ``route_max_pools``): the pool's instruction writes a
second buffer, planned in the arena from the forward to the gradient, and the
gradient reads it instead of the pool's input. Prediction programs keep the
plain pool. (The kernels against window loops: tests/runtime/test_fast_kernels.py
and tests/compiler/test_blocked.py; whole programs against PyTorch:
tests/parity/test_conv_pool_blocks.py and test_pooling.py.)"""
from __future__ import annotations

import pytest
from graphnn.compiler.autodiff import differentiate
from graphnn.compiler.pipeline import build_program, check_graph

from graphnn import Graph

POOLS = [dict(pool_size=2), dict(pool_size=3, strides=2, padding=1), dict(pool_size=2, strides=1),
         dict(pool_size=2, ceil_mode=True), dict(pool_size=2, dilation=2), dict(pool_size=(2, 3), strides=(1, 2))]


def _programs(pool):
    """(training program, prediction program, pool node) of x -> max pool -> tanh."""
    g = Graph(dtype="float64")
    x = g.input("x", (None, 3, 7, 9))
    y = g.tanh(g.max_pool2d(x, **pool, name="pool"))
    checked = check_graph(g.nx, [y.name])
    predict = build_program(checked, [y.name], 4)
    t = g.input("t", checked.nodes[y.name]["shape"])
    loss = g.mse(y, t, reduction="sum", name="loss")
    checked, grads = differentiate(check_graph(g.nx, [y.name, loss.name]), loss.name, ["x"])
    return build_program(checked, [y.name, *grads.values()], 4), predict


@pytest.mark.parametrize("pool", POOLS, ids=[str(sorted(p.items())).replace(" ", "") for p in POOLS])
def test_the_training_pool_writes_its_routes_and_the_gradient_reads_only_them(pool):
    train, predict = _programs(pool)
    kernels = [i.kernel for i in train.instructions]
    assert "max_pool2d_grad" not in kernels and "max_pool2d" not in kernels
    (forward,) = [i for i in train.instructions if i.kernel == "max_pool2d_routed"]
    (backward,) = [i for i in train.instructions if i.kernel == "max_pool2d_routed_grad"]
    y, routes = forward.outputs[:2]
    kh, kw = (pool["pool_size"],) * 2 if isinstance(pool["pool_size"], int) else pool["pool_size"]
    n, c, oh, ow = train.buffers[y].shape
    assert train.buffers[routes].shape == (n, kh * kw, c, oh, ow) and train.buffers[routes].dtype == "int8"
    assert backward.inputs[1] == routes
    # nothing after the forward reads the pool's input: it need not live until the backward
    order = train.instructions.index(forward)
    assert all(forward.inputs[0] not in i.inputs for i in train.instructions[order + 1:])
    # the routes' bytes are the routes' own from the forward to the gradient (the checker
    # in tests/runtime/test_memory.py verifies every program's plan the same way)
    span = range(order, train.instructions.index(backward) + 1)
    lo, hi = train.buffers[routes].offset, train.buffers[routes].offset + train.buffers[routes].nbytes
    for step in span:
        ins = train.instructions[step]
        for name in ins.outputs:
            b = train.buffers[name]
            if name != routes and not b.persistent and step != order:
                assert b.offset + b.nbytes <= lo or b.offset >= hi, f"{name} overwrites the routes"
    assert "max_pool2d" in [i.kernel for i in predict.instructions]
    assert not {"max_pool2d_routed", "max_pool2d_routed_grad"} & {i.kernel for i in predict.instructions}


def test_a_gradient_of_another_value_keeps_the_unrouted_kernel():
    """max_pool2d_grad(dy, x, y) with y not the max pool of x (a hand-built graph)
    cannot take routes from a pool: it stays as it is."""
    from graphnn.compiler.ir import add_op, new_graph
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 1, 4, 4), dtype="float64")
    add_op(g, "dy", "input", [], shape=(None, 1, 2, 2), dtype="float64")
    add_op(g, "y", "avg_pool2d", ["x"], pool_size=2)
    add_op(g, "dx", "max_pool2d_grad", ["dy", "x", "y"], pool_size=2)
    program = build_program(check_graph(g, ["dx"]), ["dx"], 2)
    assert "max_pool2d_grad" in [i.kernel for i in program.instructions]


def _hand_built(*nodes):
    """x (2, 2, 4, 4) -> the given (name, op, inputs, attrs) nodes, as a user might write them."""
    from graphnn.compiler.ir import add_op, new_graph
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 2, 4, 4), dtype="float32")
    for name, op, inputs, attrs in nodes:
        add_op(g, name, op, inputs, **attrs)
    return g


ROUTED = ("p", "max_pool2d_routed", ["x"], {"pool_size": 2})


@pytest.mark.parametrize("nodes, named, says", [
    ([("r", "relu", ["x"], {}), ("routes", "max_pool_routes", ["r"], {"offsets": 4})],
     "routes", r"written by its operand's instruction.*max_pool2d_routed.*got relu"),
    ([("p", "max_pool2d", ["x"], {"pool_size": 2}), ("routes", "max_pool_routes", ["p"], {"offsets": 4})],
     "routes", r"got max_pool2d"),
    ([ROUTED], "p", (r"writes its max_pool_routes beside its result: needs exactly one max_pool_routes "
                     r"node reading it, got 0")),
    ([ROUTED, ("routes", "max_pool_routes", ["p"], {"offsets": 4}),
      ("again", "max_pool_routes", ["p"], {"offsets": 4})], "p", r"got 2 \('again', 'routes'\)"),
])
def test_a_hand_built_routes_node_used_wrongly_is_refused_naming_it(nodes, named, says):
    """max_pool_routes runs no kernel: its operand's instruction writes it. Read
    from any other op it was never written (a relu left it as it was; a plain pool
    failed at its first run unpacking its results); a routed pool without exactly
    one has nowhere, or two places, to write. validate names the node."""
    from graphnn.compiler.errors import GraphError
    g = _hand_built(*nodes)
    outputs = [n for n, _op, _i, _a in nodes]
    with pytest.raises(GraphError, match=rf"node '{named}' \(\w+\): .*{says}"):
        check_graph(g, outputs)


def test_routes_with_too_few_offsets_are_refused_when_bound():
    """A routes node whose offsets do not match the pool's window (its shape rule
    sees only the pool's output) is refused before the program runs, naming both."""
    from graphnn.runtime.executor import Executor
    g = _hand_built(ROUTED, ("routes", "max_pool_routes", ["p"], {"offsets": 3}))
    program = build_program(check_graph(g, ["p", "routes"]), ["p", "routes"], 2)
    with pytest.raises(ValueError, match=r"max_pool2d_routed: the routes hold 3 window offsets, the window has 4"):
        Executor(program)
