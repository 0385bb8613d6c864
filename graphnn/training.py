"""The training loop's helpers: what to feed (inputs, targets, sample weights,
checked), per-epoch totals, History.

>>> h = History(); h.append(0, {"loss": 0.5}); h.history
{'loss': [0.5]}
"""
from __future__ import annotations

import numpy as np

from .compiler.ops import fmt_shape
from .compiler.training import TARGET, WEIGHTS, target_spec


class History:
    """Per-epoch logs of ``fit``: ``history["loss"][e]`` is epoch e's mean loss.

    >>> h = History()
    >>> h.append(0, {"loss": 0.75, "accuracy": 0.5}); h.append(1, {"loss": 0.5, "accuracy": 1.0})
    >>> h.epoch, h.history["loss"], h
    ([0, 1], [0.75, 0.5], <History 2 epochs, last {'loss': 0.5, 'accuracy': 1.0}>)
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        """Add one epoch's logs (values as Python floats; a new name starts its own list).

        >>> h = History(); h.append(3, {"loss": np.float32(0.5)})
        >>> h.append(4, {"loss": 0.25, "val_loss": 0.5})
        >>> h.epoch, h.history
        ([3, 4], {'loss': [0.5, 0.25], 'val_loss': [0.5]})
        """
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"<History {len(self.epoch)} epochs, last {last}>"


def prepare_inputs(g, names: list[str], data, what: str, aliases: dict | None = None) -> dict:
    """Match ``data`` (an array, a list in order, or a dict by name) to the input
    nodes ``names``; check shape, dtype and finiteness; cast to each node's dtype.
    ``aliases`` names inputs the user never made (the loss's target is ``y``).

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 3))
    >>> m.compile("softmax_cross_entropy", metrics=["accuracy"])
    >>> prepare_inputs(m._checked, ["x"], [[1, 2]], "x")          # ints cast to the input's float32
    {'x': array([[1., 2.]], dtype=float32)}
    >>> prepare_inputs(m._checked, ["x"], [[1, 2, 3]], "x")
    Traceback (most recent call last):
    ...
    ValueError: input 'x' expects arrays of shape (N, 2), got (1, 3)
    >>> prepare_inputs(m._checked, ["x"], [[1, np.nan]], "x")
    Traceback (most recent call last):
    ...
    ValueError: input 'x' contains NaN or inf as float32 (first at row 0)
    """
    if isinstance(data, dict):
        missing = sorted(set(names) - set(data))
        extra = sorted(set(data) - set(names))
        if missing or extra:
            raise ValueError(f"{what}: missing input(s) {missing}, unexpected {extra}; "
                             f"expected {names}")
        items = [(n, data[n]) for n in names]
    elif isinstance(data, (list, tuple)) and len(names) > 1:
        if len(data) != len(names):
            raise ValueError(f"{what}: got {len(data)} arrays for {len(names)} inputs {names}")
        items = list(zip(names, data))
    else:
        if len(names) != 1:
            raise ValueError(f"{what}: the model has {len(names)} inputs {names}; pass a dict")
        items = [(names[0], data)]
    out = {}
    for name, value in items:
        node, who = g.nodes[name], (aliases or {}).get(name, f"input {name!r}")
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as e:        # ragged lists and the like
            raise ValueError(f"{who}: not an array of numbers ({e})") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{who}: expected numbers, got an array of dtype {array.dtype}")
        want = node["shape"]
        if array.ndim != len(want) or any(d is not None and d != a for d, a in zip(want, array.shape)):
            raise ValueError(f"{who} expects arrays of shape {fmt_shape(want)}, "
                             f"got {array.shape}")
        dtype = np.dtype(node["dtype"])
        if dtype.kind in "iu" and array.dtype.kind == "f" and (
                not np.all(np.isfinite(array)) or np.any(array != np.round(array))):
            raise ValueError(f"{who} expects integers (dtype {dtype}), got non-integral values")
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.ascontiguousarray(array, dtype=dtype)
        if cast.dtype.kind == "f" and not np.isfinite(cast).all():
            row = int(np.argwhere(~np.isfinite(cast))[0][0])
            raise ValueError(f"{who} contains NaN or inf as {dtype} (first at row {row})")
        out[name] = cast
    return out


def feeds_for(model, x, y=None, sample_weight=None) -> tuple[dict, tuple | None]:
    """The arrays ``model`` is fed, by input name (inputs, targets and sample
    weights, checked and cast), and the target layout (TargetSpec) they need.
    Integer labels and sample weights make their own layout:

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 3))
    >>> m.compile("softmax_cross_entropy", metrics=["accuracy"])
    >>> feeds, target = feeds_for(m, np.zeros((2, 2)), [1, 2], sample_weight=[1, 0.5])
    >>> {k: v.dtype.name for k, v in feeds.items()}, target
    ({'x': 'float32', 'target': 'int64', 'sample_weight': 'float32'}, TargetSpec(shape=(None,), dtype='int64', weighted=True))
    >>> feeds_for(m, np.zeros((2, 2)), [1, 2, 0])
    Traceback (most recent call last):
    ...
    ValueError: inputs have different numbers of samples: {'x': 2, 'y': 3}
    """
    g, loss = model._checked, model._loss
    feeds = prepare_inputs(g, model.inputs, x, "x")
    target = None
    if y is None and sample_weight is not None:
        raise ValueError("sample_weight was given without y: the weights scale the loss against the "
                         "targets in y, one per sample (a loss node fed its target through x is not weighed)")
    if y is None and loss is not None and loss.node is not None:
        target = target_spec(g, loss, model.outputs)        # a loss node fed all it reads through x
    if y is not None:
        weights = None if sample_weight is None else sample_weights(sample_weight, model.graph.dtype)
        y = np.asarray(y) if loss.op else y
        target = target_spec(g, loss, model.outputs, y, weights is not None)
        targets = prepare_inputs(model._build(target)["eval"], model._targets, y, "y",
                                 aliases={TARGET: "y"})
        if weights is not None:
            targets[WEIGHTS] = weights
        check_targets(loss.op_in(g), targets, g.nodes[model.outputs[0]]["shape"] if model.outputs else None)
        feeds.update(targets)
    sizes = {("y" if k == TARGET else k): len(v) for k, v in feeds.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs have different numbers of samples: {sizes}")
    return feeds, target


def sample_weights(weights, dtype: str) -> np.ndarray:
    """``sample_weight`` as an array: one finite weight >= 0 per sample.

    >>> sample_weights([1, 2], "float32")
    array([1., 2.], dtype=float32)
    >>> sample_weights([1, -2], "float32")
    Traceback (most recent call last):
    ...
    ValueError: sample_weight must be one finite weight >= 0 per sample, got an array of shape (2,)
    """
    w = np.asarray(weights, dtype=dtype)
    if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"sample_weight must be one finite weight >= 0 per sample, "
                         f"got an array of shape {w.shape}")
    return w


def _label(name: str) -> str:
    return "y" if name == TARGET else repr(name)


def check_targets(loss_op: str, targets: dict, out_shape) -> None:
    """Labels out of range and similar target mistakes, named clearly.

    >>> check_targets("softmax_cross_entropy", {"target": np.array([0, 2])}, (None, 3))   # fine
    >>> check_targets("binary_cross_entropy", {"target": np.array([0.0, 2.0])}, (None, 1))
    Traceback (most recent call last):
    ...
    ValueError: y: binary cross-entropy targets must lie in [0, 1], got values from 0.0 to 2.0
    """
    for name, t in targets.items():
        if loss_op in ("softmax_cross_entropy", "cross_entropy") and t.dtype.kind in "iu" and out_shape:
            classes = out_shape[-1]
            bad = (t < 0) | (t >= classes)
            if bad.any():
                row = int(np.argmax(bad))
                raise ValueError(f"{_label(name)}: label {t[row]} at row {row} is out of range: the "
                                 f"output has {classes} classes, so labels must be 0..{classes - 1}")
        if loss_op == "binary_cross_entropy" and t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"{_label(name)}: binary cross-entropy targets must lie in [0, 1], "
                             f"got values from {t.min()} to {t.max()}")


def check_metrics(metrics) -> list[str]:
    """The metrics asked for, as a list; only 'accuracy' is known.

    >>> check_metrics(None), check_metrics(("accuracy",))
    ([], ['accuracy'])
    >>> check_metrics(["auc"])
    Traceback (most recent call last):
    ...
    ValueError: unknown metric(s) ['auc']; available: ['accuracy']
    """
    metrics = list(metrics or [])
    unknown = [m for m in metrics if m != "accuracy"]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: ['accuracy']")
    return metrics


class Batches:
    """Sums a loss (weighted by batch size) and accuracy over an epoch's batches.

    Two batches, of 2 samples (mean loss 0.5, one right) and of 1 (loss 2.0, right):

    >>> b = Batches(["accuracy"])
    >>> b.add(0.5, np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), 2, 0.5)
    >>> b.add(2.0, np.array([[0.1, 0.9]]), np.array([1]), 1, 0.5)
    >>> b.result()                       # loss (2 * 0.5 + 2.0) / 3, accuracy 2 / 3
    {'loss': 1.0, 'accuracy': 0.6666666666666666}
    """

    def __init__(self, metrics: list[str]):
        self.metrics, self.loss, self.correct, self.count = metrics, 0.0, 0, 0

    def add(self, loss, pred, target, n: int, threshold: float) -> None:
        """Count one batch of ``n`` samples: its mean ``loss``, and its hits (one
        output column: ``pred > threshold`` against ``target > 0.5``).

        >>> b = Batches(["accuracy"])
        >>> b.add(0.25, np.array([[0.7], [0.2], [0.9]]), np.array([[1.0], [1.0], [1.0]]), 3, 0.5)
        >>> b.loss, b.correct, b.count
        (0.75, 2, 3)
        """
        self.loss += float(loss) * n
        self.count += n
        if "accuracy" in self.metrics and pred is not None and target is not None:
            self.correct += int(np.count_nonzero(accuracy_hits(pred, target, threshold)))

    def result(self) -> dict:
        """The means so far: loss per sample, and accuracy if asked for.

        >>> b = Batches([]); b.add(1.0, None, None, 4, 0.5); b.add(4.0, None, None, 1, 0.5)
        >>> b.result(), Batches([]).result()           # (4 * 1 + 4) / 5; nothing seen yet
        ({'loss': 1.6}, {'loss': 0.0})
        """
        logs = {"loss": self.loss / max(self.count, 1)}
        if "accuracy" in self.metrics:
            logs["accuracy"] = self.correct / max(self.count, 1)
        return logs


def accuracy_hits(pred: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-sample correctness: argmax against labels (or one-hot rows) for
    several classes, a threshold for a single output column.

    >>> accuracy_hits(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])).tolist()
    [True, False]
    """
    if pred.ndim >= 2 and pred.shape[-1] > 1:
        labels = target.argmax(-1) if target.ndim == pred.ndim else target
        return pred.argmax(-1) == labels
    return (pred > threshold) == (target > 0.5)


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool):
    """The order of the samples in epoch ``epoch`` (counted from 0 over the model's
    life): a permutation drawn from (seed, epoch) alone, so training resumed at
    any epoch shuffles exactly as an uninterrupted run; None without shuffling.

    >>> epoch_order(0, 3, 5, True).tolist() == epoch_order(0, 3, 5, True).tolist()
    True
    """
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else None


