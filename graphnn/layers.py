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

import functools
import inspect
import re
import zlib
from contextlib import contextmanager

from .base import user_source
from .compiler.errors import Problem, ShapeError
from .compiler.ops import OPS, fmt_shape, with_role
from .compiler.ops.base import REQUIRED

ACTIVATIONS = tuple(with_role("activation"))      # from the op table
LAYER_TYPES: dict[str, inspect.Signature] = {}     # builder methods a spec may name


def layer(method):
    """Record each top-level call of a builder method in ``graph.layers`` (its
    type, name, inputs and arguments): specs, summaries and plots read it.
    Calls made inside another builder (dense's activation) are not recorded on
    their own; a bad argument's error is restated to name the layer.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 2)); _ = g.dense(x, 3, activation="relu")
    >>> g.layers[-1]
    {'type': 'dense', 'name': 'dense', 'inputs': ['x'], 'output': 'dense/relu', 'units': 3, 'activation': 'relu'}
    >>> g.dense(x, 0, name="head")                   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: dense 'head': ...
    """
    signature = inspect.signature(method)
    LAYER_TYPES[method.__name__] = signature

    @functools.wraps(method)
    def call(self, *args, share: str | None = None, **kwargs):
        self._depth += 1
        try:
            if share is None:
                out = method(self, *args, **kwargs)
            else:                        # graphnn.reuse: the weights of layer ``share``
                with self._sharing(method.__name__, share):
                    out = method(self, *args, **kwargs)
        except (ValueError, TypeError) as e:
            raise _naming_the_layer(self, method.__name__, signature, args, kwargs, e) from None
        finally:
            self._depth -= 1
        if self._depth == 0:
            self._record(method.__name__, signature.bind(self, *args, **kwargs), out)
            if share is not None:
                self.layers[-1]["share"] = share
        elif self._groups and hasattr(out, "name"):
            self._record_nested(method.__name__, out)
        return out
    return call


def _naming_the_layer(graph, kind, signature, args, kwargs, error):
    """``error`` (a bad argument) restated to name the layer it was given to, and
    where the user's code called it. Graph errors name their node already; an
    error named by an inner layer (a param of a dense) keeps its name."""
    from .compiler.errors import GraphError
    if isinstance(error, GraphError) or getattr(error, "layer", None) or \
            type(error) not in (ValueError, TypeError):
        return error
    try:
        name = signature.bind_partial(graph, *args, **kwargs).arguments.get("name")
    except TypeError:
        name = kwargs.get("name")
    if not isinstance(name, str):
        name = graph._layer_name(None, kind) if kind not in ("op", "input", "param") else kind
    full = f"{graph._groups[-1]}/{name}" if graph._groups and "/" not in name else name
    message = re.sub(r"^\w+(\.\w+)?\(\) ", "", str(error))      # "LayerMethods.dense() got ..."
    for prefix in (f"{kind} {name!r}: ", f"{kind}: "):              # said again below
        message = message.removeprefix(prefix)
    source = user_source()
    named = type(error)(f"{kind} {full!r}: {message}" + (f"  [called at {source}]" if source else ""))
    named.layer = full
    return named


