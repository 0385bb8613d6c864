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
    """Override any of these; ``self.model`` is set before training starts.

    ``fit`` calls the hooks in this order; ``logs`` hold the running means of the
    epoch so far (loss and metrics) at each batch's end, the epoch's means at its end.
    With x = 0 and y = 1 the untrained output is its bias, 0, so the first
    batch's loss is (1 - 0)**2 = 1; one SGD step (lr 0.01) moves the bias to 0.02,
    so the second's is 0.98**2 = 0.9604 and the epoch's mean (1 + 0.9604) / 2:

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, inputs=x, outputs=g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> class Log(Callback):
    ...     def on_train_begin(self, logs=None): print("train begin", type(self.model).__name__)
    ...     def on_epoch_begin(self, epoch, logs=None): print("epoch", epoch)
    ...     def on_batch_end(self, batch, logs=None): print("  batch", batch, round(logs["loss"], 4))
    ...     def on_epoch_end(self, epoch, logs=None): print("epoch end", round(logs["loss"], 4))
    ...     def on_train_end(self, logs=None): print("train end")
    >>> _ = m.fit(np.zeros((8, 2)), np.ones((8, 1)), batch_size=4, verbose=0, callbacks=[Log()])
    train begin Model
    epoch 0
      batch 0 1.0
      batch 1 0.9802
    epoch end 0.9802
    train end
    """

    model = None

    def on_train_begin(self, logs=None):
        """Called once as ``fit`` starts (``logs`` is empty); a place to reset state.

        >>> class Count(Callback):
        ...     def on_train_begin(self, logs=None): self.epochs = 0
        ...     def on_epoch_end(self, epoch, logs=None): self.epochs += 1
        >>> c = Count(); c.on_train_begin({}); c.on_epoch_end(0, {"loss": 1.0}); c.epochs
        1
        """

    def on_epoch_begin(self, epoch, logs=None):
        """Called before epoch ``epoch`` (counted from 0); ``logs`` is empty.

        >>> class Say(Callback):
        ...     def on_epoch_begin(self, epoch, logs=None): print(f"Epoch {epoch + 1}")
        >>> Say().on_epoch_begin(0, {})
        Epoch 1
        """

    def on_batch_end(self, batch, logs=None):
        """Called after each training step; ``logs`` holds the epoch's running means.

        >>> class Worst(Callback):
        ...     worst = 0.0
        ...     def on_batch_end(self, batch, logs=None): self.worst = max(self.worst, logs["loss"])
        >>> w = Worst(); w.on_batch_end(0, {"loss": 0.5}); w.on_batch_end(1, {"loss": 0.25}); w.worst
        0.5
        """

    def on_epoch_end(self, epoch, logs=None):
        """Called after each epoch with its mean loss and metrics (``val_*`` too,
        given validation data); setting ``self.model.stop_training`` ends ``fit``.

        >>> class StopBelow(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         self.model.stop_training = logs["loss"] < 0.1
        >>> class Stub: stop_training = False
        >>> s = StopBelow(); s.model = Stub(); s.on_epoch_end(3, {"loss": 0.05}); s.model.stop_training
        True
        """

    def on_train_end(self, logs=None):
        """Called once as ``fit`` ends (after the last epoch, or a stop); ``logs`` is empty.

        >>> class Done(Callback):
        ...     def on_train_end(self, logs=None): print("done")
        >>> Done().on_train_end({})
        done
        """


