"""LSTM and GRU layers, unrolled over the (static) sequence length.

The LSTM's steps are ``lstm_cell`` ops, one per step, each reading the previous
step's state (compiler/ops/recurrent.py: a feature-major state, one GEMM per
step, gradients gathered into one product over all steps). The GRU's steps are
cells of ordinary ops sharing one set of weights, so shape inference, autodiff
(backpropagation through time), fusion and memory planning apply unchanged and
the gradient of a shared weight is one ``add_n`` of the steps' contributions;
its input projection of all steps is a single (N, T, F) @ (F, gates) product.
See docs/architecture.md for why unrolling rather than a scan op.

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
    """Mixed into Graph: lstm and gru."""

    def _sequence(self, x, kind, name):
        x = self._tensor(x)
        name = self._layer_name(name, kind)
        if len(x.shape) != 3 or x.shape[0] is not None or None in x.shape[1:]:
            self._fail(name, kind, f"expected a sequence of shape (N, T, features) with a known "
                       f"length T, got {fmt_shape(x.shape)} from {x.name!r}")
        return x, name

    def _project(self, x, units, gates, kernel_init, recurrent_init, bias_init):
        """The weights every gate shares across steps, and the input projection of
        all steps as one product: (U, projected input (N, T, gates * units)). A
        one-step sequence has no recurrent product, so no U (None)."""
        features = x.shape[2]
        w = self.param("W", (features, gates * units), init=kernel_init)
        u = self.param("U", (units, gates * units), init=recurrent_init) if x.shape[1] > 1 else None
        b = self.param("b", (gates * units,), init=bias_init)
        projected = self.op("bias_add", [self.op("matmul", [x, w], name="input_proj"), b],
                            name="input_gates")
        return u, projected

    def _steps(self, projected, t, width):
        """The projected input of step t: (N, width)."""
        step = self.op("slice", [projected], name=f"x{t}", axis=1, start=t, stop=t + 1)
        return self.op("reshape", [step], name=f"x{t}_row", shape=(None, width))

    def _gate(self, z, k, units, t, what):
        return self.op("slice", [z], name=f"{what}{t}_in", axis=1, start=k * units, stop=(k + 1) * units)

    def _collect(self, outputs, units):
        rows = [self.op("reshape", [h], name=f"h{t}_step", shape=(None, 1, units))
                for t, h in enumerate(outputs)]
        return self.op("concat", rows, name="sequence", axis=1) if len(rows) > 1 else rows[0]

    @layer
    def lstm(self, x, units: int, return_sequences: bool = False, name=None,
             kernel_init: str = "glorot_uniform", recurrent_init: str = "orthogonal",
             bias_init: str = "zeros"):
        """A long short-term memory layer (Hochreiter and Schmidhuber, 1997) on
        (N, T, features): the last hidden state (N, units), or every state
        (N, T, units) with ``return_sequences``. Initial states are zero.

        Each step is one ``lstm_cell`` (compiler/ops/recurrent.py) reading the
        stacked weights, x and the previous step's state."""
        x, name = self._sequence(x, "lstm", name)
        steps, features = x.shape[1], x.shape[2]
        with self.block(name):
            w = self.param("W", (features, 4 * units), init=kernel_init)
            u = self.param("U", (units, 4 * units), init=recurrent_init) if steps > 1 else None
            b = self.param("b", (4 * units,), init=bias_init)
            stacked = self.op("lstm_weights", [w, b] + ([u] if u is not None else []), name="weights")
            states = []
            for t in range(steps):
                states.append(self.op("lstm_cell", [stacked, x] + states[-1:], name=f"cell{t}", step=t))
            if return_sequences:
                return self.op("lstm_sequence", states, name="sequence")
            return self.op("lstm_last", [states[-1]], name="h")

    @layer
    def gru(self, x, units: int, return_sequences: bool = False, name=None,
            kernel_init: str = "glorot_uniform", recurrent_init: str = "orthogonal",
            bias_init: str = "zeros"):
        """A gated recurrent unit layer (Cho et al., 2014), PyTorch's form:
        r = s(x Wr + h Ur + br), z = s(x Wz + h Uz + bz), n = tanh(x Wn + bn + r (h Un + bhn)),
        h' = n + z (h - n). Shapes as for lstm; the initial state is zero."""
        x, name = self._sequence(x, "gru", name)
        steps = x.shape[1]
        with self.block(name):
            u, projected = self._project(x, units, 3, kernel_init, recurrent_init, bias_init)
            bh = self.param("b_recurrent", (3 * units,), init=bias_init)
            h = None
            outputs = []
            for t in range(steps):
                xz = self._steps(projected, t, 3 * units)
                if h is None:                    # h = 0: the recurrent product is its bias alone
                    hz = [self.op("slice", [bh], name=f"bh{k}", axis=0, start=k * units,
                                  stop=(k + 1) * units) for k in range(3)]
                    r = self.op("sigmoid", [self.op("bias_add", [self._gate(xz, 0, units, t, "xr"), hz[0]],
                                                    name=f"r{t}_in")], name=f"r{t}")
                    z = self.op("sigmoid", [self.op("bias_add", [self._gate(xz, 1, units, t, "xz"), hz[1]],
                                                    name=f"z{t}_in")], name=f"z{t}")
                    gated = self.op("multiply", [r, hz[2]], name=f"rh{t}")
                else:
                    hu = self.op("bias_add", [self.op("matmul", [h, u], name=f"recur{t}"), bh],
                                 name=f"hu{t}")
                    r = self.op("sigmoid", [self.op("add", [self._gate(xz, 0, units, t, "xr"),
                                                            self._gate(hu, 0, units, t, "hr")],
                                                    name=f"r{t}_in")], name=f"r{t}")
                    z = self.op("sigmoid", [self.op("add", [self._gate(xz, 1, units, t, "xz"),
                                                            self._gate(hu, 1, units, t, "hz")],
                                                    name=f"z{t}_in")], name=f"z{t}")
                    gated = self.op("multiply", [r, self._gate(hu, 2, units, t, "hn")], name=f"rh{t}")
                n = self.op("tanh", [self.op("add", [self._gate(xz, 2, units, t, "xn"), gated],
                                             name=f"n{t}_in")], name=f"n{t}")
                if h is None:                    # h' = n + z (0 - n)
                    h = self.op("subtract", [n, self.op("multiply", [z, n], name=f"zn{t}")], name=f"h{t}")
                else:
                    diff = self.op("subtract", [h, n], name=f"h_minus_n{t}")
                    h = self.op("add", [n, self.op("multiply", [z, diff], name=f"zd{t}")], name=f"h{t}")
                outputs.append(h)
            return self._collect(outputs, units) if return_sequences else h
