"""append_updates: optimizer update nodes, one per parameter, right after its gradient.

The optimizer arrives as plain data (``{"name": "adam", "lr": 1e-3, ...}``), so
the compiler needs nothing from the user-side package. The learning rate is one
shared scalar ``state`` node; each optimizer slot (momentum, Adam's m, v, t) is
a ``state`` node named after its parameter.

>>> slots_for({"name": "adam"}, "W")
['W/adam_m', 'W/adam_v', 'W/adam_t']
"""
from __future__ import annotations

import networkx as nx

from .errors import GraphError
from .ir import copy_graph
from .ops import OPS
from .rewrite import Rewriter

LR_NODE = "optimizer/lr"


def update_op(spec: dict):
    """The update op's record for an optimizer spec (each update op lists the
    optimizers it implements; its attributes are the hyperparameters).

    >>> update_op({"name": "adamw"}).name, sorted(update_op({"name": "sgd"}).attrs)
    ('adam_update', ['momentum', 'nesterov', 'weight_decay'])
    >>> update_op({"name": "lbfgs"})
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 1 problem in the graph:
      node '<graph>': unknown optimizer 'lbfgs'; known: ['adadelta', 'adagrad', 'adam', 'adamw', 'rmsprop', 'sgd']
    """
    name = spec.get("name")
    for op in OPS.values():
        if name in op.optimizers:
            return op
    known = sorted(o for op in OPS.values() for o in op.optimizers)
    raise GraphError(f"unknown optimizer {name!r}; known: {known}")


def slots_for(spec: dict, param: str) -> list[str]:
    """The state nodes an optimizer keeps for ``param`` (a slot ending in _t is a
    scalar step count; SGD keeps its velocity only with momentum, RMSprop its mean
    gradient only when centered and its buffer only with momentum).

    >>> slots_for({"name": "sgd"}, "W"), slots_for({"name": "sgd", "momentum": 0.9}, "W")
    ([], ['W/momentum'])
    >>> slots_for({"name": "rmsprop", "centered": True}, "W")
    ['W/rms_v', 'W/rms_mean_grad']
    """
    return [f"{param}/{s}" for s in _slots(spec, update_op(spec))]


def _slots(spec, op) -> list[str]:
    slots = list(op.slots)
    if spec["name"] == "sgd" and not spec.get("momentum", 0.0) > 0:
        slots = []
    if spec["name"] == "rmsprop":       # the mean gradient and the momentum buffer are optional
        slots = [s for s in slots if (s != "rms_mean_grad" or spec.get("centered"))
                 and (s != "rms_momentum" or spec.get("momentum", 0.0) > 0)]
    return slots


def _clipped(g, grads: dict, max_norm: float) -> dict:
    """Scale every gradient by one factor so that their global norm is at most
    ``max_norm``. Every update then waits for every gradient (the factor needs
    them all), so gradient buffers live longer than without clipping."""
    rw = Rewriter(g, role="update")
    scale = rw.emit("optimizer/clip_scale", "clip_scale", list(grads.values()), max_norm=float(max_norm))
    return {param: rw.emit(f"{param}/clipped_grad", "multiply", [grad, scale])
            for param, grad in grads.items()}


def append_updates(g: nx.MultiDiGraph, grads: dict[str, str], spec: dict, copy: bool = True):
    """Return (graph with one update node per parameter, [update node names]).
    Each update reads its parameter, its gradient, the shared learning rate and
    its slots; with ``clip_norm`` the gradients are scaled together first.

    >>> from graphnn.compiler.ir import new_graph, add_op, operands
    >>> from graphnn.compiler.pipeline import check_graph
    >>> g = new_graph()
    >>> _ = add_op(g, "W", "param", [], shape=(3, 2), dtype="float32", init="zeros")
    >>> _ = add_op(g, "dW", "input", [], shape=(3, 2), dtype="float32")     # stands for a gradient
    >>> c = check_graph(g, ["W", "dW"])
    >>> u, updates = append_updates(c, {"W": "dW"}, {"name": "sgd", "lr": 0.1, "momentum": 0.9})
    >>> updates, operands(u, "W/update"), u.nodes["optimizer/lr"]["init"]
    (['W/update'], ['W', 'dW', 'optimizer/lr', 'W/momentum'], 0.1)
    >>> u, _ = append_updates(c, {"W": "dW"}, {"name": "sgd", "lr": 0.1, "clip_norm": 1.0})
    >>> operands(u, "W/update")
    ['W', 'W/clipped_grad', 'optimizer/lr']
    >>> append_updates(c, {"W": "dW"}, {"name": "sgd", "lr": 0.1, "momentum": 2.0})
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 1 problem in the graph:
      node '<graph>': optimizer sgd: attribute momentum=2.0 is invalid: expected a momentum in [0, 1)
    """
    g = copy_graph(g) if copy else g
    op = update_op(spec)
    rw = Rewriter(g, role="update")
    dtype = next(iter(g.nodes[p]["dtype"] for p in grads)) if grads else "float32"
    if LR_NODE not in g:
        lr = spec["lr"] if isinstance(spec["lr"], (int, float)) else spec.get("lr0", 0.0)
        rw.emit(LR_NODE, "state", [], shape=(), dtype=dtype, init=float(lr))
    attrs = {k: v for k, v in spec.items() if k in op.attrs}    # the hyperparameters
    filled, bad = op.check_attrs(attrs)
    if bad:
        raise GraphError(f"optimizer {spec['name']}: " + "; ".join(bad))
    if spec.get("clip_norm"):
        grads = _clipped(g, grads, spec["clip_norm"])
    updates, kinds = [], _slots(spec, op)
    for param, grad in grads.items():       # (attributes made and checked here: checked=True)
        slots = []
        for kind in kinds:
            scalar = kind.endswith("_t")
            slots.append(rw.emit(f"{param}/{kind}", "state", [], checked=True,
                                 shape=() if scalar else g.nodes[param]["shape"],
                                 dtype="float64" if scalar else g.nodes[param]["dtype"], init=0.0))
        updates.append(rw.emit(f"{param}/update", op.name, [param, grad, LR_NODE, *slots],
                               checked=True, **filled))
    return g, updates
