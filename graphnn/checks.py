"""Arguments of the Model's verbs, checked before anything changes.

``fit`` checks every argument (``validation_data`` included: its shapes and
labels) before the first step, so a mistake never costs an epoch of training
nor changes a weight; ``evaluate`` and ``predict`` check theirs before running.
Each error names the argument at fault.

>>> positive_int(32, "batch_size")
32
>>> positive_int(0, "batch_size")
Traceback (most recent call last):
...
ValueError: batch_size must be a positive int, got 0
"""
from __future__ import annotations

import numbers

from .training import feeds_for


def positive_int(value, what: str) -> int:
    """``value`` if it is an int >= 1 (not a bool), else a ValueError naming ``what``.

    >>> import numpy as np
    >>> positive_int(np.int64(8), "epochs")              # NumPy ints count, as a plain int
    8
    >>> positive_int(True, "epochs")
    Traceback (most recent call last):
    ...
    ValueError: epochs must be a positive int, got True
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def choice(value, allowed: tuple, what: str):
    """``value`` if it is one of ``allowed`` (compared by type too: True is not 1).

    >>> choice(2, (0, 1, 2), "verbose")
    2
    """
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def samples(feeds: dict, what: str = "x") -> int:
    """The number of samples fed (at least one).

    >>> import numpy as np
    >>> samples({"x": np.zeros((3, 2))})
    3
    """
    n = len(next(iter(feeds.values())))
    if n == 0:
        raise ValueError(f"{what} holds no samples: nothing to run on")
    return n


def fit_arguments(model, x, y, sample_weight, *, epochs, batch_size, validation_data,
                  shuffle, seed, verbose, callbacks) -> tuple[dict, tuple | None]:
    """Every argument of ``fit``; returns (feeds, target layout) for the training data.

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2))
    >>> m = Model(g, inputs=x, outputs=g.dense(x, 3)); m.compile("softmax_cross_entropy")
    >>> fit_arguments(m, np.zeros((4, 2)), [0, 1, 2, 3], None, epochs=1, batch_size=2,
    ...               validation_data=None, shuffle=True, seed=None, verbose=0, callbacks=None)
    Traceback (most recent call last):
    ...
    ValueError: y: label 3 at row 3 is out of range: the output has 3 classes, so labels must be 0..2
    """
    model._require_compiled()
    positive_int(epochs, "epochs")
    positive_int(batch_size, "batch_size")
    choice(verbose, (0, 1, 2), "verbose")
    choice(shuffle, (True, False), "shuffle")
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)
                             or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    _callbacks(callbacks)
    if y is None and model._targets:
        raise ValueError(_missing_y(model))
    feeds, target = feeds_for(model, x, y, sample_weight)
    samples(feeds)
    if validation_data is not None:
        _validation(model, validation_data)
    return feeds, target


def _missing_y(model) -> str:
    if model._loss.op is not None:
        return "y is missing: the loss compares the output with targets y"
    return f"y is missing: the loss reads the target inputs {model._targets}"


def _callbacks(callbacks) -> None:
    if callbacks is None:
        return
    if not isinstance(callbacks, (list, tuple)):
        raise ValueError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}")
    for i, c in enumerate(callbacks):
        if not callable(getattr(c, "on_epoch_end", None)):
            raise ValueError(f"callbacks[{i}] is not a callback (no on_epoch_end method): {c!r}")


def _validation(model, data) -> None:
    """(x, y) or (x, y, sample_weight), checked as evaluate would check them."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x, y) or (x, y, sample_weight), got "
                         f"{type(data).__name__}" + (f" of {len(data)} items"
                                                     if isinstance(data, (tuple, list)) else ""))
    try:
        feeds, _ = feeds_for(model, data[0], data[1], data[2] if len(data) == 3 else None)
        samples(feeds)
    except ValueError as e:
        raise ValueError(f"validation_data: {e}") from None


