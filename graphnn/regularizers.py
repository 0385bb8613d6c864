"""Weight penalties added to the training loss: L1, L2, or both.

>>> L2(1e-4).terms()
[('l2_penalty', 0.0001)]
"""
from __future__ import annotations


class Regularizer:
    """A penalty on a layer's weights (``kernel_regularizer=``), added to the
    training loss: l1 sum(|w|) + l2 sum(w^2). With W = [1, -2]:

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> def penalty(reg):            # the training loss at zero error: the penalty alone
    ...     g = Graph(); x = g.input("x", (None, 2))
    ...     m = Model(g, x, g.dense(x, 1, kernel_regularizer=reg)); m.compile(loss="mse")
    ...     m.set_weights({"dense/W": np.array([[1.0], [-2.0]]), "dense/b": np.zeros(1)})
    ...     return m.evaluate(np.zeros((1, 2)), np.zeros((1, 1)))["loss"]
    >>> penalty(Regularizer(l1=0.5)), penalty(Regularizer(l2=0.5)), penalty(Regularizer(0.5, 0.5))
    (1.5, 2.5, 4.0)
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for name, v in (("l1", l1), ("l2", l2)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def terms(self) -> list[tuple[str, float]]:
        """The penalty ops this regularizer adds, with their scales (none for a zero scale).

        >>> Regularizer(l1=0.1, l2=0.2).terms(), Regularizer().terms()
        ([('l1_penalty', 0.1), ('l2_penalty', 0.2)], [])
        """
        return [(op, c) for op, c in (("l1_penalty", self.l1), ("l2_penalty", self.l2)) if c]

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


def L1(c: float = 0.01) -> Regularizer:
    """c * sum(|w|).

    >>> L1(0.5)
    Regularizer(l1=0.5, l2=0.0)
    """
    return Regularizer(l1=c)


def L2(c: float = 0.01) -> Regularizer:
    """c * sum(w^2) (weight decay through the loss).

    >>> L2()
    Regularizer(l1=0.0, l2=0.01)
    """
    return Regularizer(l2=c)


def L1L2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    """l1 * sum(|w|) + l2 * sum(w^2).

    >>> L1L2(l2=0.5).terms()
    [('l1_penalty', 0.01), ('l2_penalty', 0.5)]
    """
    return Regularizer(l1, l2)


def get(spec) -> Regularizer | None:
    """None, a Regularizer, or a short form: "l2", ("l2", 1e-4), {"l1": ..., "l2": ...}
    (a bare name has scale 0.01).

    >>> get("l2"), get(("l1", 1e-4)), get({"l1": 0.1, "l2": 0.2}), get(None)
    (Regularizer(l1=0.0, l2=0.01), Regularizer(l1=0.0001, l2=0.0), Regularizer(l1=0.1, l2=0.2), None)
    >>> get(("dropout", 0.5))
    Traceback (most recent call last):
    ...
    ValueError: unknown regularizer ('dropout', 0.5); use graphnn.regularizers.L1/L2/L1L2, 'l2', ('l2', 1e-4) or {'l1': ..., 'l2': ...}
    >>> get("dropout")
    Traceback (most recent call last):
    ...
    ValueError: unknown regularizer 'dropout'; use graphnn.regularizers.L1/L2/L1L2, 'l2', ('l2', 1e-4) or {'l1': ..., 'l2': ...}
    """
    if spec is None or isinstance(spec, Regularizer):
        return spec
    given = spec                        # named in the error as the caller wrote it
    if isinstance(spec, str):
        spec = (spec, 0.01)
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and spec[0] in ("l1", "l2"):
        return Regularizer(**{spec[0]: spec[1]})
    if isinstance(spec, dict) and set(spec) <= {"l1", "l2"}:
        return Regularizer(**spec)
    raise ValueError(f"unknown regularizer {given!r}; use graphnn.regularizers.L1/L2/L1L2, "
                     "'l2', ('l2', 1e-4) or {'l1': ..., 'l2': ...}")
