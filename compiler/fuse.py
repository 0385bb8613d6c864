"""fuse: merge ops into single kernels where the graph allows it.

Two rewrites, both driven by the op table rather than a list of special pairs:

``fuse_softmax_cross_entropy`` (before autodiff): cross_entropy(softmax(z), t[, w])
becomes softmax_cross_entropy(z, t[, w]), one log-sum-exp kernel that is exact at
logits of +/-1e4 where the pair would take log(0). It is a correctness rewrite,
not an optimization: the pipeline runs it whether or not fusion is on.

``fuse_epilogues`` (after autodiff, before lowering): an anchor op (fusion kind
out-elementwise-fusable, elementwise or broadcast: a matmul, a convolution, an
add) absorbs the chain of elementwise/broadcast ops after it, as long as each
link is read by exactly one op, as that op's operand 0. That one reader
post-dominates the link, so no other op can need the intermediate value; the
chain runs as one ``fused`` kernel, the epilogue in place in the anchor's
output buffer. dense = matmul + bias_add + relu becomes one kernel writing one
buffer; so does conv2d + bias_add + relu, which lowering then turns into a
fused GEMM. Backward, the activation gradients run in place over the incoming
gradient (see emit), so the GEMMs read dz where dy was.

>>> from graphnn.compiler.ir import new_graph, add_op
>>> from graphnn.compiler.pipeline import check_graph
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
>>> _ = add_op(g, "w", "param", [], shape=(3, 2), dtype="float32")
>>> _ = add_op(g, "b", "param", [], shape=(2,), dtype="float32")
>>> _ = add_op(g, "m", "matmul", ["x", "w"]); _ = add_op(g, "s", "bias_add", ["m", "b"])
>>> _ = add_op(g, "y", "relu", ["s"])
>>> f = fuse_epilogues(check_graph(g, ["y"]), ["y"])
>>> f.nodes["y"]["op"], [s["op"] for s in f.nodes["y"]["epilogue"]]
('fused', ['bias_add', 'relu'])
"""
from __future__ import annotations

import networkx as nx

from .ir import consumers, copy_graph, op_attrs, operands, topological_order
from .ops import OPS
from .rewrite import Rewriter

ANCHOR_KINDS = ("out-elementwise-fusable", "elementwise", "broadcast")
EPILOGUE_KINDS = ("elementwise", "broadcast")


def fuse_softmax_cross_entropy(g: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Rewrite cross_entropy(softmax(z), t) into softmax_cross_entropy(z, t)
    (stable: no log of a probability that underflowed to 0).

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.pipeline import check_graph
    >>> g = new_graph()
    >>> _ = add_op(g, "z", "input", [], shape=(None, 4), dtype="float32")
    >>> _ = add_op(g, "t", "input", [], shape=(None,), dtype="int64")
    >>> _ = add_op(g, "p", "softmax", ["z"]); _ = add_op(g, "loss", "cross_entropy", ["p", "t"])
    >>> f = fuse_softmax_cross_entropy(check_graph(g, ["loss"]))
    >>> f.nodes["loss"]["op"], operands(f, "loss")
    ('softmax_cross_entropy', ['z', 't'])
    """
    if not any(d["op"] == "cross_entropy" for _, d in g.nodes(data=True)):
        return g
    g = copy_graph(g)
    rw = Rewriter(g)
    for node in list(g.nodes):
        d = g.nodes[node]
        if d["op"] != "cross_entropy":
            continue
        probs, *rest = operands(g, node)       # labels[, sample weights]: they ride along
        p = g.nodes[probs]
        if p["op"] != "softmax" or p["axis"] % len(p["shape"]) != len(p["shape"]) - 1:
            continue
        (logits,) = operands(g, probs)
        rw.become(node, "softmax_cross_entropy", [logits, *rest], **op_attrs(g, node))
    return g          # a softmax nothing reads any more is left to dead-code elimination


def _absorbable(g, link, outputs):
    """Can the only reader of ``link`` join its fused group?"""
    readers = consumers(g, link)
    if len(readers) != 1 or link in outputs or g.out_degree(link) != 1:
        return None
    nxt = readers[0]
    op = OPS[g.nodes[nxt]["op"]]
    if op.fusion not in EPILOGUE_KINDS or not op.inplace or op.view or op.kind == "update":
        return None
    ins = operands(g, nxt)
    if ins[0] != link or link in ins[1:] or g.nodes[nxt]["shape"] != g.nodes[link]["shape"]:
        return None
    shape = g.nodes[link]["shape"]
    if any(len(g.nodes[i]["shape"]) > 1 and g.nodes[i]["shape"] != shape for i in ins[1:]):
        return None          # lowering re-lays the result out: extras are vectors or full-size
    return nxt


def _part(g, node):
    """A fused kernel's description of one of its parts (plain data; the kernel
    finds how many scratch buffers the part takes in the part kernel's declaration)."""
    op = OPS[g.nodes[node]["op"]]
    return {"op": op.name, "kernel": op.kernel, "attrs": op_attrs(g, node)}


def fuse_epilogues(g: nx.MultiDiGraph, outputs: list[str]) -> nx.MultiDiGraph:
    """Replace each anchor + epilogue chain by one ``fused`` node (named after the
    chain's last node, so its readers are unchanged). A value listed in
    ``outputs`` ends a chain: it must stay in a buffer of its own.

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.pipeline import check_graph
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    >>> _ = add_op(g, "W", "param", [], shape=(3, 2), dtype="float32", init="zeros")
    >>> _ = add_op(g, "b", "param", [], shape=(2,), dtype="float32", init="zeros")
    >>> _ = add_op(g, "y", "matmul", ["x", "W"]); _ = add_op(g, "yb", "bias_add", ["y", "b"])
    >>> _ = add_op(g, "r", "relu", ["yb"])
    >>> c = check_graph(g, ["r"])
    >>> f = fuse_epilogues(c, ["r"])
    >>> sorted(f), operands(f, "r"), [p["op"] for p in [f.nodes["r"]["anchor"], *f.nodes["r"]["epilogue"]]]
    (['W', 'b', 'r', 'x'], ['x', 'W', 'b'], ['matmul', 'bias_add', 'relu'])
    >>> f = fuse_epilogues(c, ["r", "yb"])          # yb is wanted: the relu stays apart
    >>> f.nodes["yb"]["op"], f.nodes["r"]["op"]
    ('fused', 'relu')
    """
    g = copy_graph(g)
    rw = Rewriter(g)
    for anchor in topological_order(g):
        if anchor not in g:
            continue
        d = g.nodes[anchor]
        op = OPS[d["op"]]
        if op.fusion not in ANCHOR_KINDS or op.kind in ("source", "update", "loss") or op.view:
            continue
        if op.kernel is None and op.lower_fused is None:
            continue            # lowered to several kernels, and its lowering cannot fuse it
        chain, link = [], anchor
        while (nxt := _absorbable(g, link, outputs)) is not None:
            chain.append(nxt)
            link = nxt
        if not chain:
            continue
        last = chain[-1]
        inputs = list(operands(g, anchor))
        spec = {"anchor": _part(g, anchor), "epilogue": []}
        for node in chain:
            extra = operands(g, node)[1:]
            spec["epilogue"].append({**_part(g, node), "extra": len(extra)})
            inputs += extra
        rw.remove([anchor, *chain[:-1]])
        rw.replace(last, "fused", inputs, **spec)
    return g
