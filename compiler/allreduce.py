"""insert_allreduce: the gradient all-reduce of data-parallel training, as graph nodes.

Given a training graph (backward pass and optimizer updates appended), every
trainable parameter's gradient is summed over the ranks before anything reads
it. Gradients are grouped into buckets of about ``bucket_bytes`` in the order
the backward pass completes them (Horovod's tensor fusion), so a step makes a
few large collectives rather than one small one per parameter:

    share  = input ()                                  fed: local samples / global samples
    bucket = allreduce_bucket(share, dW2, db2, dW1, ...)   one flat arena buffer
    dW2'   = bucket_slice(bucket, start=0, shape=W2.shape)
    ...    every reader of dW2 (the update, a clipping norm) now reads dW2'

The share weights each rank's mean-loss gradient by its part of the global
batch, so the sum is the global batch's gradient even when the parts differ
(the last partial batch, a batch that does not divide by the ranks).

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.pipeline import build_program, check_graph, training_graph
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
>>> _ = add_op(g, "t", "input", [], shape=(None, 2), dtype="float32")
>>> _ = add_op(g, "W", "param", [], shape=(3, 2), dtype="float32")
>>> _ = add_op(g, "y", "matmul", ["x", "W"])
>>> _ = add_op(g, "loss", "mse", ["y", "t"])
>>> train, _ = training_graph(check_graph(g, ["loss", "y"]), "loss", ["y"], {"name": "sgd", "lr": 0.1})
>>> program = build_program(insert_allreduce(train), ["loss", "y"], batch_size=4)
>>> [i.kernel for i in program.instructions if "bucket" in i.kernel]
['allreduce_bucket', 'bucket_slice']
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .errors import GraphError, Problem
from .ir import add_op, copy_graph, new_graph, operands, topological_order
from .ops import OPS, numel
from .rewrite import Rewriter

SHARE = "allreduce/share"       # the fed scalar: this rank's fraction of the global batch
BUCKET_BYTES = 4 << 20          # Horovod fuses up to 64 MB; a few MB already amortize latency
PER_SAMPLE_LOSSES = ("mse", "l1", "softmax_cross_entropy", "cross_entropy",
                     "binary_cross_entropy", "kl_divergence", "gaussian_kl")


def _example_two_layer_graph() -> nx.MultiDiGraph:
    """For the examples: the checked graph h = x @ W1, y = h @ W2, loss = mse(y, t), with
    inputs x (N, 3) and t (N, 2) and params W1 (3, 4) and W2 (4, 2)."""
    from .pipeline import check_graph  # the pipeline is for the examples only
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    add_op(g, "t", "input", [], shape=(None, 2), dtype="float32")
    add_op(g, "W1", "param", [], shape=(3, 4), dtype="float32")
    add_op(g, "W2", "param", [], shape=(4, 2), dtype="float32")
    add_op(g, "h", "matmul", ["x", "W1"])
    add_op(g, "y", "matmul", ["h", "W2"])
    add_op(g, "loss", "mse", ["y", "t"])
    return check_graph(g, ["loss", "y"])


def trained_gradients(g: nx.MultiDiGraph) -> dict[str, str]:
    """{parameter: its gradient node} for every optimizer update in ``g``
    (batch norm's running averages update ``state`` nodes, not parameters).

    >>> from graphnn.compiler.pipeline import training_graph
    >>> g = _example_two_layer_graph()       # checked: y = (x @ W1) @ W2, loss = mse(y, t)
    >>> train, _ = training_graph(g, "loss", ["y"], {"name": "sgd", "lr": 0.1})
    >>> trained_gradients(train)
    {'W1': 'h/grad_matmul_1', 'W2': 'y/grad_matmul_1'}
    """
    grads = {}
    for n, d in g.nodes(data=True):
        if OPS[d["op"]].kind != "update":
            continue
        ins = operands(g, n)
        if g.nodes[ins[0]]["op"] != "param":
            continue
        grad = ins[1]
        if g.nodes[grad]["op"] == "multiply" and \
                any(g.nodes[i]["op"] == "clip_scale" for i in operands(g, grad)):
            grad = operands(g, grad)[0]     # clip by the global norm of the summed gradients
        grads[ins[0]] = grad
    return grads


def _check_mean_losses(g):
    """A summed (not averaged) loss would need another weighting: refuse it by name."""
    problems = [Problem(n, d["op"], "distributed training averages each rank's mean loss; "
                        "this loss sums over the batch (reduction='sum'): use 'mean'")
                for n, d in g.nodes(data=True)
                if d["op"] in PER_SAMPLE_LOSSES and d.get("reduction", "mean") != "mean"]
    if problems:
        raise GraphError(problems)


def buckets_of(g: nx.MultiDiGraph, grads: dict[str, str], bucket_bytes: int) -> list[list[str]]:
    """Parameters grouped into buckets: in the order their gradients appear in a
    topological order of ``g`` (the backward pass reaches the last layer first),
    one dtype per bucket, each closed once it holds ``bucket_bytes`` or more.

    >>> from graphnn.compiler.pipeline import training_graph
    >>> g = _example_two_layer_graph()       # checked: y = (x @ W1) @ W2, loss = mse(y, t)
    >>> train, _ = training_graph(g, "loss", ["y"], {"name": "sgd", "lr": 0.1})
    >>> grads = trained_gradients(train)
    >>> buckets_of(train, grads, 4 << 20), buckets_of(train, grads, 1)    # the last layer's first
    ([['W2', 'W1']], [['W2'], ['W1']])
    """
    position = {n: i for i, n in enumerate(topological_order(g))}
    buckets, size, dtype = [], 0, None
    for param in sorted(grads, key=lambda p: (position[grads[p]], p)):
        d = g.nodes[grads[param]]
        nbytes = numel(d["shape"]) * np.dtype(d["dtype"]).itemsize
        if not buckets or size >= bucket_bytes or d["dtype"] != dtype:
            buckets.append([])
            size, dtype = 0, d["dtype"]
        buckets[-1].append(param)
        size += nbytes
    return buckets


def insert_allreduce(g: nx.MultiDiGraph, bucket_bytes: int = BUCKET_BYTES) -> nx.MultiDiGraph:
    """A copy of training graph ``g`` whose updates read gradients summed over ranks.

    >>> from graphnn.compiler.pipeline import training_graph
    >>> g = _example_two_layer_graph()       # checked: y = (x @ W1) @ W2, loss = mse(y, t)
    >>> train, _ = training_graph(g, "loss", ["y"], {"name": "sgd", "lr": 0.1})
    >>> summed = insert_allreduce(train, bucket_bytes=1)        # one bucket per gradient
    >>> sorted(set(summed) - set(train))
    ['W1/allreduced_grad', 'W2/allreduced_grad', 'allreduce/bucket0', 'allreduce/bucket1', 'allreduce/share']
    >>> from graphnn.compiler.ir import operands
    >>> operands(summed, "W1/update")
    ['W1', 'W1/allreduced_grad', 'optimizer/lr']
    >>> insert_allreduce(g)                   # no training: no update, no gradient
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 1 problem in the graph:
      node '<graph>': the graph has no optimizer update: there is no gradient to all-reduce
    """
    if not (isinstance(bucket_bytes, int) and bucket_bytes > 0):
        raise ValueError(f"bucket_bytes must be a positive int, got {bucket_bytes!r}")
    grads = trained_gradients(g)
    if not grads:
        raise GraphError("the graph has no optimizer update: there is no gradient to all-reduce")
    _check_mean_losses(g)
    g = copy_graph(g)
    rw = Rewriter(g, role="allreduce")
    rw.emit(SHARE, "input", [], shape=(), dtype=g.nodes[next(iter(grads.values()))]["dtype"])
    for k, params in enumerate(buckets_of(g, grads, bucket_bytes)):
        bucket = rw.emit(f"allreduce/bucket{k}", "allreduce_bucket",
                         [SHARE, *(grads[p] for p in params)])
        start = 0
        for param in params:
            grad = grads[param]
            readers = [(r, port) for _, r, port in g.out_edges(grad, data="port") if r != bucket]
            shape = tuple(g.nodes[grad]["shape"])
            summed = rw.emit(f"{param}/allreduced_grad", "bucket_slice", [bucket],
                             start=start, shape=shape)
            start += numel(shape)
            for reader, port in readers:
                rw.rewire(reader, port, summed)
    return g
