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
    type, name, inputs and arguments): specs, summaries and plots read it."""
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

    @layer
    def conv2d(self, x, filters: int, kernel_size, strides=1, padding="valid", dilation=1,
               activation: str | None = None, use_bias: bool = True, name: str | None = None,
               kernel_init: str = "glorot_uniform", bias_init: str = "zeros",
               kernel_regularizer=None, groups: int = 1):
        """2-D convolution of (N, C, H, W) images, PyTorch's layout; weight
        (filters, C / groups, KH, KW).

        ``padding`` is "valid", "same", an int, (pad_h, pad_w) or (top, bottom, left, right).
        "same" is Keras's: ceil(H / stride) outputs at any stride, and when the total
        padding is odd the extra pixel goes after (bottom, right), as in TensorFlow
        (PyTorch's "same", stride 1 only, places it the same way).
        ``groups`` splits the channels into that many independent convolutions
        (groups = C = filters is a depthwise convolution, see ``depthwise_conv2d``).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("img", (None, 1, 28, 28))
        >>> g.conv2d(x, 16, 3, padding="same", activation="relu").shape
        (None, 16, 28, 28)
        >>> g.conv2d(g.input("rgba", (None, 4, 8, 8)), 6, 3, groups=2).shape
        (None, 6, 6, 6)
        """
        x, name = self._conv_layer(x, name, "conv2d", filters, activation)
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if not isinstance(groups, int) or groups < 1 or x.shape[1] % groups or filters % groups:
            raise ValueError(f"conv2d {name!r}: groups must be a positive int dividing the "
                             f"{x.shape[1]} input channels and the {filters} filters, got {groups!r}")
        with self.block(name):
            w = self.param("W", (filters, x.shape[1] // groups, kh, kw), init=kernel_init)
            self._penalize(w, kernel_regularizer)
            y = self.op("conv2d", [x, w], name="conv", strides=strides, padding=padding,
                        dilation=dilation, groups=groups)
            y = self._bias_and_activation(y, filters, use_bias, bias_init, activation, axis=1)
        return y

    @layer
    def depthwise_conv2d(self, x, kernel_size, depth_multiplier: int = 1, strides=1,
                         padding="valid", dilation=1, activation: str | None = None,
                         use_bias: bool = True, name: str | None = None,
                         kernel_init: str = "glorot_uniform"):
        """Depthwise convolution: each input channel convolved with its own
        ``depth_multiplier`` filters (a conv2d with groups = channels).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("img", (None, 3, 8, 8))
        >>> g.depthwise_conv2d(x, 3, depth_multiplier=2, padding="same").shape
        (None, 6, 8, 8)
        """
        x = self._tensor(x)
        channels = x.shape[1] if len(x.shape) == 4 else 1
        return self.conv2d(x, channels * depth_multiplier, kernel_size, strides=strides,
                           padding=padding, dilation=dilation, activation=activation,
                           use_bias=use_bias, name=self._layer_name(name, "depthwise_conv2d"),
                           kernel_init=kernel_init, groups=channels)

    @layer
    def conv1d(self, x, filters: int, kernel_size: int, strides: int = 1, padding="valid",
               dilation: int = 1, activation: str | None = None, use_bias: bool = True,
               name: str | None = None, kernel_init: str = "glorot_uniform",
               bias_init: str = "zeros"):
        """1-D convolution of (N, C, L) sequences; weight (filters, C, K). Runs as a
        2-D convolution of (N, C, 1, L) (the reshapes are views, free at run time).
        ``padding`` is "valid", "same" (the odd pixel after, as for conv2d) or an int.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("seq", (None, 4, 50))
        >>> g.conv1d(x, 8, 5, strides=2).shape
        (None, 8, 23)
        """
        x, name = self._conv_layer(x, name, "conv1d", filters, activation, layout="(N, C, L)")
        pad = padding if isinstance(padding, str) else (0, 0, padding, padding)
        with self.block(name):
            w = self.param("W", (filters, x.shape[1], kernel_size), init=kernel_init)
            image = self.op("reshape", [x], name="as_image", shape=(x.shape[0], x.shape[1], 1, x.shape[2]))
            w4 = self.op("reshape", [w], name="W_2d", shape=(filters, x.shape[1], 1, kernel_size))
            y = self.op("conv2d", [image, w4], name="conv", strides=(1, strides), padding=pad,
                        dilation=(1, dilation))
            y = self._bias_and_activation(y, filters, use_bias, bias_init, activation, axis=1)
            y = self.op("reshape", [y], name="as_sequence", shape=(y.shape[0], filters, y.shape[3]))
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

    def _conv_layer(self, x, name, op, filters, activation, layout="(N, C, H, W)"):
        """The checks every convolution layer makes: (tensor, layer name)."""
        x = self._tensor(x)
        name = self._layer_name(name, op)
        self._check_filters(name, op, filters, activation)
        if len(x.shape) != layout.count(",") + 1:
            self._fail(name, op, f"expected input of shape {layout}, got {fmt_shape(x.shape)} "
                       f"from {x.name!r}")
        return x, name

    def _check_filters(self, name, op, filters, activation):
        if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"{op} {name!r}: filters must be a positive int, got {filters!r}")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"{op} {name!r}: unknown activation {activation!r}; "
                             f"expected one of {ACTIVATIONS}")

    def _bias_and_activation(self, y, units, use_bias, bias_init, activation, axis):
        if use_bias:
            b = self.param("b", (units,), init=bias_init)
            y = self.op("bias_add", [y, b], name="bias_add", axis=axis)
        if activation not in (None, "linear"):
            y = self.activation(y, activation)
        return y

    @layer
    def max_pool2d(self, x, pool_size=2, strides=None, padding="valid", name=None,
                   ceil_mode: bool = False, dilation=1):
        """Maximum over windows of (N, C, H, W); strides default to the pool size.
        ``ceil_mode`` keeps a last, partial window at the bottom and right;
        ``dilation`` spaces the window's taps (PyTorch's MaxPool2d dilation).

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("img", (None, 3, 27, 27))
        >>> g.max_pool2d(x, 2).shape, g.max_pool2d(x, 2, ceil_mode=True).shape
        ((None, 3, 13, 13), (None, 3, 14, 14))
        """
        return self.op("max_pool2d", [x], name=name, pool_size=pool_size, strides=strides,
                       padding=padding, ceil_mode=ceil_mode, dilation=dilation)

    @layer
    def avg_pool2d(self, x, pool_size=2, strides=None, padding="valid", name=None,
                   ceil_mode: bool = False, count_include_pad: bool = True):
        """Mean over windows of (N, C, H, W). Zero padding counts in the mean
        (PyTorch's default, also with padding="same"; Keras leaves it out) unless
        ``count_include_pad`` is False; ``ceil_mode`` keeps a last, partial window
        (its overhang never counts). "same" places the odd pixel of padding after,
        as for conv2d.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("img", (None, 3, 5, 5))
        >>> g.avg_pool2d(x, 3, strides=2, padding=1, count_include_pad=False).shape
        (None, 3, 3, 3)
        """
        return self.op("avg_pool2d", [x], name=name, pool_size=pool_size, strides=strides,
                       padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)

    def _pool1d(self, op, x, pool_size, strides, padding, name):
        x = self._tensor(x)
        name = self._layer_name(name, op.replace("2d", "1d"))
        if len(x.shape) != 3:
            self._fail(name, op, f"expected input of shape (N, C, L), got {fmt_shape(x.shape)}")
        pad = padding if isinstance(padding, str) else (0, 0, padding, padding)
        with self.block(name):
            image = self.op("reshape", [x], name="as_image", shape=(x.shape[0], x.shape[1], 1, x.shape[2]))
            y = self.op(op, [image], name="pool", pool_size=(1, pool_size),
                        strides=(1, strides or pool_size), padding=pad)
            return self.op("reshape", [y], name="as_sequence", shape=(y.shape[0], y.shape[1], y.shape[3]))

    @layer
    def max_pool1d(self, x, pool_size=2, strides=None, padding="valid", name=None):
        """Maximum over windows of (N, C, L) sequences.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("seq", (None, 3, 10))
        >>> g.max_pool1d(x, 2).shape
        (None, 3, 5)
        """
        return self._pool1d("max_pool2d", x, pool_size, strides, padding, name)

    @layer
    def avg_pool1d(self, x, pool_size=2, strides=None, padding="valid", name=None):
        """Mean over windows of (N, C, L) sequences; zero padding counts in the mean
        (PyTorch's default; Keras leaves it out), as for avg_pool2d.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("seq", (None, 3, 10))
        >>> g.avg_pool1d(x, 3, strides=1, padding=1).shape
        (None, 3, 10)
        """
        return self._pool1d("avg_pool2d", x, pool_size, strides, padding, name)

    @layer
    def global_avg_pool(self, x, name=None):
        """Mean over H and W: (N, C, H, W) -> (N, C)."""
        return self.op("global_avg_pool", [x], name=name)

    @layer
    def activation(self, x, kind: str, name: str | None = None, **attrs):
        """Apply an activation by name ('relu', 'tanh', ...)."""
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
        """a * b elementwise, with NumPy broadcasting (a gate, say)."""
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
        """x[:, start:stop] (along ``axis``): a time step of a sequence, say."""
        return self.op("slice", [x], name=name, axis=axis, start=start, stop=stop)

    @layer
    def transpose(self, x, perm, name=None):
        """Axes permuted; the batch axis stays first, e.g. perm=(0, 2, 1)."""
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
        """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
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

    # ---------------------------------------------------------------- losses
    @layer
    def mse(self, pred, target, reduction: str = "mean", name=None):
        """Mean squared error (the L2 / RMS loss): the mean (or sum) over every element.
        With sample weights (``fit(..., sample_weight=w)``) each row's loss is
        multiplied by its weight and the mean still divides by the
        number of elements, as Keras does (not by the sum of the weights).

        >>> from graphnn import Graph
        >>> g = Graph(); p, t = g.input("p", (None, 3)), g.input("t", (None, 3))
        >>> g.mse(p, t).shape
        ()
        """
        return self.op("mse", [pred, target], name=name, reduction=reduction)

    @layer
    def l1(self, pred, target, reduction: str = "mean", name=None):
        """Mean absolute error over every element (or the sum).
        With sample weights (``fit(..., sample_weight=w)``) each row's loss is
        multiplied by its weight and the mean still divides by the
        number of elements (Keras's convention).

        >>> from graphnn import Graph
        >>> g = Graph(); p, t = g.input("p", (None, 3)), g.input("t", (None, 3))
        >>> g.l1(p, t, reduction="sum").shape
        ()
        """
        return self.op("l1", [pred, target], name=name, reduction=reduction)

    @layer
    def softmax_cross_entropy(self, logits, labels, reduction: str = "mean", name=None):
        """Cross-entropy of softmax(logits) against integer labels, one-hot rows or
        soft targets (PyTorch's cross_entropy), averaged (or summed) over rows.
        With sample weights (``fit(..., sample_weight=w)``) each row's loss is
        multiplied by its weight and the mean still divides by the
        number of rows, as Keras does; PyTorch's class ``weight`` divides by the
        sum of the weights instead.

        >>> from graphnn import Graph
        >>> g = Graph(); z = g.input("logits", (None, 10))
        >>> g.softmax_cross_entropy(z, g.input("y", (None,), dtype="int64")).shape
        ()
        """
        return self.op("softmax_cross_entropy", [logits, labels], name=name, reduction=reduction)

    @layer
    def cross_entropy(self, probs, labels, reduction: str = "mean", name=None):
        """Cross-entropy of probabilities (a softmax's output) against labels or
        one-hot rows. Compiled after a softmax, the pair becomes one stable
        softmax_cross_entropy kernel. Otherwise probabilities are clipped to
        [1e-7, 1] before the log (Keras's epsilon; PyTorch's nll of log p has no
        clip). Sample weights average as in softmax_cross_entropy.

        >>> from graphnn import Graph
        >>> g = Graph(); z = g.input("logits", (None, 10))
        >>> g.cross_entropy(g.softmax(z), g.input("y", (None,), dtype="int64")).shape
        ()
        """
        return self.op("cross_entropy", [probs, labels], name=name, reduction=reduction)

    @layer
    def kl_divergence(self, pred, target, reduction: str = "mean", name=None):
        """sum_k target log(target / pred) per row, averaged over rows (PyTorch's
        reduction="batchmean") or summed. Both are clipped to [1e-7, 1] inside the
        logs (Keras's epsilon), so a zero target adds nothing. Sample weights
        average over the rows, as in softmax_cross_entropy.

        >>> from graphnn import Graph
        >>> g = Graph(); p, t = g.input("p", (None, 4)), g.input("t", (None, 4))
        >>> g.kl_divergence(p, t).shape
        ()
        """
        return self.op("kl_divergence", [pred, target], name=name, reduction=reduction)

    @layer
    def exp(self, x, name=None):
        """e^x."""
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

    @layer
    def binary_cross_entropy(self, pred, target, from_logits: bool = False,
                             reduction: str = "mean", name=None):
        """Binary cross-entropy from probabilities (or, stably, from logits), the
        mean over every element (or the sum). Probabilities are clipped to
        [1e-7, 1 - 1e-7] before the logs, as Keras does (PyTorch clamps each log
        at -100 instead).
        With sample weights (``fit(..., sample_weight=w)``) each row's loss is
        multiplied by its weight and the mean still divides by the number of
        elements: PyTorch's ``weight`` argument with one weight per row.

        >>> from graphnn import Graph
        >>> g = Graph(); z, t = g.input("z", (None, 1)), g.input("t", (None, 1))
        >>> g.binary_cross_entropy(z, t, from_logits=True).shape
        ()
        """
        return self.op("binary_cross_entropy", [pred, target], name=name,
                        reduction=reduction, from_logits=from_logits)


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
