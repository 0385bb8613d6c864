"""The pass pipeline, from a declared graph to a runtime Program.

    check_graph      validate + infer_shapes   (once per model)
    training_graph   differentiate + append_updates + prune   (once per model)
    build_program    lower, then emit_program: schedule + plan_memory + emit
                     (once per batch size)

>>> from graphnn.compiler.ir import new_graph, add_op
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
>>> _ = add_op(g, "y", "tanh", ["x"])
>>> program = compile_graph(g, ["y"], batch_size=2)
>>> [i.kernel for i in program.instructions]
['tanh']
"""
from __future__ import annotations

import networkx as nx

from .autodiff import differentiate
from .emit import emit_program
from .errors import GraphError, Problem
from .infer import infer_shapes
from .ir import ancestors_of, copy_graph, operands
from .ops import OPS
from .fuse import fuse_epilogues, fuse_softmax_cross_entropy
from .lower import lower
from .updates import append_updates
from .validate import validate


def check_graph(g: nx.MultiDiGraph, outputs: list[str], copy: bool = True) -> nx.MultiDiGraph:
    """Validate the structure, then infer every shape; raise with all problems
    (structural ones, and the shape problems of the nodes they do not touch).
    ``copy=False`` annotates ``g`` itself (for a caller that owns it)."""
    try:
        checked = validate(g, outputs, copy)
    except GraphError as e:
        raise GraphError(e.problems + _shape_problems_beside(g, e.problems)) from None
    return infer_shapes(checked, copy=False)


def _shape_problems_beside(g, problems: list[Problem]) -> list[Problem]:
    """Shape problems among the nodes a structural problem leaves sound: those
    not at fault and not downstream of a node at fault (none, for a cyclic graph)."""
    from .infer import infer_shapes
    if not isinstance(g, nx.MultiDiGraph):
        g = nx.MultiDiGraph(g)
    if not nx.is_directed_acyclic_graph(g):
        return []
    bad = {p.node for p in problems if not p.message.startswith(("does not reach",
                                                                  "is requested as an output"))}
    for node in list(bad):
        if node in g:
            bad |= nx.descendants(g, node)
    sound = copy_graph(g.subgraph(n for n in g if n not in bad))
    for _, d in sound.nodes(data=True):
        d.update(OPS[d["op"]].check_attrs({k: v for k, v in d.items() if k in OPS[d["op"]].attrs})[0])
    try:
        infer_shapes(sound, copy=False)
    except GraphError as e:
        return [p for p in e.problems if p.kind == "shape"]
    except Exception:          # a rule meeting inputs it never sees in a valid graph
        return []
    return []


def prune(g: nx.MultiDiGraph, roots: list[str]) -> nx.MultiDiGraph:
    """Dead-code elimination: keep only the roots and what they depend on.
    (Returns ``g`` itself when nothing is dead: every pass copies before it writes.)"""
    keep = ancestors_of(g, roots)
    return g if len(keep) == len(g) else copy_graph(g.subgraph(keep))


def declared_updates(g: nx.MultiDiGraph) -> list[str]:
    """Update nodes the user's graph declares (batch norm's running averages)."""
    return [n for n, d in g.nodes(data=True) if OPS[d["op"]].kind == "update"]


def training_graph(g: nx.MultiDiGraph, loss: str, outputs: list[str], optimizer: dict,
                   params: list[str] | None = None, fuse: bool = True
                   ) -> tuple[nx.MultiDiGraph, list[str]]:
    """Append gradients of ``loss`` and one optimizer update per trainable param.

    Returns (graph, update node names); the graph keeps only what the outputs,
    the loss and the updates need. Softmax + cross-entropy become one stable op
    first, with or without ``fuse`` (a correctness rewrite)."""
    declared = declared_updates(g)
    g = prune(g, [loss, *outputs, *declared])
    # The stable form is a correctness rewrite: it runs with fusion off too.
    g = prune(fuse_softmax_cross_entropy(g), [loss, *outputs, *declared])
    if params is None:
        params = [n for n, d in g.nodes(data=True)
                  if d["op"] == "param" and d.get("trainable", True)]
    if not params:
        raise GraphError([Problem(loss, g.nodes[loss]["op"], "no trainable parameter reaches "
                                  "this loss; there is nothing to train")])
    g, grads = differentiate(g, loss, params)
    g, updates = append_updates(g, grads, optimizer, copy=False)   # g is ours already
    return prune(g, [loss, *outputs, *updates, *declared]), updates + declared


def _rewire(g, node, port, src):
    """Make ``src`` operand ``port`` of ``node``."""
    for u, _, key, data in list(g.in_edges(node, keys=True, data=True)):
        if data["port"] == port:
            g.remove_edge(u, node, key)
    g.add_edge(src, node, port=port)


def _add(g, name, op, inputs, **attrs):
    from .infer import infer_node
    from .ir import add_op, unique_name
    name = add_op(g, unique_name(g, name), op, inputs, **OPS[op].check_attrs(attrs)[0])
    infer_node(g, name)
    return name