class CallbackList:
    """Several callbacks called as one, in order; each gets ``model`` first.

    >>> class Say(Callback):
    ...     def __init__(self, name): self.name = name
    ...     def on_epoch_end(self, epoch, logs=None): print(self.name, epoch, self.model)
    >>> hooks = CallbackList([Say("a"), Say("b")], model="the model")
    >>> hooks.on_epoch_end(0, {"loss": 1.0})
    a 0 the model
    b 0 the model
    """

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.model = model

    def _call(self, method, *args):
        for callback in self.callbacks:
            getattr(callback, method)(*args)

    def on_train_begin(self, logs=None):
        """Each callback's ``on_train_begin``, in order.

        >>> class Say(Callback):
        ...     def __init__(self, name): self.name = name
        ...     def on_train_begin(self, logs=None): print(self.name, "begins")
        >>> CallbackList([Say("a"), Say("b")], None).on_train_begin({})
        a begins
        b begins
        """
        self._call("on_train_begin", logs)

    def on_epoch_begin(self, epoch, logs=None):
        """Each callback's ``on_epoch_begin``, in order.

        >>> class Say(Callback):
        ...     def on_epoch_begin(self, epoch, logs=None): print("epoch", epoch)
        >>> CallbackList([Say(), Say()], None).on_epoch_begin(2, {})
        epoch 2
        epoch 2
        """
        self._call("on_epoch_begin", epoch, logs)

    def on_batch_end(self, batch, logs=None):
        """Each callback's ``on_batch_end``, in order.

        >>> class Say(Callback):
        ...     def on_batch_end(self, batch, logs=None): print(batch, logs)
        >>> CallbackList([Say()], None).on_batch_end(4, {"loss": 0.5})
        4 {'loss': 0.5}
        """
        self._call("on_batch_end", batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        """Each callback's ``on_epoch_end``, in order: a later one sees what an
        earlier one did (here the first stops training, the second reads it).

        >>> class Stop(Callback):
        ...     def on_epoch_end(self, epoch, logs=None): self.model.stop_training = True
        >>> class Look(Callback):
        ...     def on_epoch_end(self, epoch, logs=None): print(self.model.stop_training)
        >>> class Stub: stop_training = False
        >>> CallbackList([Stop(), Look()], Stub()).on_epoch_end(0, {"loss": 1.0})
        True
        """
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs=None):
        """Each callback's ``on_train_end``, in order.

        >>> class Say(Callback):
        ...     def __init__(self, name): self.name = name
        ...     def on_train_end(self, logs=None): print(self.name, "ends")
        >>> CallbackList([Say("a"), Say("b")], None).on_train_end({})
        a ends
        b ends
        """
        self._call("on_train_end", logs)


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
    """Stop when ``monitor`` has not improved by ``min_delta`` for more than
    ``patience`` epochs in a row; with ``restore_best_weights``, end on the best
    epoch's weights. ``mode`` 'auto' takes a name with "acc" in it as higher-is-better.

    With patience 1, one epoch without improvement is borne, the second stops:

    >>> class Stub: stop_training = False
    >>> stop = EarlyStopping(monitor="loss", patience=1); stop.model = Stub()
    >>> for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.96, 0.5]):
    ...     stop.on_epoch_end(epoch, {"loss": loss})
    ...     if stop.model.stop_training: break
    >>> stop.stopped_epoch, stop.best
    (3, 0.9)
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.better, self.restore = _better(mode, monitor), restore_best_weights
        self.best, self.best_state, self.wait, self.stopped_epoch = None, None, 0, None

    def on_train_begin(self, logs=None):
        """Forget what an earlier ``fit`` saw: each run starts with no best value.

        >>> stop = EarlyStopping(monitor="loss"); stop.best, stop.wait = 0.1, 3
        >>> stop.on_train_begin({}); stop.best, stop.wait
        (None, 0)
        """
        self.best, self.best_state, self.wait, self.stopped_epoch = None, None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        """Compare the epoch's ``monitor`` with the best so far; set the model's
        ``stop_training`` once patience runs out. An accuracy must rise by more than
        ``min_delta`` to count:

        >>> class Stub: stop_training = False
        >>> stop = EarlyStopping(monitor="val_accuracy", min_delta=0.01); stop.model = Stub()
        >>> stop.on_epoch_end(0, {"val_accuracy": 0.90}); stop.on_epoch_end(1, {"val_accuracy": 0.905})
        >>> stop.model.stop_training, stop.best
        (True, 0.9)

        A missing value is named, with where ``val_*`` values come from:

        >>> stop.on_epoch_end(2, {"loss": 0.3})
        Traceback (most recent call last):
        ...
        KeyError: "monitor 'val_accuracy' is not among the logged values ['loss']; pass validation_data for val_* values"
        """
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
        """With ``restore_best_weights``, load the state saved at the best epoch.

        >>> class Stub:
        ...     stop_training, w = False, 0
        ...     def state_dict(self): return {"w": self.w}
        ...     def load_state_dict(self, state): self.w = state["w"]
        >>> stop = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
        >>> stop.model = Stub()
        >>> for epoch, loss in enumerate([0.5, 0.2, 0.4]):
        ...     stop.model.w = epoch; stop.on_epoch_end(epoch, {"loss": loss})
        >>> stop.on_train_end({}); stop.model.w        # epoch 1's weights (loss 0.2)
        1
        """
        if self.restore and self.best_state is not None:
            self.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model after each epoch (``path`` may hold ``{epoch}`` and any
    logged value, e.g. ``model-{epoch:02d}-{val_loss:.3f}.gnn``, epochs counted
    from 1); with ``save_best_only``, only when ``monitor`` improves.

    >>> import os, tempfile
    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, inputs=x, outputs=g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save = ModelCheckpoint(os.path.join(d, "m-{epoch}-{loss:.2f}.gnn"))
    ...     _ = m.fit(np.zeros((8, 2)), np.ones((8, 1)), epochs=2, batch_size=4, verbose=0,
    ...               callbacks=[save])
    ...     sorted(os.listdir(d))
    ['m-1-0.98.gnn', 'm-2-0.90.gnn']
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path, self.monitor, self.best_only = os.fspath(path), monitor, save_best_only
        self.better, self.best = _better(mode, monitor), None

    def on_epoch_end(self, epoch, logs=None):
        """Save to ``path`` filled in with the epoch and its logs (if it is the best yet).

        >>> class Stub:
        ...     def save(self, path): print("saved", path)
        >>> save = ModelCheckpoint("best-{epoch}.gnn", save_best_only=True); save.model = Stub()
        >>> for epoch, loss in enumerate([0.5, 0.7, 0.4]):
        ...     save.on_epoch_end(epoch, {"val_loss": loss})
        saved best-1.gnn
        saved best-3.gnn
        """
        if self.best_only:
            value = _watch(logs, self.monitor)
            if self.best is not None and not self.better(value, self.best, 0.0):
                return
            self.best = value
        self.model.save(self.path.format(epoch=epoch + 1, **logs))


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``
    (epoch counted from 0, lr the current rate).

    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, inputs=x, outputs=g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")      # lr 0.01
    >>> halve = LearningRateScheduler(lambda epoch, lr: lr / 2)
    >>> _ = m.fit(np.zeros((8, 2)), np.ones((8, 1)), epochs=3, verbose=0, callbacks=[halve])
    >>> round(m.learning_rate, 8)                   # 0.01 / 2**3
    0.00125
    """

    def __init__(self, schedule, verbose=0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        """Set the model's ``learning_rate``; a rate that is not a positive number is refused.

        >>> class Stub: learning_rate = 0.1
        >>> step = LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** (epoch // 2), verbose=1)
        >>> step.model = Stub(); step.on_epoch_begin(2)
        Epoch 3: learning rate 0.05
        >>> zero = LearningRateScheduler(lambda epoch, lr: 0.0); zero.model = Stub()
        >>> zero.on_epoch_begin(0)
        Traceback (most recent call last):
        ...
        ValueError: the schedule gave learning rate 0.0 for epoch 1
        """
        lr = float(self.schedule(epoch, self.model.learning_rate))
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"the schedule gave learning rate {lr} for epoch {epoch + 1}")
        self.model.learning_rate = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")


