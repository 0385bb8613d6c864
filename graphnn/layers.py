"""Layers: builder methods that expand into op nodes (macros over ops).

``dense`` is a ``matmul`` with a weight ``W``, a ``bias_add`` with ``b`` and an
optional activation, all inside a named block, so the layer's nodes are called
``<name>/W``, ``<name>/matmul``, ... and carry ``group=<name>``.

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("x", (None, 2)); t = g.input("t", (None, 1))
>>> loss = g.mse(g.dense(x, 1, activation="sigmoid"), t)
>>> loss.shape
()
"""
from __future__ import annotations

from contextlib import contextmanager

ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "softplus", "softmax")


class LayerMethods:
    """Mixed into Graph: every user-facing layer, activation and loss."""

    # ---------------------------------------------------------------- blocks
    @contextmanager
    def block(self, name: str):
        """Group the nodes added inside under ``name``; if anything inside fails,
        the nodes it added are removed again, so the graph stays as it was.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2))
        >>> with g.block("enc"):
        ...     y = g.relu(x)
        >>> y.name
        'enc/relu'
        """
        full = f"{self._groups[-1]}/{name}" if self._groups else name
        before = set(self.nx.nodes)
        self._groups.append(full)
        try:
            yield full
        except BaseException:
            self.nx.remove_nodes_from([n for n in list(self.nx.nodes) if n not in before])
            raise
        finally:
            self._groups.pop()

    def _layer_name(self, name, kind):
        if name is not None:
            return name
        taken = {d.get("group", "").split("/")[0] for _, d in self.nx.nodes(data=True)}
        if kind not in taken:
            return kind
        i = 1
        while f"{kind}_{i}" in taken:
            i += 1
        return f"{kind}_{i}"

    # ---------------------------------------------------------------- layers
    def dense(self, x, units: int, activation: str | None = None, use_bias: bool = True,
              name: str | None = None, kernel_init: str = "glorot_uniform",
              bias_init: str = "zeros"):
        """A fully connected layer: activation(x @ W + b) on (N, features) input.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 64))
        >>> g.dense(x, 10).shape
        (None, 10)
        """
        x = self._tensor(x)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"dense: units must be a positive int, got {units!r}")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"dense: unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        with self.block(self._layer_name(name, "dense")):
            w = self.param("W", (x.shape[-1], units), init=kernel_init)
            y = self.op("matmul", [x, w], name="matmul")
            if use_bias:
                y = self.op("bias_add", [y, self.param("b", (units,), init=bias_init)],
                             name="bias_add")
            if activation not in (None, "linear"):
                y = self.activation(y, activation)
        return y

    def activation(self, x, kind: str, name: str | None = None, **attrs):
        """Apply an activation by name ('relu', 'tanh', ...)."""
        if kind not in ACTIVATIONS:
            raise ValueError(f"unknown activation {kind!r}; expected one of {ACTIVATIONS}")
        return self.op(kind, [x], name=name, **attrs)

    def linear(self, x, name=None):
        """The identity activation."""
        return self.op("linear", [x], name=name)

    def relu(self, x, name=None):
        """max(x, 0)."""
        return self.op("relu", [x], name=name)

    def leaky_relu(self, x, alpha: float = 0.01, name=None):
        """x for x > 0, alpha * x otherwise."""
        return self.op("leaky_relu", [x], name=name, alpha=alpha)

    def tanh(self, x, name=None):
        """Hyperbolic tangent."""
        return self.op("tanh", [x], name=name)

    def sigmoid(self, x, name=None):
        """1 / (1 + exp(-x))."""
        return self.op("sigmoid", [x], name=name)

    def softplus(self, x, name=None):
        """log(1 + exp(x))."""
        return self.op("softplus", [x], name=name)

    def softmax(self, x, axis: int = -1, name=None):
        """exp(x) / sum(exp(x)) along ``axis``."""
        return self.op("softmax", [x], name=name, axis=axis)

    def add(self, a, b, name=None):
        """a + b, with NumPy broadcasting (a residual connection, say).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 3))
        >>> g.add(x, x).shape
        (None, 3)
        """
        return self.op("add", [a, b], name=name)

    def flatten(self, x, name=None):
        """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
        return self.op("flatten", [x], name=name)

    def reshape(self, x, shape: tuple, name=None):
        """A new per-sample shape (the batch dimension is kept, Keras-style).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 64))
        >>> g.reshape(x, (8, 8)).shape
        (None, 8, 8)
        """
        x = self._tensor(x)
        full = (x.shape[0], *shape) if x.shape and x.shape[0] is None else tuple(shape)
        return self.op("reshape", [x], name=name, shape=full)

    # ---------------------------------------------------------------- losses
    def mse(self, pred, target, reduction: str = "mean", name=None):
        """Mean squared error (the L2 / RMS loss)."""
        return self.op("mse", [pred, target], name=name, reduction=reduction)

    def l1(self, pred, target, reduction: str = "mean", name=None):
        """Mean absolute error."""
        return self.op("l1", [pred, target], name=name, reduction=reduction)

    def softmax_cross_entropy(self, logits, labels, reduction: str = "mean", name=None):
        """Cross-entropy of softmax(logits) against integer labels or one-hot rows."""
        return self.op("softmax_cross_entropy", [logits, labels], name=name, reduction=reduction)

    def binary_cross_entropy(self, pred, target, from_logits: bool = False,
                             reduction: str = "mean", name=None):
        """Binary cross-entropy from probabilities (or, stably, from logits)."""
        return self.op("binary_cross_entropy", [pred, target], name=name,
                        reduction=reduction, from_logits=from_logits)
