"""Blocks: builder macros that expand into subgraphs and stay visible as one
named group (one row in summary(), one box or cluster in plot_model()).

>>> from graphnn import Graph
>>> g = Graph(); x = g.input("img", (None, 8, 12, 12))
>>> g.inception(x, 4, (4, 8), (2, 4), 4).shape
(None, 20, 12, 12)
"""
from __future__ import annotations

from .layers import layer


class BlockMethods:
    """Mixed into Graph: conv_transpose2d, upsample2d, sequential, inception.
    A block is one layer record; the layers inside it that open blocks of their
    own are kept in ``nested_layers``.

    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 4))
    >>> y = g.sequential(x, [("dense", {"units": 8}), ("dense", {"units": 2})], name="mlp")
    >>> [r["name"] for r in g.layers], [r["name"] for r in g.nested_layers]
    (['x', 'mlp'], ['mlp/dense', 'mlp/dense_1'])
    """

    @layer
    def conv_transpose2d(self, x, filters: int, kernel_size, strides=1, padding=0,
                         output_padding=None, dilation=1, activation: str | None = None,
                         use_bias: bool = True, name=None, kernel_init: str = "glorot_uniform",
                         groups: int = 1):
        """The up-convolution (PyTorch's ConvTranspose2d) on (N, C, H, W); weight
        (C, filters / groups, KH, KW). Output size: (H - 1) strides - 2 padding +
        dilation (K - 1) + 1 + output_padding.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("code", (None, 8, 7, 7))
        >>> g.conv_transpose2d(x, 4, 3, strides=2, padding=1, output_padding=1).shape
        (None, 4, 14, 14)
        """
        x, name = self._conv_layer(x, name, "conv_transpose2d", filters, activation)
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        with self.block(name):
            if not isinstance(groups, int) or groups < 1 or x.shape[1] % groups or filters % groups:
                raise ValueError(f"conv_transpose2d {name!r}: groups must be a positive int dividing "
                                 f"{x.shape[1]} input channels and {filters} filters, got {groups!r}")
            w = self.param("W", (x.shape[1], filters // groups, kh, kw), init=kernel_init)
            y = self.op("conv_transpose2d", [x, w], name="upconv", strides=strides, padding=padding,
                        output_padding=output_padding, dilation=dilation, groups=groups)
            return self._bias_and_activation(y, filters, use_bias, "zeros", activation, axis=1)

    @layer
    def upsample2d(self, x, factor=2, name=None):
        """Nearest-neighbour upsampling of (N, C, H, W) by ``factor``: each pixel
        becomes a factor x factor square.

        >>> import numpy as np
        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 1, 2, 2)); y = g.upsample2d(x, 2)
        >>> y.shape
        (None, 1, 4, 4)
        >>> Model(g, x, y).predict(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))[0, 0].tolist()
        [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
        """
        return self.op("upsample2d", [x], name=name, factor=factor)

    @layer
    def sequential(self, x, layers: list, name=None):
        """Apply layers in order inside one named block. Each entry is a
        (method name, keyword arguments) pair, as in a spec.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 4))
        >>> g.sequential(x, [("dense", {"units": 8, "activation": "relu"}),
        ...                  ("dense", {"units": 2})], name="mlp").name
        'mlp/dense_1/bias_add'
        """
        name = self._layer_name(name, "sequential")
        with self.block(name):
            for kind, kwargs in layers:
                if not hasattr(type(self), kind) or kind.startswith("_"):
                    raise ValueError(f"sequential {name!r}: unknown layer type {kind!r}")
                x = getattr(self, kind)(x, **kwargs)
        return x

    @layer
    def inception(self, x, filters_1x1: int, filters_3x3: tuple, filters_5x5: tuple,
                  pool_proj: int, activation: str = "relu", name=None):
        """An inception module (Szegedy et al., 2015) on (N, C, H, W): four branches,
        concatenated along the channels: a 1x1 convolution; a 1x1 reduction then a
        3x3; a 1x1 reduction then a 5x5; a 3x3 max pool then a 1x1 projection.
        ``filters_3x3`` and ``filters_5x5`` are (reduction, output) pairs.

        Output channels 4 + 8 + 4 + 4; parameters (weights + biases) 36 + 36 + 296
        + 18 + 204 + 36, in one row of the summary:

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 8, 12, 12))
        >>> y = g.inception(x, 4, (4, 8), (2, 4), 4); y.shape
        (None, 20, 12, 12)
        >>> Model(g, x, y).summary(memory=False).splitlines()[4].split()[:6]
        ['inception', '(inception)', '(N,', '20,', '12,', '12)']
        >>> Model(g, x, y).summary(memory=False).splitlines()[-1]
        'Total params: 626 (trainable 626, non-trainable 0)'
        """
        x = self._tensor(x)
        name = self._layer_name(name, "inception")
        with self.block(name):
            act = {"activation": activation}
            b1 = self.conv2d(x, filters_1x1, 1, name="b1x1", **act)
            b3 = self.conv2d(self.conv2d(x, filters_3x3[0], 1, name="b3x3_reduce", **act),
                             filters_3x3[1], 3, padding="same", name="b3x3", **act)
            b5 = self.conv2d(self.conv2d(x, filters_5x5[0], 1, name="b5x5_reduce", **act),
                             filters_5x5[1], 5, padding="same", name="b5x5", **act)
            bp = self.conv2d(self.max_pool2d(x, 3, strides=1, padding="same", name="pool"),
                             pool_proj, 1, name="pool_proj", **act)
            return self.concat(b1, b3, b5, bp, axis=1, name="concat")
