"""Run one computation in graphnn and in PyTorch, in float64, and compare.

graphnn's side is a Graph built with the public builder; the harness adds a
scalar loss when the output is not one (the sum of squares of the output minus
a random target, the same target on both sides), compiles the gradient with
the compiler's own passes (the fused, lowered program a user runs) and returns
the output and the gradients. PyTorch's side is a function of torch tensors;
autograd gives its gradients.

Errors are relative to the reference's scale: max |got - want| / max |want|,
so entries near zero neither inflate nor hide a difference. Every comparison
is recorded in ``RECORD``; the parity conftest prints the count and the worst.
"""
from __future__ import annotations

import zlib

import numpy as np
from graphnn.compiler.autodiff import differentiate
from graphnn.compiler.pipeline import build_program, check_graph, inference_graph
from graphnn.runtime import Executor

TOL = 1e-7
RECORD: list[tuple[str, float]] = []      # (case, worst relative error)


def rng_for(case: str) -> np.random.Generator:
    """A generator seeded by the case's name: each case draws its own fixed values."""
    return np.random.default_rng(zlib.crc32(case.encode()))


def relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != reference {want.shape}"
    if want.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(want))), 1e-300)
    return float(np.max(np.abs(got - want))) / scale


def compare(case: str, pairs: dict) -> float:
    """Assert every (got, want) pair agrees to TOL; record the worst error."""
    errors = {name: relative_error(got, want) for name, (got, want) in pairs.items()}
    worst = max(errors.values())
    RECORD.append((case, worst))
    bad = {k: f"{v:.3g}" for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{case}: relative error above {TOL:g}: {bad}"
    return worst


def to_torch(value, grad=False):
    import torch
    t = torch.from_numpy(np.array(value))
    return t.requires_grad_(True) if grad and t.is_floating_point() else t


def graphnn_run(graph, output, values: dict, wrt=(), target=None, batch=None, mode="train"):
    """Run ``output`` of ``graph`` with ``values`` (node name -> array: params become
    variables, inputs are fed). With ``wrt``, also the gradients of the loss
    (``output`` itself when scalar, else sum((output - target)^2)) with respect to
    those nodes. ``mode="eval"`` compiles the inference graph (running statistics).

    Returns (output value, {name: gradient}, variables after the step)."""
    g = graph.nx
    y = output.name
    params = {n for n, d in g.nodes(data=True) if d["op"] == "param"}
    variables = {k: np.array(v, dtype=np.float64) for k, v in values.items() if k in params}
    feeds = {k: np.asarray(v) for k, v in values.items() if k not in params}
    if batch is None:
        batch = next((v.shape[0] for k, v in feeds.items() if g.nodes[k]["shape"][:1] == (None,)), 1)
    updates = [n for n, d in g.nodes(data=True) if d["op"] == "moving_average"]
    if mode == "eval":
        checked = inference_graph(check_graph(g, [y, *updates]), [y])
        out = Executor(build_program(checked, [y], batch), variables).run(feeds)
        return np.array(out[y]), {}, variables
    loss = y
    if wrt and g.nodes[y]["shape"] != ():
        t = graph.input("parity/target", g.nodes[y]["shape"])
        loss = graph.mse(output, t, reduction="sum", name="parity/loss").name
        feeds[t.name] = target
    checked = check_graph(g, [loss, *updates])
    outs = [y]
    grads = {}
    if wrt:
        checked, grads = differentiate(checked, loss, list(wrt))
        outs = [y, *dict.fromkeys(grads.values())]
    out = Executor(build_program(checked, outs, batch), variables).run(feeds)
    return np.array(out[y]), {k: np.array(out[v]) for k, v in grads.items()}, variables


def torch_run(fn, values: dict, wrt=(), target=None):
    """``fn(**tensors)`` in float64 with autograd: (output, {name: gradient})."""
    tensors = {k: to_torch(v, grad=k in wrt) for k, v in values.items()}
    y = fn(**tensors)
    grads = {}
    if wrt:
        loss = y if y.dim() == 0 else ((y - to_torch(target)) ** 2).sum()
        loss.backward()
        grads = {k: tensors[k].grad.numpy() for k in wrt}
    return y.detach().numpy(), grads


def check_against_torch(case, graph, output, torch_fn, values: dict, wrt=(), rng=None,
                        graph_names: dict | None = None) -> float:
    """Forward and gradients of ``output`` against ``torch_fn``. ``values`` are
    keyed by torch argument names; ``graph_names`` maps them to graph node names
    where they differ."""
    rng = rng or np.random.default_rng(0)
    names = graph_names or {}
    want, want_grads = torch_run(torch_fn, values, wrt, None) if not wrt else (None, None)
    if wrt:
        import torch
        with torch.no_grad():
            shape = torch_fn(**{k: to_torch(v) for k, v in values.items()}).shape
        target = rng.normal(size=tuple(shape))
        want, want_grads = torch_run(torch_fn, values, wrt, target)
    else:
        target = None
    got, got_grads, _ = graphnn_run(graph, output, {names.get(k, k): v for k, v in values.items()},
                                    [names.get(k, k) for k in wrt], target)
    pairs = {"output": (got, want)}
    pairs.update({f"d/d{k}": (got_grads[names.get(k, k)], want_grads[k]) for k in wrt})
    return compare(case, pairs)
