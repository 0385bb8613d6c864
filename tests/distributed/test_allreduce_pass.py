"""The all-reduce as graph nodes, checked in one process (no MPI needed): where the
pass puts the buckets, what the planned Program shows, and that a step with the
all-reduce inserted computes the single-process step scaled by this rank's share;
and graphnn.distributed.fit on a stand-in communicator of one process, so that a
change to Model's internals breaks a test even where MPI is not installed."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from graphnn.compiler.allreduce import SHARE, buckets_of, insert_allreduce, trained_gradients
from graphnn.compiler.ops import OPS
from graphnn.compiler.training import target_spec
from graphnn.runtime import Executor

from graphnn import Graph, GraphError, Model, optim
from graphnn.distributed import training_program


class OneRank:
    """A communicator of one process: its sum over ranks is the buffer itself."""

    def Get_size(self):
        return 1


def mlp(optimizer, loss="softmax_cross_entropy", seed=0):
    g = Graph()
    x = g.input("x", (None, 6))
    h = g.dense(x, 5, activation="tanh")
    model = Model(g, inputs=x, outputs=g.dense(h, 3), seed=seed)
    model.compile(loss=loss, optimizer=optimizer)
    return model


def batch(n=8):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def train_graph(model):
    return model._build(target_spec(model._checked, model._loss, model.outputs))["train"]


def test_every_gradient_is_in_one_bucket_and_every_update_reads_the_sum():
    model = mlp(optim.SGD(0.1, momentum=0.9))
    g = insert_allreduce(train_graph(model), bucket_bytes=64)     # small: several buckets
    buckets = [n for n, d in g.nodes(data=True) if d["op"] == "allreduce_bucket"]
    assert len(buckets) > 1
    packed = [p for b in buckets for p in g.predecessors(b) if p != SHARE]
    assert len(packed) == len(set(packed)) == 4
    for n, d in g.nodes(data=True):
        if OPS[d["op"]].kind == "update":
            grad = next(u for u, _, k in g.in_edges(n, data="port") if k == 1)
            assert g.nodes[grad]["op"] == "bucket_slice", n


def test_one_large_bucket_holds_every_gradient_in_backward_order():
    model = mlp(optim.Adam(1e-3))
    g = train_graph(model)
    grads = trained_gradients(g)
    (bucket,) = buckets_of(g, grads, bucket_bytes=1 << 30)
    # the backward pass reaches the output layer first
    assert bucket.index("dense_1/W") < bucket.index("dense/W")


def test_program_shows_the_bucket_as_an_arena_buffer():
    model = mlp(optim.SGD(0.1))
    program = training_program(model, 4)
    text = str(program)
    assert "= allreduce_bucket(allreduce/share@" in text
    bucket = program.buffers["allreduce/bucket0"]
    assert bucket.offset is not None and bucket.shape == (6 * 5 + 5 + 5 * 3 + 3,)
    assert "allreduce/bucket0" in text.split("buffers:")[1]


@pytest.mark.parametrize("share", [1.0, 0.25])
def test_step_with_allreduce_is_the_plain_step_with_the_gradient_scaled_by_the_share(share):
    """Plain SGD: p_new = p - lr * grad, so the inserted step must move each
    weight by exactly ``share`` times the plain step's move."""
    x, y = batch()
    plain, dist = mlp(optim.SGD(0.1)), mlp(optim.SGD(0.1))
    before = {k: v.astype("float64") for k, v in plain.get_weights().items()}
    ex = Executor(plain.program("train", 8), plain.variables)
    ex.run({"x": x, "target": y})
    ex = Executor(training_program(dist, 8), dist.variables, comm=OneRank())
    ex.run({"x": x, "target": y, SHARE: share})
    for k, start in before.items():
        moved = plain.variables[k] - start
        np.testing.assert_allclose(dist.variables[k] - start, share * moved, rtol=1e-4,
                                   atol=1e-7, err_msg=k)


def test_clipping_by_global_norm_reads_the_summed_gradients():
    model = mlp(optim.SGD(0.1, clip_norm=1.0))
    g = insert_allreduce(train_graph(model))
    (clip,) = [n for n, d in g.nodes(data=True) if d["op"] == "clip_scale"]
    assert {g.nodes[p]["op"] for p in g.predecessors(clip)} == {"bucket_slice"}


def test_a_summed_loss_is_refused_by_name():
    g = Graph()
    x, t = g.input("x", (None, 3)), g.input("t", (None, 2))
    loss = g.mse(g.dense(x, 2), t, reduction="sum")
    model = Model(g, inputs=[x, t], outputs=[])
    model.compile(loss=loss, optimizer="sgd")
    with pytest.raises(GraphError, match="reduction='sum'"):
        insert_allreduce(train_graph(model))


def test_without_mpi4py_distributed_training_says_how_to_install(monkeypatch):
    from graphnn.runtime.kernels.collective import world
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # import mpi4py now fails
    with pytest.raises(ImportError, match=r"pip install 'graphnn\[mpi\]'"):
        world()


def test_distributed_view_draws_the_all_reduce_in_its_own_colour():
    from graphnn import plot_model
    from graphnn.viz import COLORS
    model = mlp(optim.SGD(0.1))
    dot = plot_model(model, view="distributed", batch_size=4).source
    bucket_node = dot[dot.index(": allreduce_bucket"):].split("]")[0]     # its attributes
    assert COLORS["allreduce"] in bucket_node
    assert "allreduce_bucket" not in plot_model(model, view="compiled", batch_size=4).source


class SelfComm(OneRank):
    """Enough of an MPI communicator of one process for graphnn.distributed.fit."""

    def Get_rank(self):
        return 0

    def allgather(self, value):
        return [value]

    def Bcast(self, buf, root=0):
        pass

    def Allreduce(self, send, recv, op=None):
        np.copyto(recv, send)

    def Abort(self, code=1):
        raise AssertionError("Abort is not called with one rank")


def test_distributed_fit_on_one_rank_is_fit():
    """The whole distributed loop (shares, the all-reduce op, metric sums, rank 0's
    callbacks) without MPI: on one rank it must train what fit trains."""
    from graphnn import distributed
    from graphnn.callbacks import EarlyStopping
    x, y = batch(53)
    plain, dist = mlp(optim.Adam(1e-2)), mlp(optim.Adam(1e-2))
    want = plain.fit(x, y, epochs=3, batch_size=10, verbose=0, callbacks=[EarlyStopping("loss")])
    got = distributed.fit(dist, x, y, epochs=3, batch_size=10, verbose=0, comm=SelfComm(),
                          callbacks=[EarlyStopping("loss")])
    assert got.history.keys() == want.history.keys()
    np.testing.assert_allclose(got.history["loss"], want.history["loss"], rtol=1e-6)
    for k, w in plain.get_weights().items():
        np.testing.assert_allclose(dist.variables[k], w, rtol=1e-6, atol=1e-7, err_msg=k)
