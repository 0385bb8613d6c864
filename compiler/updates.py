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
from .infer import infer_node
from .ir import add_op, copy_graph
from .ops import OPS

LR_NODE = "optimizer/lr"

_RULES = {
    # name: (update op, slots (a name ending in _t is a scalar step count), hyperparameters)
    "sgd": ("sgd_update", (), ("momentum", "nesterov", "weight_decay")),
    "adam": ("adam_update", ("adam_m", "adam_v", "adam_t"), ("beta1", "beta2", "eps")),
    "adamw": ("adam_update", ("adam_m", "adam_v", "adam_t"), ("beta1", "beta2", "eps", "weight_decay")),
    "rmsprop": ("rmsprop_update", ("rms_v",), ("rho", "eps")),
    "adagrad": ("adagrad_update", ("adagrad_sum",), ("eps",)),
    "adadelta": ("adadelta_update", ("adadelta_g2", "adadelta_dx2"), ("rho", "eps")),
}


def slots_for(spec: dict, param: str) -> list[str]:
    """The state nodes an optimizer keeps for ``param``."""
    op, slots, _ = _rule(spec)
    if spec["name"] == "sgd" and spec.get("momentum", 0.0) > 0:
        slots = ("momentum",)
    return [f"{param}/{s}" for s in slots]


def _rule(spec):
    if spec.get("name") not in _RULES:
        raise GraphError(f"unknown optimizer {spec.get('name')!r}; known: {sorted(_RULES)}")
    return _RULES[spec["name"]]


def _clipped(g, grads: dict, max_norm: float) -> dict:
    """Scale every gradient by one factor so that their global norm is at most
    ``max_norm``. Every update then waits for every gradient (the factor needs
    them all), so gradient buffers live longer than without clipping."""
    scale = add_op(g, "optimizer/clip_scale", "clip_scale", list(grads.values()),
                   max_norm=float(max_norm), role="update")
    infer_node(g, scale)
    clipped = {}
    for param, grad in grads.items():
        clipped[param] = add_op(g, f"{param}/clipped_grad", "multiply", [grad, scale], role="update")
        infer_node(g, clipped[param])
    return clipped


def append_updates(g: nx.MultiDiGraph, grads: dict[str, str], spec: dict, copy: bool = True):
    """Return (graph with one update node per parameter, [update node names])."""
    g = copy_graph(g) if copy else g
    op, _, hyper = _rule(spec)
    dtype = next(iter(g.nodes[p]["dtype"] for p in grads)) if grads else "float32"
    if LR_NODE not in g:
        lr = spec["lr"] if isinstance(spec["lr"], (int, float)) else spec.get("lr0", 0.0)
        add_op(g, LR_NODE, "state", [], shape=(), dtype=dtype, init=float(lr), role="update")
        infer_node(g, LR_NODE)
    attrs = {k: spec[k] for k in hyper if k in spec}
    filled, bad = OPS[op].check_attrs(attrs)
    if bad:
        raise GraphError(f"optimizer {spec['name']}: " + "; ".join(bad))
    if spec.get("clip_norm"):
        grads = _clipped(g, grads, spec["clip_norm"])
    updates = []
    for param, grad in grads.items():
        slots = []
        for slot in slots_for(spec, param):
            scalar = slot.endswith("_t")
            add_op(g, slot, "state", [], shape=() if scalar else g.nodes[param]["shape"],
                   dtype="float64" if scalar else g.nodes[param]["dtype"], init=0.0, role="update")
            infer_node(g, slot)
            slots.append(slot)
        name = f"{param}/update"
        add_op(g, name, op, [param, grad, LR_NODE, *slots], role="update", **filled)
        infer_node(g, name)
        updates.append(name)
    return g, updates