class LayerMethods:
    """Mixed into Graph: dense, activations, elementwise and shape layers (the
    convolution, loss, recurrent and other families come from their own mixins).

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 4, 2))
    >>> g.dense(g.flatten(x), 3, activation="softmax").shape
    (None, 3)
    """

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
        before = len(self.nx)             # nodes keep their order: new ones come last
        records = len(self.layers)
        self._groups.append(full)
        try:
            yield full
        except BaseException:
            self._forget_names()
            self.nx.remove_nodes_from(list(self.nx)[before:])
            for rec in self.layers[records:]:       # the records of what was removed too
                self._layer_of.pop(rec["output"], None)
            del self.layers[records:]
            raise
        finally:
            self._groups.pop()

    def _fail(self, node, op, message):
        """Raise a ShapeError about a layer, at the user's line."""
        raise ShapeError([Problem(node, op, message, user_source(), kind="shape")])

    # ---------------------------------------------------------------- layers
    @layer
    def dense(self, x, units: int, activation: str | None = None, use_bias: bool = True,
              name: str | None = None, kernel_init: str = "glorot_uniform",
              bias_init: str = "zeros", kernel_regularizer=None):
        """A fully connected layer: activation(x @ W + b) on (N, features) input.
        W is (features, units), as in Keras; PyTorch's Linear keeps its transpose.

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
        name = self._layer_name(name, "dense")
        if len(x.shape) != 2:
            self._fail(name, "dense", f"expected input of shape (N, features), got "
                       f"{fmt_shape(x.shape)} from {x.name!r}; flatten it first")
        with self.block(name):
            w = self.param("W", (x.shape[-1], units), init=kernel_init)
            self._penalize(w, kernel_regularizer)
            y = self.op("matmul", [x, w], name="matmul")
            y = self._bias_and_activation(y, units, use_bias, bias_init, activation, axis=-1)
        return y

    def _penalize(self, w, regularizer):
        """Add the regularizer's penalty terms on ``w`` (the Model adds them to the loss)."""
        from .regularizers import get
        reg = get(regularizer)
        for op, scale in (reg.terms() if reg else []):
            self.op(op, [w], name=f"{w.name.split('/')[-1]}_{op}", scale=scale)

    @layer
    def batch_norm(self, x, axis: int = 1, momentum: float = 0.99, eps: float = 1e-3, name=None):
        """Batch normalization (Ioffe and Szegedy, 2015) over the channel ``axis``
        (1: the features of (N, F), the channels of (N, C, H, W)). Training
        normalizes with the batch's statistics and keeps running averages;
        evaluation and prediction use the running averages, folded into the dense
        or convolution before the layer when there is one.

        Keras's conventions, not PyTorch's: running = momentum running +
        (1 - momentum) batch, with momentum 0.99 and eps 1e-3 by default (PyTorch's
        momentum m is graphnn's 1 - m; its defaults are 0.1 and 1e-5), and the
        running variance averages the biased batch variance (divided by the M
        values of a channel, not M - 1 as PyTorch's). The normalization divides by
        sqrt(var + eps) with the biased variance in both.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("img", (None, 4, 6, 6))
        >>> g.batch_norm(x).shape
        (None, 4, 6, 6)
        """
        x = self._tensor(x)
        name = self._layer_name(name, "batch_norm")
        if len(x.shape) < 2 or not -len(x.shape) <= axis < len(x.shape) or x.shape[axis] is None:
            self._fail(name, "batch_norm", f"axis {axis} is not a channel axis of {fmt_shape(x.shape)}")
        channels = x.shape[axis]
        with self.block(name):
            gamma = self.param("gamma", (channels,), init="ones")
            beta = self.param("beta", (channels,), init="zeros")
            running_mean = self.param("running_mean", (channels,), init="zeros", trainable=False)
            running_var = self.param("running_var", (channels,), init="ones", trainable=False)
            mean = self.op("batch_mean", [x], name="mean", axis=axis)
            var = self.op("batch_var", [x, mean], name="var", axis=axis)
            for stat, value in ((running_mean, mean), (running_var, var)):
                self.op("moving_average", [stat, value], name=f"{stat.name.split('/')[-1]}_update",
                        momentum=momentum)
            return self.op("normalize", [x, mean, var, gamma, beta], name="normalize", axis=axis,
                           eps=eps)

    @layer
    def dropout(self, x, rate: float = 0.5, seed: int | None = None, name=None):
        """Inverted dropout: during training each value is zeroed with probability
        ``rate`` and the rest scaled by 1 / (1 - rate); evaluation and prediction
        pass x through. Masks come from a generator seeded by ``seed`` (by default
        from the layer's name), so training is reproducible.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 8))
        >>> g.dropout(x, 0.25).shape
        (None, 8)
        """
        if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"dropout: rate must be in [0, 1), got {rate!r}")
        name = self._layer_name(name, "dropout")
        with self.block(name):
            seed = zlib.crc32(name.encode()) if seed is None else seed
            mask = self.op("dropout_mask", [x], name="mask", rate=float(rate), seed=int(seed))
            return self.op("multiply", [x, mask], name="apply")

    def _bias_and_activation(self, y, units, use_bias, bias_init, activation, axis):
        if use_bias:
            b = self.param("b", (units,), init=bias_init)
            y = self.op("bias_add", [y, b], name="bias_add", axis=axis)
        if activation not in (None, "linear"):
            y = self.activation(y, activation)
        return y

    @layer
    def activation(self, x, kind: str, name: str | None = None, **attrs):
        """Apply an activation by name ('relu', 'tanh', ...; ACTIVATIONS lists them).

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 3)); y = g.activation(x, "relu")
        >>> Model(g, x, y).predict(np.array([[-1.0, 0.0, 2.0]])).tolist()
        [[0.0, 0.0, 2.0]]
        >>> g.activation(x, "relu6")                     # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: activation 'activation': unknown activation 'relu6'; expected one of ('relu', ...
        """
        if kind not in ACTIVATIONS:
            raise ValueError(f"unknown activation {kind!r}; expected one of {ACTIVATIONS}")
        return self.op(kind, [x], name=name, **attrs)

    @layer
    def add(self, a, b, name=None):
        """a + b, with NumPy broadcasting (a residual connection, say).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 3))
        >>> g.add(x, x).shape
        (None, 3)
        """
        return self.op("add", [a, b], name=name)

    @layer
    def multiply(self, a, b, name=None):
        """a * b elementwise, with NumPy broadcasting (a gate, say).

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); a = g.input("a", (None, 2)); b = g.input("b", (None, 2))
        >>> m = Model(g, [a, b], g.multiply(a, b))
        >>> m.predict([np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]])]).tolist()
        [[3.0, 8.0]]
        """
        return self.op("multiply", [a, b], name=name)

    @layer
    def concat(self, *tensors, axis: int = -1, name=None):
        """Tensors joined along ``axis`` (any but the batch axis); ``concat(a, b)``
        or ``concat([a, b])``.

        >>> from graphnn import Graph
        >>> g = Graph(); a = g.input("a", (None, 2)); b = g.input("b", (None, 3))
        >>> g.concat(a, b).shape
        (None, 5)
        """
        if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
            tensors = tuple(tensors[0])          # concat([a, b]), as NumPy and Keras take it
        return self.op("concat", list(tensors), name=name, axis=axis)

    @layer
    def slice(self, x, start: int, stop: int, axis: int = 1, name=None):
        """x[:, start:stop] (along ``axis``): a time step of a sequence, say.

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 4, 2)); y = g.slice(x, 1, 3)
        >>> y.shape
        (None, 2, 2)
        >>> Model(g, x, y).predict(np.arange(8.0).reshape(1, 4, 2)).tolist()   # rows 1 and 2
        [[[2.0, 3.0], [4.0, 5.0]]]
        """
        return self.op("slice", [x], name=name, axis=axis, start=start, stop=stop)

    @layer
    def transpose(self, x, perm, name=None):
        """Axes permuted; the batch axis stays first, e.g. perm=(0, 2, 1).

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2, 3)); y = g.transpose(x, (0, 2, 1))
        >>> y.shape
        (None, 3, 2)
        >>> Model(g, x, y).predict(np.arange(6.0).reshape(1, 2, 3)).tolist()
        [[[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]]
        """
        return self.op("transpose", [x], name=name, perm=list(perm))

    @layer
    def embedding(self, ids, vocabulary: int, features: int, name=None, init: str = "uniform"):
        """A learned table of ``vocabulary`` rows of ``features``: integer ids
        (N, ...) become vectors (N, ..., features).

        >>> from graphnn import Graph
        >>> g = Graph(); w = g.input("words", (None, 7), dtype="int64")
        >>> g.embedding(w, 100, 16).shape
        (None, 7, 16)
        """
        name = self._layer_name(name, "embedding")
        with self.block(name):
            table = self.param("table", (vocabulary, features), init=init)
            return self.op("embedding", [ids, table], name="lookup")

    @layer
    def flatten(self, x, name=None):
        """(N, d1, d2, ...) -> (N, d1 * d2 * ...), in row-major order.

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2, 3)); y = g.flatten(x)
        >>> y.shape
        (None, 6)
        >>> Model(g, x, y).predict(np.arange(6.0).reshape(1, 2, 3)).tolist()
        [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
        """
        return self.op("flatten", [x], name=name)

    @layer
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

    @layer
    def exp(self, x, name=None):
        """e^x, elementwise.

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2))
        >>> [round(float(v), 5) for v in Model(g, x, g.exp(x)).predict(np.array([[0.0, 1.0]]))[0]]
        [1.0, 2.71828]
        """
        return self.op("exp", [x], name=name)

    @layer
    def latent_sample(self, h, latent_dim: int, beta: float = 1.0, seed: int | None = None,
                      name=None):
        """A VAE's latent layer (Kingma and Welling, 2014): mean and log-variance
        heads, the reparameterized sample z = mean + exp(logvar / 2) * noise, and
        the KL term (times ``beta``) that the Model adds to the training loss.
        Evaluation and prediction use z = mean.

        >>> from graphnn import Graph
        >>> g = Graph(); h = g.input("h", (None, 16))
        >>> g.latent_sample(h, 2, name="z").shape
        (None, 2)
        """
        name = self._layer_name(name, "latent")
        with self.block(name):
            mean = self.dense(h, latent_dim, name="mean")
            logvar = self.dense(h, latent_dim, name="logvar")
            seed = zlib.crc32(name.encode()) if seed is None else seed
            noise = self.op("gaussian_noise", [mean], name="noise", seed=int(seed))
            std = self.op("exp", [self.op("scale", [logvar], name="half_logvar", factor=0.5)], name="std")
            z = self.op("add", [mean, self.op("multiply", [std, noise], name="spread")], name="z")
            self.op("gaussian_kl", [mean, logvar], name="kl", scale=float(beta))
            return z

