"""Training-graph assembly: the user's graph plus a loss, ready to differentiate.

A model's graph computes predictions. Training it needs more nodes: a fed
target, the loss node comparing prediction and target, optionally one weight
per sample (the loss op's third operand) and the penalties (regularizers, a
VAE's KL term) summed into the loss. ``add_loss`` adds exactly those nodes to
a copy of a checked graph; ``build_training_graph`` then appends gradients and
optimizer updates and derives the evaluation graph.

What the loss is comes as a ``LossSpec`` (a loss op applied to the first
output, or a loss node the graph already has); what the target looks like as
a ``TargetSpec`` (shape, dtype, weighted).

>>> from graphnn.compiler import check_graph
>>> from graphnn.compiler.ir import new_graph, add_op
>>> g = new_graph()
>>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
>>> g = check_graph(g, ["x"])
>>> loss = LossSpec.named("l2")
>>> built = add_loss(g, loss, target_spec(g, loss, ["x"]), ["x"])
>>> built.loss, sorted(built.graph)
('loss', ['loss', 'target', 'x'])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import networkx as nx

from .errors import GraphError, OpShapeError, Problem, ShapeError
from .infer import describe_operands, infer_node
from .ir import add_op, ancestors_of, copy_graph, new_graph
from .ops import OPS, with_role
from .pipeline import build_program, check_graph, inference_graph, training_graph
from .rewrite import Rewriter

# The loss names a user may give, and the loss op each one means (from the op table).
LOSSES = with_role("loss")
CLASS_LOSSES = ("softmax_cross_entropy", "cross_entropy")   # take labels or one-hot rows
PENALTY_OPS = tuple(with_role("penalty"))   # summed into the training loss
TARGET, WEIGHTS, LOSS, TOTAL = "target", "sample_weight", "loss", "total_loss"


def _example_linear_graph() -> nx.MultiDiGraph:
    """For the examples: the checked graph y = x @ W, x an input (N, 3), W a zero param (3, 2)."""
    g = new_graph()
    add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    add_op(g, "W", "param", [], shape=(3, 2), dtype="float32", init="zeros")
    add_op(g, "y", "matmul", ["x", "W"])
    return check_graph(g, ["y"])


def _example_graph_with_loss() -> nx.MultiDiGraph:
    """For the examples: an unchecked graph with inputs x and t (N, 3), y = relu(x) and its
    own loss node l = mse(x, t)."""
    h = new_graph()
    add_op(h, "x", "input", [], shape=(None, 3), dtype="float32")
    add_op(h, "t", "input", [], shape=(None, 3), dtype="float32")
    add_op(h, "l", "mse", ["x", "t"])
    add_op(h, "y", "relu", ["x"])
    return h


@dataclass(frozen=True)
class LossSpec:
    """The training loss: a loss ``op`` applied to the first output and a fed
    target, or a loss ``node`` that the graph already has (exactly one of them).

    >>> LossSpec.named("bce")
    LossSpec(op='binary_cross_entropy', node=None)
    """

    op: str | None = None
    node: str | None = None

    def __post_init__(self):
        if (self.op is None) == (self.node is None):
            raise ValueError(f"a LossSpec names a loss op or a loss node, not both or neither "
                             f"(got op={self.op!r}, node={self.node!r})")
        if self.op is not None and (self.op not in OPS or OPS[self.op].kind != "loss"):
            raise ValueError(f"{self.op!r} is not a loss op")

    @classmethod
    def resolve(cls, loss, g: nx.MultiDiGraph) -> LossSpec:
        """A LossSpec from a loss name or a LossSpec, checked against ``g``.

        >>> g = _example_linear_graph()       # y = x @ W: x (N, 3), W (3, 2); checked
        >>> LossSpec.resolve("l2", g)
        LossSpec(op='mse', node=None)
        >>> LossSpec.resolve(LossSpec(node="y"), g)
        Traceback (most recent call last):
        ...
        ValueError: loss 'y' is not a loss node of the graph
        """
        spec = loss if isinstance(loss, cls) else cls.named(loss)
        if spec.node is not None and (spec.node not in g or OPS[g.nodes[spec.node]["op"]].kind != "loss"):
            raise ValueError(f"loss {spec.node!r} is not a loss node of the graph")
        return spec

    @classmethod
    def named(cls, name: str) -> LossSpec:
        """The loss a user names (``"mse"``, ``"l2"``, ``"cross_entropy"``, ...).

        >>> LossSpec.named("l2"), LossSpec.named("cross_entropy").op
        (LossSpec(op='mse', node=None), 'softmax_cross_entropy')
        >>> LossSpec.named("hinge")
        Traceback (most recent call last):
        ...
        ValueError: unknown loss 'hinge'; expected one of ['bce', 'binary_cross_entropy', 'categorical_cross_entropy', 'cross_entropy', 'kl_divergence', 'l1', 'l2', 'mse', 'rms', 'softmax_cross_entropy'] or a loss tensor of the graph
        """
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)} "
                             "or a loss tensor of the graph")
        return cls(op=LOSSES[name])

    def op_in(self, g: nx.MultiDiGraph) -> str:
        """The loss op, also when the loss is a node of ``g``.

        >>> h = _example_graph_with_loss()    # y = relu(x) and its own loss node l = mse(x, t)
        >>> LossSpec(node="l").op_in(h), LossSpec.named("bce").op_in(h)
        ('mse', 'binary_cross_entropy')
        """
        return self.op or g.nodes[self.node]["op"]

    def config(self) -> list:
        """As plain data: ``["name", op]`` or ``["node", node name]``.

        >>> LossSpec.named("l2").config(), LossSpec(node="vae/loss").config()
        (['name', 'mse'], ['node', 'vae/loss'])
        """
        return ["name", self.op] if self.op else ["node", self.node]

    @classmethod
    def from_config(cls, config) -> LossSpec:
        """The inverse of ``config()``.

        >>> LossSpec.from_config(LossSpec.named("categorical_cross_entropy").config()).op
        'cross_entropy'
        """
        kind, name = config
        return cls(op=name) if kind == "name" else cls(node=name)


class TargetSpec(NamedTuple):
    """The fed target a training graph is built for: its shape and dtype (None
    when the loss is a node of the graph, whose targets are its own inputs) and
    whether one weight per sample is fed too.

    >>> t = TargetSpec((None,), "int64"); t, t.weighted
    (TargetSpec(shape=(None,), dtype='int64', weighted=False), False)
    """

    shape: tuple | None
    dtype: str | None
    weighted: bool = False

    def config(self) -> list:
        """As plain data: ``[shape as a list or None, dtype, weighted]``.

        >>> TargetSpec((None, 2), "float32", True).config(), TargetSpec(None, None).config()
        ([[None, 2], 'float32', True], [None, None, False])
        """
        return [None if self.shape is None else list(self.shape), self.dtype, self.weighted]

    @classmethod
    def from_config(cls, config) -> TargetSpec:
        """The inverse of ``config()`` (files written before weights were saved
        hold two items; an empty entry means a loss node's own targets).

        >>> TargetSpec.from_config(TargetSpec((None,), "int64").config())
        TargetSpec(shape=(None,), dtype='int64', weighted=False)
        """
        shape, dtype, weighted = (list(config) + [False])[:3] if config else (None, None, False)
        return cls(None if shape is None else tuple(shape), dtype, bool(weighted))


def target_spec(g: nx.MultiDiGraph, loss: LossSpec, outputs: list[str], y=None,
                weighted: bool = False) -> TargetSpec:
    """The target for ``loss``: like the first output, or labels (one int per
    sample) for a class loss unless ``y`` is given as one-hot rows.

    >>> import numpy as np
    >>> g = _example_linear_graph()       # y = x @ W: x (N, 3), W (3, 2); checked
    >>> target_spec(g, LossSpec.named("mse"), ["y"])
    TargetSpec(shape=(None, 2), dtype='float32', weighted=False)
    >>> target_spec(g, LossSpec.named("softmax_cross_entropy"), ["y"])           # labels
    TargetSpec(shape=(None,), dtype='int64', weighted=False)
    >>> target_spec(g, LossSpec.named("softmax_cross_entropy"), ["y"], y=np.eye(2))   # one-hot
    TargetSpec(shape=(None, 2), dtype='float32', weighted=False)
    """
    if loss.node is not None:
        return TargetSpec(None, None, weighted)
    if loss.op in CLASS_LOSSES and (y is None or getattr(y, "ndim", None) == 1):
        return TargetSpec((None,), "int64", weighted)
    out = g.nodes[outputs[0]]
    return TargetSpec(out["shape"], out["dtype"], weighted)


def target_inputs(g: nx.MultiDiGraph, loss: LossSpec, inputs: list[str]) -> list[str]:
    """The fed targets the loss reads (not the sample weights): ``target``, or
    the inputs of ``g`` that reach the loss node and are not the model's inputs.

    >>> h = _example_graph_with_loss()    # y = relu(x) and its own loss node l = mse(x, t)
    >>> target_inputs(h, LossSpec(node="l"), ["x"]), target_inputs(h, LossSpec.named("mse"), ["x"])
    (['t'], ['target'])
    """
    if loss.op is not None:
        return [TARGET]
    return sorted(n for n in ancestors_of(g, [loss.node])
                  if g.nodes[n]["op"] == "input" and n not in inputs)


def graph_ends(g: nx.MultiDiGraph) -> list[str]:
    """Losses, penalties and declared updates that nothing reads: ends of the
    graph besides its outputs, which checking must not call unreachable.

    >>> h = _example_graph_with_loss()    # y = relu(x) and its own loss node l = mse(x, t)
    >>> graph_ends(h)
    ['l']
    """
    return [n for n, d in g.nodes(data=True)
            if OPS.get(d.get("op")) is not None and OPS[d["op"]].kind in ("loss", "update")
            and g.out_degree(n) == 0]


def check_model_io(g: nx.MultiDiGraph, inputs: list[str], outputs: list[str]) -> None:
    """Every listed input is an input node, and every input an output depends on
    is listed; raise GraphError naming each one that is not.

    >>> h = _example_graph_with_loss()    # y = relu(x) and its own loss node l = mse(x, t)
    >>> check_model_io(check_graph(h, ["y", "l"]), ["x"], ["y"])        # fine
    >>> check_model_io(check_graph(h, ["y", "l"]), ["x", "y"], ["l"])
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.GraphError: 2 problems in the graph:
      node 'y' (relu): is listed among the model's inputs but is not an input node
      node 't' (input): output 'l' depends on it, but it is not among the model's inputs
    """
    problems = []
    for name in inputs:
        if name not in g or g.nodes[name]["op"] != "input":
            problems.append(Problem(name, g.nodes[name]["op"] if name in g else None,
                                    "is listed among the model's inputs but is not an input node"))
    for out in outputs:
        for node in ancestors_of(g, [out]):
            if g.nodes[node]["op"] == "input" and node not in inputs:
                problems.append(Problem(node, "input", f"output {out!r} depends on it, but it "
                                        "is not among the model's inputs", g.nodes[node].get("source")))
    if problems:
        raise GraphError(problems)


class LossGraph(NamedTuple):
    """A checked graph holding the loss, and the name of the value to minimize.

    >>> g = _example_linear_graph()       # y = x @ W: x (N, 3), W (3, 2); checked
    >>> built = add_loss(g, LossSpec.named("mse"), TargetSpec((None, 2), "float32"), ["y"])
    >>> built.loss, built.graph.nodes[built.loss]["shape"]
    ('loss', ())
    """

    graph: nx.MultiDiGraph
    loss: str


def _add_checked(g, name, op, inputs, **attrs) -> str:
    """Add node ``name`` (the rewrite toolkit's emit, under exactly that name) and
    infer its shape; a misfit raises ShapeError naming it."""
    if name in g:
        raise KeyError(f"a node named {name!r} already exists")
    try:
        Rewriter(g).emit(name, op, inputs, **attrs)
    except OpShapeError as e:
        raise ShapeError([Problem(name, op, f"{e} (operands: {describe_operands(g, name)})",
                                  kind="shape")]) from None
    return name


def add_loss(g: nx.MultiDiGraph, loss: LossSpec, target: TargetSpec, outputs: list[str],
             penalties: list[str] | None = None, weight_dtype: str = "float32") -> LossGraph:
    """A copy of the checked graph ``g`` with the training loss added.

    A loss op gets a fed ``target`` input (shaped by ``target``) and becomes node
    ``loss`` reading the first output; a weighted target adds a ``sample_weight``
    input (one weight per sample) as the loss's third operand; the ``penalties``
    (by default every penalty node of ``g``) are summed with the loss into
    ``total_loss``. Only the new nodes are inferred: ``g`` was checked already.

    >>> g = _example_linear_graph()       # y = x @ W: x (N, 3), W (3, 2); checked
    >>> built = add_loss(g, LossSpec.named("mse"), TargetSpec((None, 2), "float32", True), ["y"])
    >>> sorted(set(built.graph) - set(g)), built.graph.nodes["sample_weight"]["shape"]
    (['loss', 'sample_weight', 'target'], (None,))
    >>> add_loss(g, LossSpec.named("mse"), TargetSpec((None, 5), "float32"), ["y"])   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.ShapeError: 1 problem in the graph:
      node 'loss' (mse): ...
    """
    if loss.node is not None and (loss.node not in g or OPS[g.nodes[loss.node]["op"]].kind != "loss"):
        raise ValueError(f"loss {loss.node!r} is not a loss node of the graph")
    g = copy_graph(g)
    if loss.node is not None:
        name = loss.node
    else:
        _add_checked(g, TARGET, "input", [], shape=target.shape, dtype=target.dtype)
        name = _add_checked(g, LOSS, loss.op, [outputs[0], TARGET])
    if target.weighted:                 # one weight per sample: the loss's third operand
        _add_checked(g, WEIGHTS, "input", [], shape=(None,), dtype=weight_dtype)
        g.add_edge(WEIGHTS, name, port=2)
        try:
            infer_node(g, name)
        except OpShapeError as e:
            raise ShapeError([Problem(name, g.nodes[name]["op"], str(e), kind="shape")]) from None
    if penalties is None:
        penalties = [n for n, d in g.nodes(data=True) if d["op"] in PENALTY_OPS]
    if penalties:
        name = _add_checked(g, TOTAL, "add_n", [name, *penalties])
    return LossGraph(g, name)


class TrainingGraph(NamedTuple):
    """What a model trains and evaluates for one target: the training graph
    (forward, backward, updates), the evaluation graph, and the loss's name.

    >>> g = _example_linear_graph()       # y = x @ W: x (N, 3), W (3, 2); checked
    >>> built = build_training_graph(g, LossSpec.named("mse"), TargetSpec((None, 2), "float32"),
    ...                              ["y"], {"name": "sgd", "lr": 0.1})
    >>> built.loss, sorted(built.eval)                # evaluation: no gradients, no updates
    ('loss', ['W', 'loss', 'target', 'x', 'y'])
    """

    train: nx.MultiDiGraph
    eval: nx.MultiDiGraph
    loss: str


def build_training_graph(g: nx.MultiDiGraph, loss: LossSpec, target: TargetSpec,
                         outputs: list[str], optimizer: dict, penalties: list[str] | None = None,
                         weight_dtype: str = "float32", fuse: bool = True) -> TrainingGraph:
    """``add_loss``, then gradients and one optimizer update per trainable
    parameter (``training_graph``), and the inference-mode evaluation graph.

    >>> g = _example_linear_graph()       # y = x @ W: x (N, 3), W (3, 2); checked
    >>> built = build_training_graph(g, LossSpec.named("mse"), TargetSpec((None, 2), "float32"),
    ...                              ["y"], {"name": "sgd", "lr": 0.1})
    >>> sorted(set(built.train) - set(built.eval))      # seed, gradients, the rate, the update
    ['W/update', 'loss/grad_mse_grad', 'loss/grad_seed', 'optimizer/lr', 'y/grad_matmul_1']
    """
    loss_graph, name = add_loss(g, loss, target, outputs, penalties, weight_dtype)
    train, _ = training_graph(loss_graph, name, outputs, optimizer, fuse=fuse)
    return TrainingGraph(train, inference_graph(loss_graph, [name, *outputs]), name)


def compile_for(purpose: str, g: nx.MultiDiGraph, outputs: list[str], batch_size: int,
                loss: LossSpec | None = None, target: TargetSpec | None = None,
                optimizer: dict | None = None, *, weight_dtype: str = "float32",
                fuse: bool = True, trace=None):
    """One Program for 'predict', 'eval' or 'train' from the user's (unchecked)
    graph, every pass run in turn and reported to ``trace(pass_name, result)``
    (see ``pipeline``; ``loss`` reports the graph with the loss added). It gives
    the same Program as the Model's cached path; ``graphnn inspect --passes``
    and ``Model.program(trace=...)`` use it to show what each pass did.

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 3), dtype="float32")
    >>> _ = add_op(g, "y", "relu", ["x"])
    >>> seen = []
    >>> _ = compile_for("predict", g, ["y"], 2, trace=lambda name, result: seen.append(name))
    >>> seen
    ['validate', 'infer', 'inference', 'fuse', 'lower', 'schedule', 'plan']
    """
    checked = check_graph(g, [*outputs, *graph_ends(g)], trace=trace)
    if purpose == "predict":
        graph = inference_graph(checked, outputs, trace=trace)
        return build_program(graph, outputs, batch_size, fuse=fuse, trace=trace)
    loss_graph, name = add_loss(checked, loss, target, outputs, weight_dtype=weight_dtype)
    if trace is not None:
        trace("loss", loss_graph)
    if purpose == "train":
        graph, _ = training_graph(loss_graph, name, outputs, optimizer, fuse=fuse, trace=trace)
    else:
        graph = inference_graph(loss_graph, [name, *outputs], trace=trace)
    return build_program(graph, [name, *outputs], batch_size, fuse=fuse, trace=trace,
                         guard=(name,) if purpose == "train" else ())