class CSVLogger(Callback):
    """Append one CSV row per epoch (epoch from 1, then every logged value), under
    a header row; a new ``fit`` starts the file afresh unless ``append``.

    >>> import os, tempfile
    >>> import numpy as np
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, inputs=x, outputs=g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     log = CSVLogger(os.path.join(d, "log.csv"))
    ...     _ = m.fit(np.zeros((8, 2)), np.ones((8, 1)), epochs=2, batch_size=4, verbose=0,
    ...               callbacks=[log])
    ...     print(open(log.path).read(), end="")
    epoch,loss
    1,0.9802
    2,0.904105
    """

    def __init__(self, path, append=False):
        self.path, self.append = os.fspath(path), append

    def on_train_begin(self, logs=None):
        """Remove an old log at ``path``, unless appending to it.

        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = os.path.join(d, "log.csv"); _ = open(path, "w").write("old")
        ...     CSVLogger(path, append=True).on_train_begin({}); kept = os.path.exists(path)
        ...     CSVLogger(path).on_train_begin({}); kept, os.path.exists(path)
        (True, False)
        """
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, epoch, logs=None):
        """Append the epoch's row (the header first, into an empty file).

        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     log = CSVLogger(os.path.join(d, "log.csv"))
        ...     log.on_epoch_end(0, {"loss": 0.5, "accuracy": 0.75})
        ...     log.on_epoch_end(1, {"loss": 1 / 3, "accuracy": 0.8})
        ...     open(log.path).read().splitlines()
        ['epoch,loss,accuracy', '1,0.5,0.75', '2,0.333333,0.8']
        """
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
    would be wider than the terminal.

    >>> p = Progress(epochs=3, steps=10, verbose=2)
    >>> p.on_epoch_begin(0); p.on_epoch_end(0, {"loss": 0.25, "accuracy": 0.875})
    Epoch 1/3 - loss: 0.25 - acc: 0.875
    """

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
        """Start the epoch's bar (a tqdm bar of ``steps`` batches), on a terminal only.

        >>> import io
        >>> class Terminal(io.StringIO):
        ...     def isatty(self): return True
        >>> p = Progress(epochs=2, steps=4, stream=Terminal()); p.on_epoch_begin(0)
        >>> p.bar.desc, p.bar.total
        ('Epoch 1/2', 4)
        >>> q = Progress(epochs=2, steps=4, stream=io.StringIO()); q.on_epoch_begin(0)
        >>> q.bar is None                   # not a terminal: no bar, only the epoch's line
        True
        """
        if self._terminal():
            from tqdm import tqdm
            size = self._width()
            self.bar = tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}",
                            file=self.stream, leave=False, ncols=size.columns, nrows=size.lines,
                            bar_format=self.BAR)

    def on_batch_end(self, batch, logs=None):
        """Advance the bar one batch; show the running metrics every tenth batch and at the last.

        >>> import io
        >>> class Terminal(io.StringIO):
        ...     def isatty(self): return True
        >>> p = Progress(epochs=2, steps=4, stream=Terminal()); p.on_epoch_begin(0)
        >>> p.on_batch_end(0, {"loss": 0.5}); p.bar.n, p.bar.postfix
        (1, ' loss: 0.5')
        """
        if self.bar is not None:
            self.bar.update(1)
            if batch % 10 == 0 or batch == self.steps - 1:
                # what is left of the line once the bar has its minimum of 10 columns
                room = self.bar.ncols - len(self.bar.desc) - 2 * len(str(self.steps)) - 20
                text = " " + " - ".join(format_logs(logs))
                self.bar.set_postfix_str(text[:max(room, 0)], refresh=batch == self.steps - 1)

    def on_epoch_end(self, epoch, logs=None):
        """Close the bar, if any, and print the epoch's line in its place.

        >>> import io
        >>> class Terminal(io.StringIO):
        ...     def isatty(self): return True
        >>> out = Terminal(); p = Progress(epochs=2, steps=4, stream=out); p.on_epoch_begin(0)
        >>> p.on_epoch_end(0, {"loss": 0.5}); p.bar is None
        True
        >>> out.getvalue().split("\\r")[-1]       # the bar erased, the line written over it
        'Epoch 1/2 - loss: 0.5\\n'
        """
        head = f"Epoch {epoch + 1}/{self.epochs}"
        width = 10**6
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            width = self._width().columns
        if self.verbose:
            print("\n".join(epoch_lines(head, logs, width)), file=self.stream, flush=True)
