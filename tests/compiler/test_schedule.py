"""A training step updates each weight with the gradient of the weights it
started from: checked against a program that computes gradients only."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler import build_program
from graphnn.compiler.autodiff import differentiate
from graphnn.compiler.ops import OPS
from graphnn.runtime import Executor

from graphnn import Model, optim
from graphnn.training import feeds_for
from tests.example_graphs import EXAMPLE_GRAPHS, data


def _drawing_nothing() -> list[str]:
    """The example graphs without a stateful (random) op: with one, the training
    and the gradient-only programs would draw differently."""
    def draws(name):
        g = EXAMPLE_GRAPHS[name]("float64")[0]
        return any(OPS[d["op"]].stateful for _, d in g.nx.nodes(data=True))
    return [name for name in sorted(EXAMPLE_GRAPHS) if not draws(name)]


@pytest.mark.parametrize("name", _drawing_nothing())
@pytest.mark.parametrize("fuse", [True, False])
def test_one_sgd_step_is_weights_minus_lr_times_gradient(name, fuse):
    g, x, out, loss, shape, classes = EXAMPLE_GRAPHS[name]("float64")
    model = Model(g, inputs=x, outputs=out, seed=2)
    model.compile(loss=loss, optimizer=optim.SGD(0.1), fuse=fuse)
    xs, ys = data(shape, classes, out.shape, 5)
    feeds, spec = feeds_for(model, xs, ys)
    built = model._build(spec)
    eval_graph = built["eval"]
    params = [n for n, d in eval_graph.nodes(data=True) if d["op"] == "param"]
    grads_graph, grads = differentiate(eval_graph, built["loss"], params)
    before = {k: v.copy() for k, v in model.variables.items()}
    expected = Executor(build_program(grads_graph, list(grads.values()), 5, fuse=fuse),
                        {k: v.copy() for k, v in before.items()}).run(feeds)
    train = Executor(model.program("train", 5, spec), model.variables)
    train.run(feeds)
    for p in params:
        np.testing.assert_allclose(model.variables[p], before[p] - 0.1 * expected[grads[p]],
                                   rtol=1e-12, atol=1e-15, err_msg=p)