def _activation_method(op) -> None:
    """Give LayerMethods a method named after activation ``op`` (from the op table):
    ``g.<op>(x, <the op's attributes>, name=None)``, recorded as a layer, so the
    builder and spec files know every activation the table holds."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD), P("x", P.POSITIONAL_OR_KEYWORD)]
    for key, attr in op.attrs.items():
        default = P.empty if attr.default is REQUIRED else attr.default
        params.append(P(key, P.POSITIONAL_OR_KEYWORD, default=default))
    params.append(P("name", P.POSITIONAL_OR_KEYWORD, default=None))
    signature = inspect.Signature(params)

    def method(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        attrs = {k: bound.arguments[k] for k in op.attrs}
        return self.op(op.name, [bound.arguments["x"]], name=bound.arguments["name"], **attrs)

    method.__name__ = method.__qualname__ = op.name
    method.__signature__ = signature
    method.__doc__ = (f"{op.doc}\n\n        >>> from graphnn import Graph\n"
                      f"        >>> g = Graph(); g.{op.name}(g.input('x', (None, 4))).shape\n"
                      f"        (None, 4)\n        ")
    setattr(LayerMethods, op.name, layer(method))


for _name in ACTIVATIONS:       # every activation of the op table, one method each
    _activation_method(OPS[_name])
