"""lower: rewrite every op that has no runtime kernel into ops that have one.

Each op says how in its record's ``lower`` hook (``compiler.ops``): a
convolution becomes im2col + GEMM, padded pooling becomes pad2d + pooling, a
fused node anchored on a convolution becomes a fused GEMM:

    conv2d(x, w)             -> y = reshape(matmul(reshape(w), im2col(pad2d(x))))
    conv2d_grad_weight(x, dy) -> reshape(transpose(sum_to(matmul(cols, reshape(dy)^T))))
    conv2d_grad_input(dy, w)  -> crop2d(gemm_col2im(reshape(w), reshape(dy)))
                                 (= col2im(matmul(reshape(w)^T, reshape(dy))), a batch chunk at a time)
    max/avg_pool2d, padded    -> pool(pad2d(x))   (and crop2d after the gradient)
    max_pool2d_grad(dy, x, y) -> max_pool2d_routed_grad(dy, routes), where y is
                                 max_pool2d_routed(x) writing routes beside y

The pass itself only walks the graph in order and calls the hooks with one
rewriter that shares equal nodes, so the columns of an input are built once
and read by both the forward convolution and its weight gradient.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.pipeline import check_graph
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 1, 5, 5), dtype="float32")
>>> _ = add_op(g, "w", "param", [], shape=(4, 1, 3, 3), dtype="float32")
>>> _ = add_op(g, "y", "conv2d", ["x", "w"], padding="same")
>>> sorted(d["op"] for _, d in lower(check_graph(g, ["y"])).nodes(data=True))
['im2col', 'input', 'matmul', 'pad2d', 'param', 'reshape', 'reshape']
"""
from __future__ import annotations

import networkx as nx

from .blocked import lower_pool, lower_pool_grad, lower_pool_then_relu, plan_blocks, plan_relu_moves
from .ir import copy_graph, op_attrs, operands, topological_order
from .ops import OPS
from .ops.pool import route_max_pools
from .rewrite import OPERAND_ROLE, Rewriter


def _needs_lowering(op, data) -> bool:
    return op.lower is not None and (op.lowers is None or op.lowers(data))


def lower(g: nx.MultiDiGraph, outputs=None) -> nx.MultiDiGraph:
    """Return a copy of ``g`` in which every op has a runtime kernel (or is a view).
    (``g`` itself when no op needs lowering.) ``outputs``: the program's outputs,
    which keep their layout; given them, a convolution read only by a max pool
    may be lowered in tile order (compiler/blocked.py), not without.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 1, 8, 8))
    >>> y = g.max_pool2d(g.conv2d(x, 8, 3, padding="same", activation="relu"), 2)
    >>> m = Model(g, inputs=x, outputs=g.flatten(y)); m.compile(loss="mse", optimizer="sgd")
    >>> passes = {}; _ = m.program("train", 2, trace=lambda name, result: passes.setdefault(name, result))
    >>> def ops(g): return sorted({d["op"] for _, d in g.nodes(data=True)} - {"input", "param", "state"})
    >>> ops(passes["fuse"])                 # before: a fused convolution, a pool and their gradients
    ['bias_grad', 'constant', 'conv2d_grad_weight', 'flatten', 'fused', 'max_pool2d', 'max_pool2d_grad',
     'mse', 'mse_grad', 'relu_grad', 'reshape', 'sgd_update']
    >>> ops(lower(passes["fuse"], ["loss"]))      # GEMMs over columns; the pool in tile order, routed
    [...'im2col', ...'max_pool_blocks_routed', 'max_pool_blocks_routed_grad', 'max_pool_routes', ...]
    >>> "max_pool2d_routed" in ops(lower(passes["fuse"]))     # without the outputs: image order
    True
    """
    todo = [n for n, d in g.nodes(data=True) if _needs_lowering(OPS[d["op"]], d)]
    if not todo:
        return g
    g = copy_graph(g)
    rw = Rewriter(g, role=OPERAND_ROLE, share=True)
    # Which convolutions write in tile order: their hooks, the pools' and the weight
    # gradients' read it from the rewriter.
    rw.outputs = None if outputs is None else set(outputs)
    rw.relu_moves = {} if outputs is None else dict.fromkeys(plan_relu_moves(g, outputs))
    rw.block_plans = {} if outputs is None else plan_blocks(g, outputs, rw.relu_moves)
    rw.blocked = {}
    for z, plan in rw.block_plans.items():
        rw.blocked[z] = plan["tile"]
        if plan["grad"] is not None:
            rw.blocked[plan["grad"]] = plan["tile"]
    todo = set(todo)
    for node in topological_order(g):
        if node not in todo:
            continue
        op, ins = g.nodes[node]["op"], operands(g, node)
        if op == "max_pool2d" and (lower_pool_then_relu(rw, node, ins[0]) or lower_pool(rw, node, ins[0])):
            continue
        if op == "max_pool2d_grad" and lower_pool_grad(rw, node, ins):
            continue
        OPS[op].lower(rw, node, ins, op_attrs(g, node))
    route_max_pools(rw)         # a max pool with a gradient keeps its routes for it
    return g
