"""A model's state: its variables (weights and optimizer state, one array per
name) and how it was compiled, as plain data: what saving and loading move.

Each parameter starts from ``default_rng([model seed, crc32(name)])``, so
adding a layer does not change the others' initial values. ``Model`` gets
its state-dict, weight and compile-config verbs from ``StateMethods``.

>>> from graphnn.compiler import check_graph
>>> from graphnn.compiler.ir import new_graph, add_op
>>> g = new_graph()
>>> _ = add_op(g, "w", "param", [], shape=(2, 3), dtype="float32", init="zeros")
>>> initial_variables(check_graph(g, ["w"]), seed=0)["w"].shape
(2, 3)
"""
from __future__ import annotations

import zlib

import numpy as np

from .compiler.training import LossSpec, TargetSpec
from .compiler.updates import LR_NODE
from .initializers import initialize
from .optim import from_spec


def initial_variables(g, seed: int) -> dict[str, np.ndarray]:
    """A freshly initialized array for every parameter of the checked graph ``g``.
    Unknown initializers (a graph built in networkx) raise one GraphError naming
    every parameter at fault, before any array is made."""
    from .compiler.errors import GraphError, Problem
    from .initializers import check_initializer
    problems = []
    for name, d in g.nodes(data=True):
        if d["op"] == "param":
            try:
                check_initializer(d["init"])
            except ValueError as e:
                problems.append(Problem(name, "param", str(e), d.get("source")))
    if problems:
        raise GraphError(problems)
    variables = {}
    for name, d in g.nodes(data=True):
        if d["op"] == "param":
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            variables[name] = initialize(d["init"], d["shape"], d["dtype"], rng)
    variables = packed(variables)
    for name, value in g.graph.get("initial_values", {}).items():   # graphnn.reuse.apply
        if name in variables:
            variables[name][...] = value
    return variables


def add_state(variables: dict, g) -> None:
    """Arrays for the optimizer state nodes of ``g`` that ``variables`` lacks
    (slots start at their declared value; the learning rate at its first value)."""
    made = {name: np.full(d["shape"], d["init"], dtype=d["dtype"])
            for name, d in g.nodes(data=True) if d["op"] == "state" and name not in variables}
    variables.update(packed(made))


ALIGN = 64      # bytes: each packed array starts on a cache line (and a SIMD vector)


def packed(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same arrays, copied side by side into one zeroed block per dtype:
    each value is a view of its block (all of a block's views share one
    ``base``), aligned to 64 bytes. A training step writes
    all of a model's weights and optimizer state, and ``graphnn.guard`` keeps a
    copy of them to undo a non-finite step: one copy and one check of a block
    cost a few microseconds where one per array cost several times the step of
    a small model.

    >>> arrays = packed({"a": np.ones((2, 3), "float32"), "b": np.zeros(5, "float32")})
    >>> arrays["a"].base is arrays["b"].base, arrays["a"].shape, float(arrays["a"].sum())
    (True, (2, 3), 6.0)
    """
    out, by_dtype = {}, {}
    for name, a in arrays.items():
        by_dtype.setdefault(np.dtype(a.dtype), []).append(name)
    for dtype, names in by_dtype.items():
        starts, end = [], 0
        for name in names:
            starts.append(end)
            end += -(-arrays[name].nbytes // ALIGN) * ALIGN
        raw = np.zeros(end + ALIGN, np.uint8)      # zeros: the gaps are finite numbers
        skip = -raw.ctypes.data % ALIGN
        block = raw[skip:skip + end].view(dtype)
        for name, start in zip(names, starts):
            a = arrays[name]
            first = start // dtype.itemsize
            view = block[first:first + a.size].reshape(a.shape)
            view[...] = a
            out[name] = view
    return {name: out[name] for name in arrays}


class StateMethods:
    """State dicts, weights, the learning rate and the compile config, over
    ``self.variables`` (name -> array), ``self._checked`` (the checked graph,
    which says what a parameter is), ``self.optimizer`` and the compiled loss
    and target layouts."""

    variables: dict[str, np.ndarray]

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate; setting it takes effect at the next step."""
        lr = self.variables.get(LR_NODE)
        return float(lr) if lr is not None else self.optimizer.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if LR_NODE in self.variables:
            self.variables[LR_NODE][...] = value
        if self.optimizer.schedule is None:
            self.optimizer.lr = float(value)

    def state_dict(self) -> dict:
        """A copy of every variable (weights and optimizer state), by name."""
        return {k: v.copy() for k, v in self.variables.items()}

    def load_state_dict(self, state: dict, strict: bool = True, source: str | None = None):
        """Copy ``state`` into the model's variables. Returns (missing, unexpected)
        key lists; with ``strict``, either being non-empty is a KeyError."""
        where = f"{source}: " if source else ""
        missing = sorted(set(self.variables) - set(state))
        unexpected = sorted(set(state) - set(self.variables))
        if strict and (missing or unexpected):
            raise KeyError(f"{where}state does not match the model: missing {missing}, "
                           f"unexpected {unexpected}")
        for k in sorted(set(state) & set(self.variables)):
            _check_value(k, state[k], self.variables[k], f"{where}variable")
        for k in sorted(set(state) & set(self.variables)):
            self.variables[k][...] = state[k]
        return missing, unexpected

    def get_weights(self) -> dict:
        """A copy of every parameter, by name."""
        return {k: v.copy() for k, v in self.variables.items()
                if self._checked.has_node(k) and self._checked.nodes[k]["op"] == "param"}

    def set_weights(self, weights: dict) -> None:
        """Overwrite parameters in place (shapes must match; finite real numbers).
        All are checked before any is written."""
        if not isinstance(weights, dict):
            raise TypeError(f"set_weights takes a dict of arrays by name, got {type(weights).__name__}")
        for k, v in weights.items():
            if k not in self.variables:
                raise KeyError(f"no parameter named {k!r}")
            _check_value(k, v, self.variables[k], "parameter")
        for k, v in weights.items():
            self.variables[k][...] = v

    def compile_config(self) -> dict | None:
        """How the model was compiled, as plain data (None if it was not)."""
        if self._loss is None:
            return None
        return {"loss": self._loss.config(), "optimizer": self.optimizer.spec(),
                "metrics": self.metrics, "fuse": self.fuse,
                "targets": [TargetSpec(*t).config() for t in self._built]}

    def compile_from_config(self, config: dict) -> None:
        """Compile as ``compile_config()`` described, and build the same programs'
        graphs, so that saved optimizer state has somewhere to go."""
        self.compile(loss=LossSpec.from_config(config["loss"]),
                     optimizer=from_spec(config["optimizer"]),
                     metrics=config.get("metrics"), fuse=config.get("fuse", True))
        for target in config.get("targets", []):
            self._build(TargetSpec.from_config(target))

def _check_value(name: str, value, own: np.ndarray, what: str) -> None:
    """``value`` may replace variable ``own``: same shape, real numbers, finite."""
    try:
        value = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what} {name!r}: not an array of numbers ({e})") from None
    if value.shape != own.shape:
        raise ValueError(f"{what} {name!r} has shape {own.shape}, got {value.shape}")
    if value.dtype.kind not in "biuf":
        raise ValueError(f"{what} {name!r}: expected real numbers, got dtype {value.dtype}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"{what} {name!r} contains NaN or inf")
