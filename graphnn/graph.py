"""The builder: a Graph whose methods add op nodes and return symbolic Tensors.

Shapes are inferred the moment a node is added, so a mistake fails at the line
of user code that made it. Underneath is a plain networkx graph (``graph.nx``);
a graph built by hand in networkx with the same attributes compiles the same
way (``Graph.from_networkx``).

>>> g = Graph()
>>> x = g.input("x", (None, 4))
>>> h = g.dense(x, 3, activation="relu", name="fc")
>>> h
<Tensor 'fc/relu' (N, 3) float32>
>>> sorted(n for n in g.nx if n.startswith("fc/"))
['fc/W', 'fc/b', 'fc/bias_add', 'fc/matmul', 'fc/relu']
"""
from __future__ import annotations

import networkx as nx

from .base import Tensor
from .base import plain as _plain
from .base import user_source as _user_source
from .blocks import BlockMethods
from .compiler.errors import GraphError, OpShapeError, Problem, ShapeError
from .compiler.infer import describe_operands, infer_node
from .compiler.ir import add_op, op_attrs, operands
from .compiler.ops import OPS
from .conv_layers import ConvMethods
from .layers import LayerMethods, layer
from .loss_layers import LossMethods
from .naming import NamingMethods
from .recurrent import RecurrentMethods
from .reuse import ReuseMethods

SPEC_FORMAT = 1     # the version of the spec format (docs/spec.md) that to_spec writes


