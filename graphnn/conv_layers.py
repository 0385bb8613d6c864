"""Convolution and pooling layers: builder methods mixed into Graph.

Each expands into op nodes inside a named block, as ``dense`` does
(graphnn/layers.py, which holds the shared checks and the bias-and-activation
tail); one-dimensional versions are macros over the two-dimensional ops.

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("x", (None, 1, 8, 8))
>>> g.max_pool2d(g.conv2d(x, 4, 3, padding="same", activation="relu"), 2).shape
(None, 4, 4, 4)
"""
from __future__ import annotations

from .compiler.ops import fmt_shape
from .layers import ACTIVATIONS, layer


class ConvMethods:
    """Mixed into Graph: conv2d, depthwise_conv2d, conv1d and the pooling layers.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("seq", (None, 2, 16))
    >>> g.max_pool1d(g.conv1d(x, 4, 3, padding="same"), 2).shape
    (None, 4, 8)
    """

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
        """Mean over H and W: (N, C, H, W) -> (N, C).

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2, 2, 3)); y = g.global_avg_pool(x)
        >>> y.shape
        (None, 2)
        >>> Model(g, x, y).predict(np.arange(12.0).reshape(1, 2, 2, 3)).tolist()  # means of 0..5, 6..11
        [[2.5, 8.5]]
        """
        return self.op("global_avg_pool", [x], name=name)
