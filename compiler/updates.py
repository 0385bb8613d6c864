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
    # name: (update op, slots, per-parameter (True) or scalar (False) slot, hyperparameters)
    "sgd": ("sgd_update", (), ("momentum", "nesterov")),
    "adam": ("adam_update", ("adam_m", "adam_v", "adam_t"), ("beta1", "beta2", "eps")),
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


def append_updates(g: nx.MultiDiGraph, grads: dict[str, str], spec: dict, copy: bool = True):
    """Return (graph with one update node per parameter, [update node names])."""
    g = copy_graph(g) if copy else g
    op, _, hyper = _rule(spec)
    dtype = next(iter(g.nodes[p]["dtype"] for p in grads)) if grads else "float32"
    if LR_NODE not in g:
        add_op(g, LR_NODE, "state", [], shape=(), dtype=dtype, init=float(spec["lr"]), role="update")
        infer_node(g, LR_NODE)
    attrs = {k: spec[k] for k in hyper if k in spec}
    filled, bad = OPS[op].check_attrs(attrs)
    if bad:
        raise GraphError(f"optimizer {spec['name']}: " + "; ".join(bad))
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