def epoch_range(initial_epoch: int, epochs: int) -> range:
    """The epochs ``fit`` runs: ``initial_epoch`` up to ``epochs`` (the index of
    the last epoch plus one, as Keras counts).

    >>> list(epoch_range(2, 4))
    [2, 3]
    """
    if not isinstance(initial_epoch, (int, np.integer)) or isinstance(initial_epoch, bool) \
            or not 0 <= initial_epoch < epochs:
        raise ValueError(f"initial_epoch must be an int from 0 to epochs - 1 = {epochs - 1}, "
                         f"got {initial_epoch!r}")
    return range(int(initial_epoch), epochs)


def _rows(data, sl, several: bool):
    """``data`` cut to the samples ``sl``: an array, a dict of arrays by input name,
    or (``several`` inputs) a list of arrays in input order."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: np.asarray(v)[sl] for k, v in data.items()}
    if several and isinstance(data, (list, tuple)):
        return [np.asarray(v)[sl] for v in data]
    return np.asarray(data)[sl]


def split_validation(model, x, y, sample_weight, fraction, validation_data):
    """(x, y, sample_weight, validation_data) with the last ``fraction`` of the
    samples held out for validation (Keras's ``validation_split``: taken before
    any shuffling, the same samples every epoch).

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 3))
    >>> m.compile("softmax_cross_entropy", metrics=["accuracy"])
    >>> x_fit, y_fit, w, (x_val, y_val) = split_validation(m, np.arange(10.0).reshape(5, 2),
    ...                                                    np.arange(5), None, 0.4, None)
    >>> y_fit.tolist(), y_val.tolist(), w
    ([0, 1, 2], [3, 4], None)
    >>> split_validation(m, np.zeros((2, 2)), np.zeros(2), None, 0.1, None)
    Traceback (most recent call last):
    ...
    ValueError: validation_split=0.1 of 2 samples leaves 2 to train on and 0 to validate on; both need at least one
    """
    if not fraction:
        return x, y, sample_weight, validation_data
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"validation_split must be a fraction in (0, 1), got {fraction!r}")
    if validation_data is not None:
        raise ValueError("pass validation_data or validation_split, not both")
    several_x, several_y = len(model.inputs) > 1, len(model._targets) > 1
    n = len(_rows(x, slice(None), several_x)[0] if several_x and not isinstance(x, dict) else
            next(iter(x.values())) if isinstance(x, dict) else x)
    held = round(n * fraction)
    if held < 1 or held >= n:
        raise ValueError(f"validation_split={fraction} of {n} samples leaves {n - held} to train "
                         f"on and {held} to validate on; both need at least one")
    fit, val = slice(0, n - held), slice(n - held, n)
    validation = (_rows(x, val, several_x), _rows(y, val, several_y))
    if sample_weight is not None:
        validation += (_rows(sample_weight, val, False),)
    return (_rows(x, fit, several_x), _rows(y, fit, several_y), _rows(sample_weight, fit, False),
            validation)


def as_list(result: dict):
    """``evaluate(return_dict=False)``: the loss alone, or [loss, metrics...] in order.

    >>> as_list({"loss": 0.5}), as_list({"loss": 0.5, "accuracy": 1.0})
    (0.5, [0.5, 1.0])
    """
    values = list(result.values())
    return values[0] if len(values) == 1 else values
