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
    every parameter at fault, before any array is made.

    A parameter's values depend on the seed and its own name only:

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 2)); y = g.dense(x, 3, name="fc")
    >>> a = initial_variables(g.check([y]), seed=0)
    >>> {k: v.shape for k, v in a.items()}
    {'fc/W': (2, 3), 'fc/b': (3,)}
    >>> _ = g.dense(y, 1, name="head")                  # another layer: fc/W stays the same
    >>> b = initial_variables(g.check(["head/bias_add"]), seed=0)
    >>> c = initial_variables(g.check(["head/bias_add"]), seed=1)        # another seed: other values
    >>> np.array_equal(a["fc/W"], b["fc/W"]), np.array_equal(a["fc/W"], c["fc/W"])
    (True, False)
    """
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
    (slots start at their declared value; the learning rate at its first value).

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> g = new_graph()
    >>> _ = add_op(g, "W/momentum", "state", [], shape=(2,), dtype="float32", init=0.0)
    >>> _ = add_op(g, "optimizer/lr", "state", [], shape=(), dtype="float32", init=0.1)
    >>> variables = {"optimizer/lr": np.array(0.5, "float32")}     # kept: already there
    >>> add_state(variables, g)
    >>> variables["W/momentum"], float(variables["optimizer/lr"])
    (array([0., 0.], dtype=float32), 0.5)
    """
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
    and target layouts. Model inherits them.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="adam"); _ = m.program("train")   # makes Adam's slots
    >>> sorted(m.get_weights()), len(m.state_dict())
    (['dense/W', 'dense/b'], 9)
    """

    variables: dict[str, np.ndarray]

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate; setting it takes effect at the next step.

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd"); m.learning_rate      # SGD's default
        0.01
        >>> _ = m.program("train"); round(m.learning_rate, 6)   # now a float32 state variable
        0.01
        """
        lr = self.variables.get(LR_NODE)
        return float(lr) if lr is not None else self.optimizer.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        """Write the rate into the compiled programs' state, and into the optimizer
        (unless a schedule sets it each step).

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd"); _ = m.program("train")
        >>> m.learning_rate = 0.5
        >>> m.learning_rate, float(m.variables["optimizer/lr"]), m.optimizer.lr
        (0.5, 0.5, 0.5)
        """
        if LR_NODE in self.variables:
            self.variables[LR_NODE][...] = value
        if self.optimizer.schedule is None:
            self.optimizer.lr = float(value)

    def state_dict(self) -> dict:
        """A copy of every variable (weights and optimizer state), by name.

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="adam"); _ = m.program("train")
        >>> state = m.state_dict(); sorted(state)
        ['dense/W', 'dense/W/adam_m', 'dense/W/adam_t', 'dense/W/adam_v', 'dense/b', 'dense/b/adam_m', 'dense/b/adam_t', 'dense/b/adam_v', 'optimizer/lr']
        >>> state["dense/b"][0] = 9.0; float(m.variables["dense/b"][0])   # a copy: the model is unchanged
        0.0
        """
        return {k: v.copy() for k, v in self.variables.items()}

    def load_state_dict(self, state: dict, strict: bool = True, source: str | None = None):
        """Copy ``state`` into the model's variables. Returns (missing, unexpected)
        key lists; with ``strict``, either being non-empty is a KeyError. Every
        value is checked (shape, finite numbers) before any is copied.

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.load_state_dict({"dense/W": [[1.0], [2.0]]}, strict=False)
        (['dense/b'], [])
        >>> m.variables["dense/W"].ravel().tolist()
        [1.0, 2.0]
        >>> m.load_state_dict({"dense/W": [[1.0], [2.0]]})
        Traceback (most recent call last):
        ...
        KeyError: "state does not match the model: missing ['dense/b'], unexpected []"
        """
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
        """A copy of every parameter, by name (no optimizer state).

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> {k: (v.shape, v.dtype.name) for k, v in m.get_weights().items()}
        {'dense/W': ((2, 1), 'float32'), 'dense/b': ((1,), 'float32')}
        >>> m.get_weights()["dense/b"]          # biases start at zero
        array([0.], dtype=float32)
        """
        return {k: v.copy() for k, v in self.variables.items()
                if self._checked.has_node(k) and self._checked.nodes[k]["op"] == "param"}

    def set_weights(self, weights: dict) -> None:
        """Overwrite parameters in place (shapes must match; finite real numbers).
        All are checked before any is written.

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.set_weights({"dense/W": np.array([[1.0], [-1.0]]), "dense/b": np.array([0.5])})
        >>> m.predict(np.array([[3.0, 1.0]])).tolist()        # 3 - 1 + 0.5
        [[2.5]]
        >>> m.set_weights({"dense/b": np.array([1.0]), "dense/W": np.zeros((3, 1))})
        Traceback (most recent call last):
        ...
        ValueError: parameter 'dense/W' has shape (2, 1), got (3, 1)
        >>> m.get_weights()["dense/b"].tolist()                # untouched: nothing was written
        [0.5]
        """
        if not isinstance(weights, dict):
            raise TypeError(f"set_weights takes a dict of arrays by name, got {type(weights).__name__}")
        for k, v in weights.items():
            if k not in self.variables:
                raise KeyError(f"no parameter named {k!r}")
            _check_value(k, v, self.variables[k], "parameter")
        for k, v in weights.items():
            self.variables[k][...] = v

    def compile_config(self) -> dict | None:
        """How the model was compiled, as plain data (None if it was not).

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile_config() is None
        True
        >>> m.compile(loss="mse", optimizer="sgd"); _ = m.program("train")
        >>> m.compile_config()
        {'loss': ['name', 'mse'], 'optimizer': {'name': 'sgd', 'lr': 0.01, 'momentum': 0.0, 'nesterov': False}, 'metrics': [], 'fuse': True, 'targets': [[[None, 1], 'float32', False]]}
        """
        if self._loss is None:
            return None
        return {"loss": self._loss.config(), "optimizer": self.optimizer.spec(),
                "metrics": self.metrics, "fuse": self.fuse,
                "targets": [TargetSpec(*t).config() for t in self._built]}

    def compile_from_config(self, config: dict) -> None:
        """Compile as ``compile_config()`` described, and build the same programs'
        graphs, so that saved optimizer state has somewhere to go.

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="adam"); _ = m.program("train")
        >>> twin = Model(g, x, m.outputs[0]); twin.compile_from_config(m.compile_config())
        >>> twin.optimizer, sorted(twin.variables) == sorted(m.variables)
        (Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08), True)
        """
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