def _use_running_statistics(g, norm):
    """normalize reads the running statistics; then, if a dense or convolution
    with a bias feeds it alone, fold it into that layer's weight and bias."""
    d = g.nodes[norm]
    running_mean, running_var = d["running"]
    _rewire(g, norm, 1, running_mean)
    _rewire(g, norm, 2, running_var)
    x, _, _, gamma, beta = operands(g, norm)
    if g.nodes[x]["op"] != "bias_add" or g.out_degree(x) != 1:
        return
    layer, bias = operands(g, x)
    if g.nodes[layer]["op"] not in ("matmul", "conv2d") or g.out_degree(layer) != 1:
        return
    weight = operands(g, layer)[1]
    axis, rank = d["axis"] % len(d["shape"]), len(d["shape"])
    if g.nodes[bias]["op"] != "param" or g.nodes[weight]["op"] != "param" or \
            (g.nodes[layer]["op"] == "matmul" and (axis != rank - 1 or g.nodes[layer]["transpose_b"])) or \
            (g.nodes[layer]["op"] == "conv2d" and axis != 1):
        return
    scale = _add(g, f"{norm}/fold_scale", "bn_fold_scale", [gamma, running_var], eps=d["eps"])
    per_filter = scale
    if g.nodes[layer]["op"] == "conv2d":          # (F,) against a weight (F, C, KH, KW)
        per_filter = _add(g, f"{norm}/fold_scale_4d", "reshape", [scale],
                          shape=(g.nodes[scale]["shape"][0], 1, 1, 1))
    _rewire(g, layer, 1, _add(g, f"{norm}/folded_W", "multiply", [weight, per_filter]))
    _rewire(g, x, 1, _add(g, f"{norm}/folded_b", "bn_fold_shift", [bias, running_mean, scale, beta]))
    for u, _, key in list(g.in_edges(norm, keys=True)):
        g.remove_edge(u, norm, key)
    d.clear()
    d.update(op="linear", shape=g.nodes[x]["shape"], dtype=g.nodes[x]["dtype"])
    g.add_edge(x, norm, port=0)


def inference_graph(g: nx.MultiDiGraph, outputs: list[str]) -> nx.MultiDiGraph:
    """The graph for evaluation and prediction: x * dropout_mask(x) becomes x,
    gaussian noise becomes zero (a VAE's sample becomes its mean), and batch norm
    uses its running statistics, folded into the layer before it where possible."""
    masks = [n for n, d in g.nodes(data=True) if d["op"] == "dropout_mask"]
    noises = [n for n, d in g.nodes(data=True) if d["op"] == "gaussian_noise"]
    norms = [n for n, d in g.nodes(data=True) if d["op"] == "normalize" and d.get("running")]
    if not masks and not noises and not norms:
        return prune(g, outputs)
    g = copy_graph(g)
    for norm in norms:
        _use_running_statistics(g, norm)
    for noise in noises:
        d = g.nodes[noise]
        d["op"], d["factor"] = "scale", 0.0
        d.pop("seed", None)
    for mask in masks:
        for reader in list(g.successors(mask)):
            others = [i for i in operands(g, reader) if i != mask]
            if g.nodes[reader]["op"] != "multiply" or len(others) != 1:
                raise GraphError([Problem(reader, g.nodes[reader]["op"], "a dropout mask may "
                                          "only be multiplied with the value it masks")])
            for src in list(g.predecessors(reader)):
                while g.has_edge(src, reader):
                    g.remove_edge(src, reader)
            g.nodes[reader]["op"] = "linear"       # a view of the unmasked value
            g.add_edge(others[0], reader, port=0)
    return prune(g, outputs)


def build_program(g: nx.MultiDiGraph, outputs: list[str], batch_size: int,
                  guard: tuple[str, ...] = (), fuse: bool = True):
    """Fuse, lower and emit a checked (and possibly differentiated) graph.

    ``fuse=False`` keeps one kernel per op (and no in-place writes), for comparison."""
    g = prune(fuse_softmax_cross_entropy(g), [*outputs, *declared_updates(g)])   # always
    if fuse:
        g = fuse_epilogues(g, outputs)
    return emit_program(lower(g), outputs, batch_size, guard=guard, inplace=fuse)


def compile_graph(g: nx.MultiDiGraph, outputs: list[str], batch_size: int, *,
                  loss: str | None = None, optimizer: dict | None = None, fuse: bool = True):
    """All passes at once: a Program computing ``outputs`` (and, with a loss and
    an optimizer, one training step)."""
    g = check_graph(g, [*outputs, *([loss] if loss else [])])
    if optimizer is not None:
        g, _ = training_graph(g, loss, outputs, optimizer, fuse=fuse)
        return build_program(g, [loss, *outputs], batch_size, guard=(loss,), fuse=fuse)
    return build_program(prune(g, outputs), outputs, batch_size, fuse=fuse)
