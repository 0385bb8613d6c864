"""Callbacks: code that runs at points of ``fit`` (Keras's names and meanings).

>>> import numpy as np
>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, inputs=x, outputs=g.dense(x, 1))
>>> m.compile(loss="mse", optimizer="sgd")
>>> h = m.fit(np.zeros((8, 2)), np.zeros((8, 1)), epochs=50, verbose=0,
...           callbacks=[EarlyStopping(monitor="loss", patience=2)])
>>> len(h.epoch) < 50
True
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import sys


class Callback:
    """Override any of these; ``self.model`` is set before training starts."""

    model = None

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_end(self, logs=None): ...


class CallbackList:
    """Several callbacks called as one, in order; each gets ``model`` first."""

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.model = model

    def _call(self, method, *args):
        for callback in self.callbacks:
            getattr(callback, method)(*args)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_batch_end(self, batch, logs=None): self._call("on_batch_end", batch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)


def _better(mode, monitor):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return (lambda a, b, delta: a < b - delta) if mode == "min" else (lambda a, b, delta: a > b + delta)


def _watch(logs, monitor):
    if monitor not in logs:
        raise KeyError(f"monitor {monitor!r} is not among the logged values {sorted(logs)}; "
                       "pass validation_data for val_* values")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience``
    epochs; with ``restore_best_weights``, end on the best epoch's weights."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.better, self.restore = _better(mode, monitor), restore_best_weights
        self.best, self.best_state, self.wait, self.stopped_epoch = None, None, 0, None

    def on_train_begin(self, logs=None):
        self.best, self.best_state, self.wait, self.stopped_epoch = None, None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = _watch(logs, self.monitor)
        if self.best is None or self.better(value, self.best, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore:
                self.best_state = self.model.state_dict()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore and self.best_state is not None:
            self.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model after each epoch (``path`` may hold ``{epoch}`` and any
    logged value, e.g. ``model-{epoch:02d}-{val_loss:.3f}.gnn``); with
    ``save_best_only``, only when ``monitor`` improves."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path, self.monitor, self.best_only = os.fspath(path), monitor, save_best_only
        self.better, self.best = _better(mode, monitor), None

    def on_epoch_end(self, epoch, logs=None):
        if self.best_only:
            value = _watch(logs, self.monitor)
            if self.best is not None and not self.better(value, self.best, 0.0):
                return
            self.best = value
        self.model.save(self.path.format(epoch=epoch + 1, **logs))


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.model.learning_rate))
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"the schedule gave learning rate {lr} for epoch {epoch + 1}")
        self.model.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")


class CSVLogger(Callback):
    """Append one CSV row per epoch (epoch, then every logged value)."""

    def __init__(self, path, append=False):
        self.path, self.append = os.fspath(path), append

    def on_train_begin(self, logs=None):
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, epoch, logs=None):
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", *logs])
            writer.writerow([epoch + 1, *(f"{v:.6g}" for v in logs.values())])


SHORT_NAMES = {"accuracy": "acc", "val_accuracy": "val_acc"}


def format_logs(logs: dict) -> list[str]:
    """Each metric as "name: value", short names and four significant digits.

    >>> format_logs({"loss": 0.20741, "accuracy": 0.93121, "val_loss": 12.3456})
    ['loss: 0.2074', 'acc: 0.9312', 'val_loss: 12.35']
    """
    return [f"{SHORT_NAMES.get(k, k)}: {v:.4g}" for k, v in logs.items()]


def epoch_lines(head: str, logs: dict, width: int = 80) -> list[str]:
    """``head - metric - metric ...`` in lines of at most ``width`` characters,
    broken between metrics (continuation lines indented), so every metric of an
    epoch's end, the validation ones included, is shown whole.

    >>> epoch_lines("Epoch 100/100", {"loss": 0.2, "accuracy": 0.9, "val_loss": 0.3,
    ...             "val_accuracy": 0.8, "lr": 0.001}, width=60)
    ['Epoch 100/100 - loss: 0.2 - acc: 0.9 - val_loss: 0.3', '    val_acc: 0.8 - lr: 0.001']
    """
    lines, line = [], head
    for part in format_logs(logs):
        if len(line) + 3 + len(part) > width and line.strip():
            lines.append(line)
            line = "    " + part
        else:
            line = f"{line} - {part}" if line.strip() else line + part
    return lines + [line]


class Progress(Callback):
    """What ``fit`` prints: on a terminal (verbose=1) a bar per epoch that fits the
    terminal's width (80 columns included), replaced at the epoch's end by the
    epoch's line; one line per epoch otherwise (verbose=2, or not a terminal).
    The epoch's line holds every metric, validation ones included, wrapped if it
    would be wider than the terminal."""

    BAR = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"

    def __init__(self, epochs, steps, verbose=1, stream=None):
        self.epochs, self.steps, self.verbose = epochs, steps, verbose
        self.stream = stream or sys.stdout
        self.bar = None

    def _terminal(self):
        return self.verbose == 1 and hasattr(self.stream, "isatty") and self.stream.isatty()

    def _width(self):
        # shutil falls back to 80x24 where a terminal reports size 0 (tqdm would
        # then hide the bar)
        return shutil.get_terminal_size()

    def on_epoch_begin(self, epoch, logs=None):
        if self._terminal():
            from tqdm import tqdm
            size = self._width()
            self.bar = tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}",
                            file=self.stream, leave=False, ncols=size.columns, nrows=size.lines,
                            bar_format=self.BAR)

    def on_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(1)
            if batch % 10 == 0 or batch == self.steps - 1:
                # what is left of the line once the bar has its minimum of 10 columns
                room = self.bar.ncols - len(self.bar.desc) - 2 * len(str(self.steps)) - 20
                text = " " + " - ".join(format_logs(logs))
                self.bar.set_postfix_str(text[:max(room, 0)], refresh=batch == self.steps - 1)

    def on_epoch_end(self, epoch, logs=None):
        head = f"Epoch {epoch + 1}/{self.epochs}"
        width = 10**6
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            width = self._width().columns
        if self.verbose:
            print("\n".join(epoch_lines(head, logs, width)), file=self.stream, flush=True)