class Graph(LayerMethods, ConvMethods, LossMethods, RecurrentMethods, BlockMethods, ReuseMethods,
            NamingMethods):
    """A model under construction: a DAG of ops, with parameters as nodes.

    ``dtype`` is the floating-point type of inputs and parameters (float32 by
    default; float64 for gradient checks). Each builder call adds op nodes to
    ``nx`` (a networkx MultiDiGraph) and one record to ``layers``.

    >>> g = Graph(); x = g.input("x", (None, 3)); h = g.dense(x, 4, activation="relu")
    >>> h, len(g)                  # x, W, matmul, b, bias_add, relu
    (<Tensor 'dense/relu' (N, 4) float32>, 6)
    >>> [(r["type"], r["name"], r["inputs"]) for r in g.layers]
    [('input', 'x', []), ('dense', 'dense', ['x'])]
    >>> Graph("float64").input("x", (None, 2)).dtype
    'float64'
    """

    def __init__(self, dtype: str = "float32"):
        self.nx = nx.MultiDiGraph()
        self.dtype = dtype
        self._groups: list[str] = []
        self._depth = 0                  # builder calls in progress (see layers.layer)
        self.layers: list[dict] = []     # one record per top-level builder call
        self._layer_of: dict[str, str] = {}   # tensor name -> layer that made it
        self.nested_layers: list[dict] = []   # layers called inside blocks (see _record_nested)
        self._share_stack: list[dict] = []    # parameter sharing in progress (graphnn.reuse)

    def _record(self, kind: str, bound, out: Tensor) -> None:
        """Remember one builder call: {"type", "name", "inputs", "output", args...}."""
        args, inputs = {}, []
        for key, value in list(bound.arguments.items())[1:]:
            param = bound.signature.parameters[key]
            if isinstance(value, Tensor):
                inputs.append(self._layer_of.get(value.name, value.name))
            elif param.kind is param.VAR_POSITIONAL:                          # concat(*tensors)
                flat = [t for v in value for t in (v if isinstance(v, (list, tuple)) else [v])]
                inputs += [self._layer_of.get(t.name, t.name) if isinstance(t, Tensor) else t
                           for t in flat]
            elif key == "inputs" and isinstance(value, (list, tuple)):      # Graph.op
                inputs += [self._layer_of.get(t.name, t.name) if isinstance(t, Tensor) else t
                           for t in value]
            elif param.kind is param.VAR_KEYWORD:
                args.update({k: _plain(v) for k, v in value.items()})
            elif key != "name" and param.default is not value:
                args[key] = _plain(value)
        d = self.nx.nodes[out.name]
        name = bound.arguments.get("name") or (d.get("group") if d.get("group") and
                                               d.get("group") not in self._groups else out.name)
        if kind == "input":
            name = bound.arguments["name"]
        self._layer_of[out.name] = name
        self.layers.append({"type": kind, "name": name, "inputs": inputs, "output": out.name, **args})

    def _record_nested(self, kind: str, out: Tensor) -> None:
        """Remember a layer called inside a block (an inception's convolutions, a
        sequential's dense layers) when it opened a block of its own: the rows of
        ``summary(expand_nested=True)``."""
        group = self.nx.nodes[out.name].get("group")
        if group and group != self._groups[-1] and group.startswith(self._groups[-1] + "/"):
            self.nested_layers.append({"type": kind, "name": group, "output": out.name})

    # ------------------------------------------------------------------ core
    @layer
    def op(self, op: str, inputs: list, name: str | None = None, **attrs) -> Tensor:
        """Add one node running ``op`` on ``inputs`` and return its output.

        Raises GraphError (unknown op, bad attribute, wrong operand count) or
        ShapeError at once, naming the node and the line that called it.

        >>> g = Graph(); x = g.input("x", (None, 2))
        >>> g.op("tanh", [x])
        <Tensor 'tanh' (N, 2) float32>
        """
        source = _user_source()
        ins = [self._tensor(t).name for t in inputs]
        base = name or op
        if self._groups and not (name and "/" in name):
            base = f"{self._groups[-1]}/{base}"
        if name is not None and base in self.nx:
            raise GraphError([Problem(base, op, "a node with this name already exists", source)])
        node = self._free_node_name(base)
        spec = OPS.get(op)
        if spec is None:
            raise GraphError([Problem(node, op, f"unknown op {op!r}", source)])
        filled, bad = spec.check_attrs(attrs)
        unknown = sorted(set(attrs) - set(spec.attrs))
        if unknown:
            bad.append(f"unknown attribute(s) {unknown}; {op} takes {sorted(spec.attrs) or 'none'}")
        if spec.arity is not None and len(ins) != spec.arity:
            bad.append(f"expected {spec.arity} operand(s), got {len(ins)}")
        if bad:
            raise GraphError([Problem(node, op, m, source) for m in bad])
        meta = {"source": source}
        if self._groups:
            meta["group"] = self._groups[-1]
        add_op(self.nx, node, op, ins, **filled, **meta)
        if self._groups:
            self._note_group(meta["group"])
        try:
            infer_node(self.nx, node)
        except OpShapeError as e:
            message = f"{e} (operands: {describe_operands(self.nx, node)})"
            self._forget_names()
            self.nx.remove_node(node)
            raise ShapeError([Problem(node, op, message, source, kind="shape")]) from None
        return Tensor(self, node)

    def _tensor(self, t) -> Tensor:
        if isinstance(t, Tensor):
            if t.graph is not self:
                raise GraphError([Problem(t.name, t.op, "belongs to another Graph")])
            return t
        if isinstance(t, str) and t in self.nx:
            return Tensor(self, t)
        raise GraphError([Problem(str(t), None, "is not a tensor of this graph")])

    def __getitem__(self, name: str) -> Tensor:
        """The tensor of the node called ``name``."""
        if name not in self.nx:
            raise KeyError(f"no node named {name!r}")
        return Tensor(self, name)

    @layer
    def input(self, name: str, shape: tuple, dtype: str | None = None) -> Tensor:
        """A value fed at each step; ``None`` first in ``shape`` is the batch.

        >>> Graph().input("labels", (None,), dtype="int64")
        <Tensor 'labels' (N,) int64>
        """
        return self.op("input", [], name=name, shape=tuple(shape), dtype=dtype or self.dtype)

    @layer
    def param(self, name: str, shape: tuple, init: str = "auto", trainable: bool = True) -> Tensor:
        """A trained weight (initialized by the Model from ``init``).

        >>> Graph().param("w", (3, 2), init="zeros")
        <Tensor 'w' (3, 2) float32>
        """
        from .initializers import check_initializer
        check_initializer(init)
        full = f"{self._groups[-1]}/{name}" if self._groups and "/" not in name else name
        shared = self._shared_param(full, tuple(shape))
        if shared is not None:           # layer reuse: the weight of the layer shared
            return Tensor(self, shared)
        return self.op("param", [], name=name, shape=tuple(shape), dtype=self.dtype,
                        init=init, trainable=trainable)

    # ------------------------------------------------------------ networkx
    @classmethod
    def from_networkx(cls, g: nx.Graph, dtype: str = "float32") -> Graph:
        """Wrap a hand-built networkx graph (copied); it is checked when compiled.

        >>> h = nx.MultiDiGraph()
        >>> h.add_node("x", op="input", shape=(None, 2), dtype="float32")
        >>> Graph.from_networkx(h)["x"].op
        'input'
        """
        graph = cls(dtype)
        graph.nx = nx.MultiDiGraph(g)
        return graph                     # no layer records: specs describe it op by op

    def to_spec(self, outputs: list | None = None) -> dict:
        """This graph as a spec (plain data for YAML or JSON); see docs/spec.md.

        >>> g = Graph(); x = g.input("x", (None, 4)); _ = g.dense(x, 2, name="out")
        >>> [layer["type"] for layer in g.to_spec()["layers"]]
        ['input', 'dense']
        """
        if self.layers and not any(r["type"] == "model" for r in self.layers):
            layers = [{k: v for k, v in rec.items() if k != "output" and not (k == "inputs" and not v)}
                      for rec in self.layers]
        else:                            # made op by op, in networkx, or with apply(model): its ops
            layers = []
            for node in nx.topological_sort(self.nx):
                d, attrs = self.nx.nodes[node], _plain(op_attrs(self.nx, node))
                if d["op"] == "param":
                    attrs.pop("dtype", None)           # params take the graph's dtype
                if d["op"] in ("input", "param"):
                    layers.append({"type": d["op"], "name": node, **attrs})
                else:
                    layers.append({"type": "op", "op": d["op"], "name": node,
                                   "inputs": operands(self.nx, node), **attrs})
        return {"graphnn_spec": SPEC_FORMAT, "dtype": self.dtype, "layers": layers}

    def check(self, outputs: list) -> nx.MultiDiGraph:
        """Validate and infer the whole graph for these outputs (all errors at once);
        return the checked graph, every node with its shape and dtype.

        >>> g = Graph(); x = g.input("x", (None, 3))
        >>> y = g.dense(x, 2); g.check([y]).nodes["dense/bias_add"]["shape"]
        (None, 2)

        Shapes are checked as each node is added; what only the whole graph shows,
        such as a node that reaches no output, is found here:

        >>> _ = g.relu(x, name="unused")
        >>> g.check([y])                               # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        graphnn.compiler.errors.GraphError: 1 problem in the graph:
          node 'unused' (relu): does not reach any output; remove it or list it among the outputs  [created at ...]
        """
        from .compiler import check_graph
        return check_graph(self.nx, [self._tensor(o).name for o in outputs])

    def _repr_mimebundle_(self, include=None, exclude=None):
        from .viz import mimebundle
        return mimebundle(self, include, exclude)

    def __len__(self) -> int:
        return self.nx.number_of_nodes()
