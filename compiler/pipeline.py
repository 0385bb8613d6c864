"""The pass pipeline, from a declared graph to a runtime Program.

    check_graph      validate + infer_shapes   (once per model)
    training_graph   differentiate + append_updates + prune   (once per model)
    build_program    fuse, lower, then emit_program: schedule + plan_memory + emit
                     (once per batch size)

Each function takes ``trace``: a callable ``trace(pass_name, result)`` called
after each pass (validate, infer, stabilize, autodiff, updates, inference, fuse,
lower, schedule, plan) with the graph it produced (for ``schedule``, a copy
whose nodes are in the scheduled order; for ``plan``, the Program).
``compiler.printer.format_stage`` prints either.

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
from .fuse import fuse_epilogues, fuse_softmax_cross_entropy
from .infer import infer_shapes
from .ir import add_op, ancestors_of, copy_graph, new_graph, op_attrs, operands
from .lower import lower
from .ops import OPS
from .rewrite import Rewriter
from .schedule import schedule
from .updates import append_updates
from .validate import validate


def _example_regression_graph() -> nx.MultiDiGraph:
    """For the examples: the unchecked graph y = x @ W, loss = mse(y, t), with inputs
    x (N, 3) and t (N, 2) and W a zero param (3, 2)."""
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    add_op(g, "t", "input", [], shape=(None, 2), dtype="float32")
    add_op(g, "W", "param", [], shape=(3, 2), dtype="float32", init="zeros")
    add_op(g, "y", "matmul", ["x", "W"])
    add_op(g, "loss", "mse", ["y", "t"])
    return g


def _traced(trace, name, result):
    """Report ``result`` of pass ``name`` to ``trace`` (if any); return it."""
    if trace is not None:
        trace(name, result)
    return result


def check_graph(g: nx.MultiDiGraph, outputs: list[str], copy: bool = True,
                trace=None) -> nx.MultiDiGraph:
    """Validate the structure, then infer every shape; raise with all problems
    (structural ones, and the shape problems of the nodes they do not touch).
    ``copy=False`` annotates ``g`` itself (for a caller that owns it).

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = _example_regression_graph()   # y = x @ W, loss = mse(y, t); unchecked
    >>> c = check_graph(g, ["loss", "y"])
    >>> c.nodes["y"]["shape"], c.nodes["loss"]["shape"], "shape" in g.nodes["y"]   # g untouched
    ((None, 2), (), False)
    >>> h = new_graph()
    >>> _ = add_op(h, "x", "input", [], shape=(None, 3), dtype="float32")
    >>> _ = add_op(h, "y", "matmul", ["x", "x"]); _ = add_op(h, "z", "frob", ["x"])
    >>> check_graph(h, ["y", "z"])
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 2 problems in the graph:
      node 'z' (frob): unknown op 'frob'
      node 'y' (matmul): inner dimensions differ: (N, 3) @ (N, 3) contracts 3 with None; expected operand 1 to have 3 rows (operands: x: (N, 3) float32, x: (N, 3) float32)
    """
    try:
        checked = validate(g, outputs, copy)
    except GraphError as e:
        raise GraphError(e.problems + _shape_problems_beside(g, e.problems)) from None
    if trace is not None:          # infer annotates in place: show validate's own result
        trace("validate", copy_graph(checked))
    return _traced(trace, "infer", infer_shapes(checked, copy=False))


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
    except Exception:  # noqa: BLE001 - a rule meeting inputs it never sees in a valid graph
        return []
    return []


def prune(g: nx.MultiDiGraph, roots: list[str]) -> nx.MultiDiGraph:
    """Dead-code elimination: keep only the roots and what they depend on.
    (Returns ``g`` itself when nothing is dead: every pass copies before it writes.)

    >>> c = check_graph(_example_regression_graph(), ["loss", "y"])   # y = x @ W, loss = mse(y, t)
    >>> sorted(prune(c, ["y"])), prune(c, ["loss", "y"]) is c
    (['W', 'x', 'y'], True)
    """
    keep = ancestors_of(g, roots)
    return g if len(keep) == len(g) else copy_graph(g, keep)


def declared_updates(g: nx.MultiDiGraph) -> list[str]:
    """Update nodes the user's graph declares (batch norm's running averages).

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 4)); y = g.batch_norm(x, name="bn")
    >>> sorted(declared_updates(g.nx))
    ['bn/running_mean_update', 'bn/running_var_update']
    """
    return [n for n, d in g.nodes(data=True) if OPS[d["op"]].kind == "update"]


def training_graph(g: nx.MultiDiGraph, loss: str, outputs: list[str], optimizer: dict,
                   params: list[str] | None = None, fuse: bool = True, trace=None
                   ) -> tuple[nx.MultiDiGraph, list[str]]:
    """Append gradients of ``loss`` and one optimizer update per trainable param.

    Returns (graph, update node names); the graph keeps only what the outputs,
    the loss and the updates need. Softmax + cross-entropy become one stable op
    first, with or without ``fuse`` (a correctness rewrite).

    >>> c = check_graph(_example_regression_graph(), ["loss", "y"])   # y = x @ W, loss = mse(y, t)
    >>> train, updates = training_graph(c, "loss", ["y"], {"name": "sgd", "lr": 0.1})
    >>> updates, sorted(set(train) - set(c))
    (['W/update'], ['W/update', 'loss/grad_mse_grad', 'loss/grad_seed', 'optimizer/lr', 'y/grad_matmul_1'])
    """
    declared = declared_updates(g)
    g = prune(g, [loss, *outputs, *declared])
    # The stable form is a correctness rewrite: it runs with fusion off too.
    g = _traced(trace, "stabilize", prune(fuse_softmax_cross_entropy(g), [loss, *outputs, *declared]))
    if params is None:
        params = [n for n, d in g.nodes(data=True)
                  if d["op"] == "param" and d.get("trainable", True)]
    if not params:
        raise GraphError([Problem(loss, g.nodes[loss]["op"], "no trainable parameter reaches "
                                  "this loss; there is nothing to train")])
    g, grads = differentiate(g, loss, params)
    if trace is not None:          # append_updates writes into g: show autodiff's own result
        trace("autodiff", copy_graph(g))
    g, updates = append_updates(g, grads, optimizer, copy=False)   # g is ours already
    return _traced(trace, "updates", prune(g, [loss, *outputs, *updates, *declared])), updates + declared


def inference_graph(g: nx.MultiDiGraph, outputs: list[str], trace=None) -> nx.MultiDiGraph:
    """The graph for evaluation and prediction: each op whose record has an
    ``inference`` hook rewrites itself (x * dropout_mask(x) becomes x, gaussian
    noise becomes zero, batch norm uses its running statistics, folded into the
    layer before it where possible); then what the outputs do not need goes.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 4)); y = g.dropout(g.relu(x), 0.5, name="drop")
    >>> checked = g.check([y])
    >>> sorted(d["op"] for _, d in checked.nodes(data=True))
    ['dropout_mask', 'input', 'multiply', 'relu']
    >>> sorted(d["op"] for _, d in inference_graph(checked, [y.name]).nodes(data=True))
    ['input', 'linear', 'relu']
    """
    todo = [n for n, d in g.nodes(data=True) if OPS[d["op"]].inference is not None]
    if not todo:
        return _traced(trace, "inference", prune(g, outputs))
    g = copy_graph(g)
    rw = Rewriter(g)
    for node in todo:
        OPS[g.nodes[node]["op"]].inference(rw, node, operands(g, node), op_attrs(g, node))
    return _traced(trace, "inference", prune(g, outputs))


def build_program(g: nx.MultiDiGraph, outputs: list[str], batch_size: int,
                  guard: tuple[str, ...] = (), fuse: bool = True, trace=None):
    """Fuse, lower and emit a checked (and possibly differentiated) graph.

    ``fuse=False`` keeps one kernel per op (and no in-place writes), for comparison.
    ``guard`` names values checked finite before anything after them runs.

    >>> c = check_graph(_example_regression_graph(), ["loss", "y"])   # y = x @ W, loss = mse(y, t)
    >>> train, _ = training_graph(c, "loss", ["y"], {"name": "sgd", "lr": 0.1})
    >>> p = build_program(train, ["loss", "y"], batch_size=4, guard=("loss",))
    >>> p.batch_size, [i.kernel for i in p.instructions]
    (4, ['matmul', 'mse', 'check_finite', 'mse_grad', 'matmul', 'sgd_update'])
    """
    g = prune(fuse_softmax_cross_entropy(g), [*outputs, *declared_updates(g)])   # always
    if fuse:
        g = fuse_epilogues(g, outputs)
    g = _traced(trace, "lower", lower(_traced(trace, "fuse", g), outputs))
    if trace is not None:          # emit schedules again: the order is deterministic
        order = schedule(g, outputs)         # the computing nodes; sources come first
        scheduled = nx.MultiDiGraph()
        scheduled.add_nodes_from((n, d) for n, d in g.nodes(data=True) if OPS[d["op"]].kind == "source")
        scheduled.add_nodes_from((n, g.nodes[n]) for n in order)
        scheduled.add_edges_from(g.edges(keys=True, data=True))
        trace("schedule", scheduled)
    return _traced(trace, "plan", emit_program(g, outputs, batch_size, guard=guard, inplace=fuse))


def compile_graph(g: nx.MultiDiGraph, outputs: list[str], batch_size: int, *,
                  loss: str | None = None, optimizer: dict | None = None, fuse: bool = True,
                  trace=None):
    """All passes at once: a Program computing ``outputs`` (and, with a loss and
    an optimizer, one training step). ``trace(pass_name, result)`` sees each pass.

    >>> g = _example_regression_graph()   # y = x @ W, loss = mse(y, t); unchecked
    >>> passes = []
    >>> p = compile_graph(g, ["y"], 4, loss="loss", optimizer={"name": "sgd", "lr": 0.1},
    ...                   trace=lambda name, result: passes.append(name))
    >>> p.inputs, passes
    (['x', 't'], ['validate', 'infer', 'stabilize', 'autodiff', 'updates', 'fuse', 'lower', 'schedule', 'plan'])
    """
    g = check_graph(g, [*outputs, *([loss] if loss else [])], trace=trace)
    if optimizer is not None:
        g, _ = training_graph(g, loss, outputs, optimizer, fuse=fuse, trace=trace)
        return build_program(g, [loss, *outputs], batch_size, guard=(loss,), fuse=fuse, trace=trace)
    return build_program(prune(g, outputs), outputs, batch_size, fuse=fuse, trace=trace)
