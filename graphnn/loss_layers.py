"""Loss layers: builder methods mixed into Graph, each one op over a
prediction and a target (the Model adds its compiled loss the same way).

>>> from graphnn import Graph
>>> g = Graph(); p, t = g.input("p", (None, 3)), g.input("t", (None, 3))
>>> g.mse(p, t).shape, g.l1(p, t, reduction="sum").shape
((), ())
"""
from __future__ import annotations

from .layers import layer


class LossMethods:
    """Mixed into Graph: mse, l1, the cross-entropies and the KL divergence.
    Each is a scalar node; ``Model.compile(loss=node)`` trains on it, with its
    target fed among the model's inputs:

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x, t = g.input("x", (None, 1)), g.input("t", (None, 2))
    >>> p = g.dense(x, 2, name="d"); err = g.mse(p, t)
    >>> m = Model(g, [x, t], p); m.compile(loss=err)
    >>> m.set_weights({"d/W": np.array([[1.0, 3.0]]), "d/b": np.zeros(2)})
    >>> m.evaluate([np.array([[1.0]]), np.array([[0.0, 1.0]])])      # ((1 - 0)^2 + (3 - 1)^2) / 2
    {'loss': 2.5}
    """

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