def evaluate_arguments(model, x, y, sample_weight, *, batch_size, verbose):
    """Every argument of ``evaluate``; returns (feeds, target layout) (see fit_arguments).

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2))
    >>> m = Model(g, x, g.dense(x, 3)); m.compile("softmax_cross_entropy")
    >>> feeds, target = evaluate_arguments(m, np.zeros((4, 2)), [0, 1, 2, 1], None,
    ...                                    batch_size=2, verbose=0)
    >>> {k: (v.shape, v.dtype.name) for k, v in feeds.items()}, target
    ({'x': ((4, 2), 'float32'), 'target': ((4,), 'int64')}, TargetSpec(shape=(None,), dtype='int64', weighted=False))
    >>> evaluate_arguments(m, np.zeros((4, 2)), [0, 1, 3, 1], None, batch_size=2, verbose=0)
    Traceback (most recent call last):
    ...
    ValueError: y: label 3 at row 2 is out of range: the output has 3 classes, so labels must be 0..2
    """
    model._require_compiled()
    positive_int(batch_size, "batch_size")
    choice(verbose, (0, 1, 2), "verbose")
    if y is None and model._targets:
        raise ValueError(_missing_y(model))
    feeds, target = feeds_for(model, x, y, sample_weight)
    samples(feeds)
    return feeds, target


def predict_arguments(model, x, *, batch_size) -> dict:
    """Every argument of ``predict``; returns the feeds.

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, inputs=x, outputs=g.relu(x))
    >>> predict_arguments(m, np.ones((5, 2)), batch_size=8)["x"].shape
    (5, 2)
    >>> g = Graph(); x = g.input("x", (None, 2)); s = Model(g, inputs=x, outputs=g.op("reduce_sum", [x]))
    >>> predict_arguments(s, np.ones((5, 2)), batch_size=8)
    Traceback (most recent call last):
    ...
    ValueError: predict: output 'reduce_sum' has shape (1, 1), no batch axis, so it has no value per sample (its value would depend on batch_size); use evaluate, or an output of shape (None, ...)
    """
    positive_int(batch_size, "batch_size")
    batched = any(tuple(model._checked.nodes[i]["shape"])[:1] == (None,) for i in model.inputs)
    for out in model.outputs if batched else ():     # all fixed (an ONNX import's): nothing to split
        shape = model._checked.nodes[out]["shape"]
        if not shape or shape[0] is not None:
            raise ValueError(f"predict: output {out!r} has shape {shape}, no batch axis, so it has no value "
                             "per sample (its value would depend on batch_size); use evaluate, or an output "
                             "of shape (None, ...)")
    feeds, _ = feeds_for(model, x, None)
    samples(feeds)
    return feeds


def compile_arguments(metrics, fuse) -> list:
    """``metrics`` as a list (a single name is taken as one metric) and ``fuse``
    a bool; the loss and optimizer are checked where they are resolved.

    >>> compile_arguments("accuracy", True)
    ['accuracy']
    """
    choice(fuse, (True, False), "fuse")
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics is not None and not isinstance(metrics, (list, tuple)):
        raise ValueError(f"metrics must be a list of metric names, got {metrics!r}")
    return metrics


def summary_arguments(print_fn, batch_size, memory) -> None:
    """The arguments of ``Model.summary``.

    >>> summary_arguments(print, 0, True)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive int, got 0
    """
    if print_fn is not None and not callable(print_fn):
        raise ValueError(f"print_fn must be callable (print, say), got {print_fn!r}")
    positive_int(batch_size, "batch_size")
    choice(memory, (True, False), "memory")


def plot_arguments(to_file, rankdir, batch_size) -> None:
    """The arguments of ``plot_model`` that its drawing does not check itself.

    >>> plot_arguments("net.svg", "LR", 32)
    """
    if to_file is not None:
        path_argument(to_file, "to_file")
    choice(rankdir, ("TB", "LR", "BT", "RL"), "rankdir")
    positive_int(batch_size, "batch_size")


def path_argument(path, what: str = "path") -> str:
    """``path`` as a str, if it is one (or an os.PathLike).

    >>> import pathlib
    >>> path_argument(pathlib.Path("m.gnn"))
    'm.gnn'
    """
    import os
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__} {path!r}")
    return os.fspath(path)
