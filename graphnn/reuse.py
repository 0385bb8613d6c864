"""Layer reuse: one layer's parameters applied to several inputs, and a built
Model used as a block of another graph.

``g.layer("dense", 16, activation="relu")`` makes a layer to call like a
function: the first call creates it (its weights and ops), every later call
adds new ops that read the same weights. ``g.dense(x2, share="fc1")`` says the
same at a single call. Either way the gradient of a shared weight sums over its
uses (the autodiff's rule for any value read twice) and summary() counts it once.

``g.apply(model, x, name="enc")`` copies a built Model's graph into this one as a
block, its weights starting from the model's current values; applying the same
model again (or ``g.layer(model)``) shares them, as in a siamese network.

>>> from graphnn import Graph
>>> g = Graph(); a = g.input("a", (None, 4)); b = g.input("b", (None, 4))
>>> fc = g.layer("dense", 3, activation="tanh", name="fc")
>>> fc(a).name, fc(b).name
('fc/tanh', 'fc_1/tanh')
>>> sorted(n for n, d in g.nx.nodes(data=True) if d["op"] == "param")
['fc/W', 'fc/b']
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .compiler.ir import op_attrs, operands


class SharedLayer:
    """A layer to call on several inputs: ``g.layer(kind, *args, **kwargs)``.
    The first call builds it; later calls read the same weights.

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); a = g.input("a", (None, 2)); b = g.input("b", (None, 2))
    >>> fc = g.layer("dense", 1, name="fc"); fc
    <SharedLayer dense 'fc', called 0 time(s)>
    >>> m = Model(g, [a, b], [fc(a), fc(b)]); fc
    <SharedLayer dense 'fc', called 2 time(s)>
    >>> m.set_weights({"fc/W": np.array([[1.0], [2.0]]), "fc/b": np.array([0.0])})
    >>> [y.item() for y in m.predict([np.array([[1.0, 1.0]]), np.array([[2.0, 0.0]])])]
    [3.0, 2.0]
    """

    def __init__(self, graph, kind, args, kwargs):
        self.graph, self.kind, self.args, self.kwargs = graph, kind, args, dict(kwargs)
        self.name = self.kwargs.pop("name", None)
        self.calls = 0

    def __call__(self, x):
        g = self.graph
        if self.calls == 0:
            out = self._build(x, self.name, None)
            self.name = g.layers[-1]["name"] if g.layers else out.name
        else:
            name = f"{self.name}_{self.calls}"
            while any(r["name"] == name for r in g.layers):
                name += "_"
            out = self._build(x, name, self.name)
        self.calls += 1
        return out

    def _build(self, x, name, share):
        if self.kind == "model":
            return self.graph.apply(self.args[0], x, name=name, share=share)
        return getattr(self.graph, self.kind)(x, *self.args, name=name, share=share, **self.kwargs)

    def __repr__(self) -> str:
        return f"<SharedLayer {self.kind} {self.name!r}, called {self.calls} time(s)>"


class ReuseMethods:
    """Mixed into Graph: layer, apply, and the parameter sharing they rest on.

    >>> from graphnn import Graph
    >>> g = Graph(); a = g.input("a", (None, 3)); b = g.input("b", (None, 3))
    >>> _ = g.dense(a, 2, name="fc"); _ = g.dense(b, 2, share="fc")
    >>> sorted(n for n, d in g.nx.nodes(data=True) if d["op"] == "param")   # one set of weights
    ['fc/W', 'fc/b']
    """

    def layer(self, kind, *args, **kwargs) -> SharedLayer:
        """A layer to apply to several inputs with one set of weights: ``kind`` is a
        builder method's name ("dense", "conv2d", "lstm", ...) with its arguments,
        or a built Model.

        >>> from graphnn import Graph
        >>> g = Graph(); a = g.input("a", (None, 4)); b = g.input("b", (None, 4))
        >>> enc = g.layer("dense", 2, activation="tanh", name="enc")
        >>> enc(a).shape, enc(b).name
        ((None, 2), 'enc_1/tanh')
        >>> g.layer("dense2")
        Traceback (most recent call last):
        ...
        ValueError: layer: unknown layer type 'dense2'
        """
        if hasattr(kind, "graph") and hasattr(kind, "outputs") and hasattr(kind, "program"):
            # a Model, known by what it holds: the builder imports nothing above it
            return SharedLayer(self, "model", (kind,), kwargs)
        if not isinstance(kind, str) or kind.startswith("_") or not callable(getattr(self, kind, None)):
            raise ValueError(f"layer: unknown layer type {kind!r}")
        return SharedLayer(self, kind, args, kwargs)

    @contextmanager
    def _sharing(self, kind: str, share: str):
        """Inside, the first block opened takes its parameters from layer ``share``."""
        found = [r for r in self.layers if r["name"] == share]
        if not found:
            raise ValueError(f"share={share!r}: no layer of that name to share weights with")
        if kind != "apply" and found[0]["type"] != kind:
            raise ValueError(f"share={share!r}: that layer is a {found[0]['type']}, not a {kind}")
        state = {"from": share, "root": None, "shared": [], "depth": len(self._groups)}
        self._share_stack.append(state)
        try:
            yield state
        finally:
            self._share_stack.pop()
        if not state["shared"]:
            raise ValueError(f"share={share!r}: the {kind} layer has no parameters to share")

    def _shared_param(self, full: str, shape: tuple):
        """The existing parameter a new one named ``full`` stands for, or None."""
        if not self._share_stack:
            return None
        state = self._share_stack[-1]
        if state["root"] is None and len(self._groups) > state["depth"]:
            state["root"] = self._groups[state["depth"]]       # the block the layer opened
        root = state["root"]
        if root is None or not full.startswith(root + "/"):
            return None
        old = state["from"] + full[len(root):]
        if old not in self.nx or self.nx.nodes[old]["op"] != "param":
            raise ValueError(f"share={state['from']!r}: it has no parameter {old!r} for {full!r}")
        if tuple(self.nx.nodes[old]["shape"]) != tuple(shape):
            raise ValueError(f"share={state['from']!r}: parameter {old!r} has shape "
                             f"{tuple(self.nx.nodes[old]['shape'])}, this use needs {tuple(shape)}")
        state["shared"].append(old)
        return old

    def apply(self, model, inputs, name: str | None = None, share: str | None = None):
        """Use a built Model as a block of this graph: its nodes are copied under
        ``name`` (inputs replaced by ``inputs``, one tensor or a list in the model's
        input order); its weights start from the model's current values, or are
        those of the earlier block ``share``. Returns the output tensor(s).

        >>> from graphnn import Graph, Model
        >>> e = Graph(); x = e.input("x", (None, 4))
        >>> encoder = Model(e, inputs=x, outputs=e.dense(x, 2, name="code"))
        >>> g = Graph(); a = g.input("a", (None, 4)); b = g.input("b", (None, 4))
        >>> g.apply(encoder, a, name="enc").name, g.apply(encoder, b, name="enc_b", share="enc").name
        ('enc/code/bias_add', 'enc_b/code/bias_add')
        """
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(inputs) != len(model.inputs):
            raise ValueError(f"apply: the model takes {len(model.inputs)} input(s) {model.inputs}, "
                             f"got {len(inputs)}")
        name = self._layer_name(name, "model")
        src = model._checked
        self._depth += 1                 # the copied ops are this block's, not layers of their own
        try:
            if share is not None:
                with self._sharing("apply", share):
                    outs = self._copy_model(model, src, inputs, name)
            else:
                outs = self._copy_model(model, src, inputs, name)
        finally:
            self._depth -= 1
        record = {"type": "model", "name": name, "output": outs[0].name,
                  "inputs": [self._layer_of.get(self._tensor(t).name, self._tensor(t).name) for t in inputs]}
        if share:
            record["share"] = share
        self.layers.append(record)
        self._layer_of[outs[0].name] = name
        return outs[0] if len(outs) == 1 else outs

    def _copy_model(self, model, src, inputs, name):
        import networkx as nx
        made = {n: self._tensor(t) for n, t in zip(model.inputs, inputs)}
        with self.block(name):
            for n in nx.topological_sort(src):
                d = src.nodes[n]
                if n in made:
                    continue
                if d["op"] == "input":
                    raise ValueError(f"apply: the model reads input {n!r}, which is not among its inputs")
                if d["op"] == "param":
                    made[n] = self.param(f"{name}/{n}", d["shape"], init=d.get("init", "auto"),
                                         trainable=d.get("trainable", True))
                    if made[n].name == f"{name}/{n}":        # a new weight: start from the model's
                        self.nx.graph.setdefault("initial_values", {})[made[n].name] = \
                            np.array(model.variables[n])
                    continue
                made[n] = self.op(d["op"], [made[s] for s in operands(src, n)], name=f"{name}/{n}",
                                  **op_attrs(src, n))
        return [made[o] for o in model.outputs]
