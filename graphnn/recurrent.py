"""LSTM and GRU layers over a (static) sequence length.

The LSTM is one op over the whole sequence, ``lstm_scan`` (compiler/ops/lstm_scan.py:
a feature-major state, one GEMM per step over weights stacked once per training
step, the backward pass a reverse loop, the weights' gradient one GEMM over all
steps). The GRU is unrolled: each step is one op, ``gru_cell``, reading the
previous step's state (compiler/ops/gru.py). See docs/architecture.md for why.

Gate layouts follow PyTorch: LSTM [input, forget, cell, output]; GRU [reset,
update, new], with the reset gate applied after the recurrent product. W
(features, gates * units) and U (units, gates * units) are PyTorch's weight_ih
and weight_hh transposed; the LSTM's one bias b is PyTorch's bias_ih + bias_hh,
the GRU's b and b_recurrent are bias_ih and bias_hh.

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("rows", (None, 5, 3))
>>> g.lstm(x, 4).shape, g.gru(x, 4, return_sequences=True).shape
((None, 4), (None, 5, 4))
"""
from __future__ import annotations

from .compiler.ops import fmt_shape
from .layers import layer


class RecurrentMethods:
    """Mixed into Graph: lstm and gru.

    >>> from graphnn import Graph
    >>> issubclass(Graph, RecurrentMethods)
    True
    >>> g = Graph(); g.gru(g.input("x", (None, 3)), 4)
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.ShapeError: 1 problem in the graph:
      node 'gru' (gru): expected a sequence of shape (N, T, features) ... got (N, 3) from 'x'...
    """

    def _sequence(self, x, kind, name, units, return_sequences):
        x = self._tensor(x)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{kind}: units must be a positive int, got {units!r}")
        if not isinstance(return_sequences, bool):
            raise ValueError(f"{kind}: return_sequences must be True or False, got {return_sequences!r}")
        name = self._layer_name(name, kind)
        if len(x.shape) != 3 or x.shape[0] is not None or None in x.shape[1:]:
            self._fail(name, kind, f"expected a sequence of shape (N, T, features) with a known "
                       f"length T, got {fmt_shape(x.shape)} from {x.name!r}")
        return x, name

    @layer
    def lstm(self, x, units: int, return_sequences: bool = False, name=None,
             kernel_init: str = "glorot_uniform", recurrent_init: str = "orthogonal",
             bias_init: str = "zeros"):
        """A long short-term memory layer (Hochreiter and Schmidhuber, 1997) on
        (N, T, features): the last hidden state (N, units), or every state
        (N, T, units) with ``return_sequences``. Initial states are zero.

        The steps are one ``lstm_scan`` (compiler/ops/lstm_scan.py) over the
        stacked weights and x: its kernel loops over the steps, its gradient
        loops back over them.

        Against PyTorch's LSTM formula in NumPy, with the model's own weights:

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2, 3)); m = Model(g, x, g.lstm(x, 4))
        >>> W, U, b = (m.variables[f"lstm/{k}"] for k in "WUb")         # (3, 16), (4, 16), (16,)
        >>> xs = np.random.default_rng(0).normal(size=(5, 2, 3)).astype("float32")
        >>> sig, h, c = lambda v: 1 / (1 + np.exp(-v)), np.zeros((5, 4)), np.zeros((5, 4))
        >>> for t in range(2):
        ...     i, f, gate, o = np.split(xs[:, t] @ W + h @ U + b, 4, axis=1)
        ...     c = sig(f) * c + sig(i) * np.tanh(gate); h = sig(o) * np.tanh(c)
        >>> np.allclose(m.predict(xs), h, atol=1e-5)
        True
        """
        x, name = self._sequence(x, "lstm", name, units, return_sequences)
        steps, features = x.shape[1], x.shape[2]
        with self.block(name):
            w = self.param("W", (features, 4 * units), init=kernel_init)
            u = self.param("U", (units, 4 * units), init=recurrent_init) if steps > 1 else None
            b = self.param("b", (4 * units,), init=bias_init)
            stacked = self.op("lstm_weights", [w, b] + ([u] if u is not None else []), name="weights")
            states = self.op("lstm_scan", [stacked, x], name="scan")
            reader = "lstm_sequence" if return_sequences else "lstm_last"
            return self.op(reader, [states], name="sequence" if return_sequences else "h",
                           steps=steps, units=units)

    @layer
    def gru(self, x, units: int, return_sequences: bool = False, name=None,
            kernel_init: str = "glorot_uniform", recurrent_init: str = "orthogonal",
            bias_init: str = "zeros"):
        """A gated recurrent unit layer (Cho et al., 2014), PyTorch's form:
        r = s(x Wr + h Ur + br), z = s(x Wz + h Uz + bz), n = tanh(x Wn + bn + r (h Un + bhn)),
        h' = n + z (h - n). Shapes as for lstm; the initial state is zero.

        Each step is one ``gru_cell`` (compiler/ops/gru.py) reading the stacked
        weights, x and the previous step's state.

        Against PyTorch's GRU formula in NumPy, with the model's own weights:

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2, 3)); m = Model(g, x, g.gru(x, 4, return_sequences=True))
        >>> W, U, b, bh = (m.variables[f"gru/{k}"] for k in ("W", "U", "b", "b_recurrent"))
        >>> xs = np.random.default_rng(0).normal(size=(5, 2, 3)).astype("float32")
        >>> sig, h, hs = lambda v: 1 / (1 + np.exp(-v)), np.zeros((5, 4)), []
        >>> for t in range(2):
        ...     (xr, xz, xn), (hr, hz, hn) = np.split(xs[:, t] @ W + b, 3, 1), np.split(h @ U + bh, 3, 1)
        ...     r, z = sig(xr + hr), sig(xz + hz); n = np.tanh(xn + r * hn)
        ...     h = (1 - z) * n + z * h; hs.append(h)
        >>> np.allclose(m.predict(xs), np.stack(hs, axis=1), atol=1e-5)
        True
        """
        x, name = self._sequence(x, "gru", name, units, return_sequences)
        steps, features = x.shape[1], x.shape[2]
        with self.block(name):
            w = self.param("W", (features, 3 * units), init=kernel_init)
            u = self.param("U", (units, 3 * units), init=recurrent_init) if steps > 1 else None
            b = self.param("b", (3 * units,), init=bias_init)
            bh = self.param("b_recurrent", (3 * units,), init=bias_init)
            stacked = self.op("gru_weights", [w, b, bh] + ([u] if u is not None else []), name="weights")
            states = []
            for t in range(steps):
                states.append(self.op("gru_cell", [stacked, x] + states[-1:], name=f"cell{t}", step=t))
            if return_sequences:
                return self.op("gru_sequence", states, name="sequence")
            return self.op("gru_last", [states[-1]], name="h")
