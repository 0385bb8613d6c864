"""Model: compile a graph for training, then fit, evaluate and predict.

The model keeps one compiled Program per (purpose, batch size): training,
evaluation and prediction, and the last partial batch of each. All of them
share one set of variables (weights and optimizer state). The training graph
itself (target, loss, sample weights, penalties, gradients, updates) is
assembled by the compiler (``graphnn.compiler.training``).

>>> import numpy as np
>>> from graphnn import Graph, Model
>>> g = Graph(); x = g.input("x", (None, 2))
>>> model = Model(g, inputs=x, outputs=g.dense(x, 1, activation="sigmoid"))
>>> model.compile(loss="binary_cross_entropy", optimizer="adam", metrics=["accuracy"])
>>> data = np.random.default_rng(0).normal(size=(64, 2))
>>> hist = model.fit(data, (data[:, 0] > data[:, 1]).astype("float32")[:, None],
...                  epochs=2, batch_size=16, verbose=0)
>>> sorted(hist.history)
['accuracy', 'loss']
"""
from __future__ import annotations

import numpy as np

from . import checks, optim
from .base import Tensor
from .compiler import build_program, check_graph, inference_graph
from .compiler.training import (
    LossSpec,
    TargetSpec,
    build_training_graph,
    check_model_io,
    compile_for,
    graph_ends,
    target_inputs,
)
from .compiler.training import target_spec as default_target
from .guard import StepGuard
from .runtime import Executor
from .state import StateMethods, add_state, initial_variables
from .training import Batches, History, as_list, check_metrics, epoch_order, epoch_range, split_validation


def _names(items) -> list[str]:
    items = items if isinstance(items, (list, tuple)) else [items]
    return [t.name if isinstance(t, Tensor) else str(t) for t in items]


class Model(StateMethods):
    """A graph with named inputs and outputs, ready to compile and train.

    ``seed`` fixes parameter initialization and, unless ``fit`` is given its
    own, the shuffling: the same graph and seeds give the same weights, bit for bit.

    >>> import numpy as np
    >>> from graphnn import Graph
    >>> g = Graph(); x = g.input("x", (None, 3)); y = g.dense(x, 2)
    >>> a, b, c = Model(g, x, y, seed=1), Model(g, x, y, seed=1), Model(g, x, y, seed=2)
    >>> [np.array_equal(a.variables["dense/W"], m.variables["dense/W"]) for m in (b, c)]
    [True, False]
    >>> a.inputs, a.outputs                  # tensors are kept by node name
    (['x'], ['dense/bias_add'])
    """

    def __init__(self, graph, inputs, outputs, seed: int = 0):
        self.graph, self.seed = graph, int(seed)
        self.inputs, self.outputs = _names(inputs), _names(outputs)
        # losses, penalties and declared updates (batch norm's running averages) are ends too
        self._checked = check_graph(graph.nx, self.outputs + graph_ends(graph.nx))
        check_model_io(self._checked, self.inputs, self.outputs)
        self.variables = initial_variables(self._checked, self.seed)
        self._loss: LossSpec | None = None
        self._fits = self.epoch = self._steps = 0   # fits run, epochs done, steps taken (saved)
        self.fuse, self._trace = True, None
        self._built: dict = {}           # TargetSpec -> {"train", "eval", "loss"}
        self._executors: dict = {}       # (purpose, batch, TargetSpec, fuse) -> Executor

    # ------------------------------------------------------------------ compile
    def compile(self, loss, optimizer="adam", metrics=None, fuse: bool = True, trace=None) -> None:
        """Choose the loss (a name applied to the first output, a loss tensor of
        the graph, or a ``LossSpec``), the optimizer (name or ``graphnn.optim``
        instance) and metrics.

        ``fuse=False`` compiles one kernel per op, without in-place writes: slower,
        for comparison and for finding the op behind a problem. ``trace(pass_name,
        result)`` sees every compiler pass of each program compiled from now on.

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd", fuse=False); m.optimizer
        SGD(lr=0.01, momentum=0.0, nesterov=False)
        >>> [i.kernel for i in m.program("predict").instructions]     # unfused: one kernel per op
        ['matmul', 'bias_add']
        >>> m.compile(loss="mse", metrics=["f1"])
        Traceback (most recent call last):
        ...
        ValueError: unknown metric(s) ['f1']; available: ['accuracy']
        """
        metrics = checks.compile_arguments(metrics, fuse)
        loss = LossSpec.resolve(loss if isinstance(loss, (str, LossSpec)) else
                                LossSpec(node=_names(loss)[0]), self._checked)
        optimizer, metrics = optim.get(optimizer), check_metrics(metrics)
        self._loss, self.optimizer, self.metrics = loss, optimizer, metrics
        self.fuse, self._trace = bool(fuse), trace
        self._targets = target_inputs(self._checked, loss, self.inputs)
        from_logits = loss.node is not None and self._checked.nodes[loss.node].get("from_logits")
        self._threshold = 0.0 if from_logits else 0.5      # accuracy of one output column
        self._built, self._executors = {}, {}

    def _require_compiled(self):
        if self._loss is None:
            raise RuntimeError("call model.compile(loss=..., optimizer=...) before fit or evaluate")

    def _build(self, target) -> dict:
        """The training and evaluation graphs for one target layout (built once)."""
        target = TargetSpec(*target)
        if target not in self._built:
            built = build_training_graph(self._checked, self._loss, target, self.outputs, self._optimizer_spec,
                                         weight_dtype=self.graph.dtype, fuse=self.fuse)
            add_state(self.variables, built.train)
            self._built[target] = built._asdict()
        return self._built[target]

    @property
    def _optimizer_spec(self) -> dict | None:            # with a schedule's first rate
        return self._loss and {**self.optimizer.spec(), "lr": self.optimizer.lr}

    def _executor(self, purpose: str, batch: int, target=None, fuse=None) -> Executor:
        key = (purpose, batch, target, fuse)
        if key not in self._executors:
            self._executors[key] = Executor(self.program(purpose, batch, target, fuse), self.variables)
        return self._executors[key]

    def program(self, purpose: str = "predict", batch_size: int = 1, target_spec=None,
                fuse: bool | None = None, trace=None):
        """The compiled Program for 'train', 'eval' or 'predict' at one batch size
        (fused as compiled, unless ``fuse`` says otherwise). With ``trace`` (or one
        given to ``compile``), every pass runs afresh and reports to it.

        The training program computes the loss, checks it is finite, and updates
        every weight; prediction needs neither target nor loss:

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd")
        >>> train = m.program("train", batch_size=4)
        >>> train.inputs, train.batch_size, [i.kernel for i in train.instructions]
        (['x', 'target'], 4, ['fused', 'mse', 'check_finite', 'mse_grad', 'bias_grad', 'sgd_update', 'matmul', 'sgd_update'])
        >>> m.program("predict").inputs
        ['x']
        >>> passes = []
        >>> _ = m.program("predict", trace=lambda name, result: passes.append(name)); passes
        ['validate', 'infer', 'inference', 'fuse', 'lower', 'schedule', 'plan']
        """
        fuse, trace, outs, built = self.fuse if fuse is None else fuse, trace or self._trace, self.outputs, None
        if purpose != "predict":
            self._require_compiled()
            target_spec = TargetSpec(*(target_spec or default_target(self._checked, self._loss, outs)))
            built = self._build(target_spec)        # also makes the optimizer's state variables
        if trace is not None:
            return compile_for(purpose, self.graph.nx, outs, batch_size, self._loss, target_spec,
                               self._optimizer_spec, weight_dtype=self.graph.dtype, fuse=fuse, trace=trace)
        if built is None:                            # prediction prunes what it does not need
            return build_program(inference_graph(self._checked, outs), outs, batch_size, fuse=fuse)
        return build_program(built[purpose], [built["loss"], *outs], batch_size, fuse=fuse,
                             guard=(built["loss"],) if purpose == "train" else ())

    # --------------------------------------------------------------------- data
    def _batches(self, purpose: str, feeds: dict, target, batch_size: int, order=None):
        """Yield (batch number, sample indices, executor) for each batch of ``order``
        (default: every sample in turn), the batch already copied into the
        executor's inputs; the last batch may be smaller."""
        n = len(next(iter(feeds.values())))
        order = np.arange(n) if order is None else order
        ex = None
        for b, idx in enumerate(np.array_split(order, range(batch_size, n, batch_size))):
            if ex is None or len(idx) != ex.program.batch_size:     # only the last batch differs
                ex = self._executor(purpose, len(idx), target)
            for name, array in feeds.items():
                array.take(idx, axis=0, out=ex.views[name], mode="clip")   # the method: a third of np.take's call cost
            yield b, idx, ex

    def _tally(self, totals: Batches, ex: Executor, loss: str, n: int) -> None:
        totals.add(ex.views[loss], ex.views[self.outputs[0]] if self.outputs else None,
                   ex.views[self._targets[0]] if self._targets else None, n, self._threshold)

    # ------------------------------------------------------------------ train
    def fit(self, x, y=None, epochs: int = 1, batch_size: int = 32, validation_data=None,
            shuffle: bool = True, seed: int | None = None, verbose: int = 1, callbacks=None,
            sample_weight=None, distributed=False, validation_split=0.0, initial_epoch=0) -> History:
        """Train for ``epochs`` passes over the data (every sample, the last partial
        batch included); return the History of per-epoch loss and metrics.

        ``verbose``: 0 silent, 1 a progress bar per epoch on a terminal (one line
        per epoch when output is not a terminal), 2 one line per epoch.
        ``callbacks``: graphnn.callbacks objects (EarlyStopping, ModelCheckpoint, ...).
        ``sample_weight``: one weight per sample, multiplying its share of the loss;
        the mean still divides by the number of samples, not by the sum of the
        weights (Keras's convention, see docs/conventions.md).
        ``distributed``: data-parallel under mpiexec, ``batch_size`` the global batch.
        ``validation_split``, ``initial_epoch``: as Keras; epoch e shuffles by (seed, e), so a
        saved model resumed at ``initial_epoch`` (``self.epoch``) trains bit for bit as before.

        Learning y = 2 x0 - x1 with a quarter of the samples held out:

        >>> import numpy as np
        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd")
        >>> data = np.random.default_rng(0).normal(size=(64, 2))
        >>> h = m.fit(data, data @ [[2.0], [-1.0]], epochs=5, batch_size=8, verbose=0,
        ...           validation_split=0.25)
        >>> sorted(h.history), h.epoch, m.epoch
        (['loss', 'val_loss'], [0, 1, 2, 3, 4], 5)
        >>> bool(np.all(np.diff(h.history["val_loss"]) < 0))      # falls every epoch
        True
        """
        x, y, sample_weight, validation_data = split_validation(
            self, x, y, sample_weight, validation_split, validation_data)
        if distributed:                  # graphnn.distributed runs the loop across ranks
            from . import distributed as dist
            return dist.fit(self, x, y, epochs, batch_size, validation_data, shuffle, seed,
                            verbose, callbacks, sample_weight, initial_epoch=initial_epoch)
        from .callbacks import CallbackList, Progress
        feeds, target = checks.fit_arguments(
            self, x, y, sample_weight, epochs=epochs, batch_size=batch_size, verbose=verbose,
            validation_data=validation_data, shuffle=shuffle, seed=seed, callbacks=callbacks)
        n, guard = len(next(iter(feeds.values()))), StepGuard()
        self._fits += 1
        loss = self._build(target)["loss"]
        progress = [Progress(epochs, -(-n // batch_size), verbose)] if verbose else []
        hooks = CallbackList([*(callbacks or []), *progress], self)
        hooks.on_train_begin({})
        history, self.stop_training = History(), False
        for epoch in epoch_range(initial_epoch, epochs):
            hooks.on_epoch_begin(epoch, {})
            totals = Batches(self.metrics)
            order = epoch_order(self.seed if seed is None else seed, epoch, n, shuffle)
            for b, idx, ex in self._batches("train", feeds, target, batch_size, order):
                if self.optimizer.schedule is not None:
                    self.learning_rate = self.optimizer.schedule(self._steps)
                self._steps += 1
                guard.step(self, ex, lambda n=len(idx): self._executor("eval", n, target, fuse=False),  # noqa: B008
                           f"epoch {epoch + 1}, batch {b + 1}")     # undone if NaN or inf
                self._tally(totals, ex, loss, len(idx))
                if hooks.callbacks:
                    hooks.on_batch_end(b, totals.result())
            logs = totals.result()
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=batch_size, verbose=0)
                logs.update({f"val_{k}": v for k, v in val.items()})
            history.append(epoch, logs)
            self.epoch = epoch + 1
            hooks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        hooks.on_train_end({})
        return history

    def evaluate(self, x, y=None, batch_size: int = 256, verbose: int = 0,
                 sample_weight=None, return_dict: bool = True):
        """The mean loss and metrics over (x, y), in batches (``return_dict=False``: a list).

        With W = [1, 1] and b = 0.5 the model says 3.5 for (1, 2); against 4 the
        squared error is 0.25, and for (0, 0) against 0.5 it is 0:

        >>> import numpy as np
        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd")
        >>> m.set_weights({"dense/W": np.array([[1.0], [1.0]]), "dense/b": np.array([0.5])})
        >>> m.evaluate(np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[4.0], [0.5]]))
        {'loss': 0.125}
        >>> m.evaluate(np.array([[1.0, 2.0]]), np.array([[4.0]]), return_dict=False)
        0.25
        """
        feeds, target = checks.evaluate_arguments(self, x, y, sample_weight,
                                                  batch_size=batch_size, verbose=verbose)
        loss = self._build(target)["loss"]
        totals = Batches(self.metrics)
        for _, idx, ex in self._batches("eval", feeds, target, batch_size):
            ex.step()
            self._tally(totals, ex, loss, len(idx))
        result = totals.result()
        if not np.isfinite(result["loss"]):
            raise FloatingPointError(f"evaluation loss is {result['loss']}")
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        return result if return_dict else as_list(result)

    def predict(self, x, batch_size: int = 256):
        """The model's outputs for ``x`` (one array, or a list for several outputs).

        >>> import numpy as np
        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2)); h = g.dense(x, 1)
        >>> m = Model(g, x, [h, g.relu(h)])
        >>> m.set_weights({"dense/W": np.array([[1.0], [1.0]]), "dense/b": np.array([0.5])})
        >>> linear, relu = m.predict(np.array([[1.0, 2.0], [-3.0, 1.0]]), batch_size=1)
        >>> linear.ravel().tolist(), relu.ravel().tolist()        # x0 + x1 + 0.5, and its relu
        ([3.5, -1.5], [3.5, 0.0])
        """
        feeds = checks.predict_arguments(self, x, batch_size=batch_size)
        n, results = len(next(iter(feeds.values()))), None
        for _, idx, ex in self._batches("predict", feeds, None, batch_size):
            ex.step()
            if results is None:
                results = [np.empty((n, *ex.views[o].shape[1:]), ex.views[o].dtype) for o in self.outputs]
            for r, o in zip(results, self.outputs):
                r[idx[0]:idx[-1] + 1] = ex.views[o]
        return results[0] if len(results) == 1 else results

    # ------------------------------------------------------------ views / files
    def _repr_mimebundle_(self, include=None, exclude=None):
        from .viz import mimebundle
        return mimebundle(self, include, exclude)

    def summary(self, print_fn=None, batch_size: int = 32, memory: bool = True,
                expand_nested: bool = False) -> str:
        """The model as a table: layer, output shape, parameters, FLOPs per sample,
        inputs; then totals and the memory plan at ``batch_size``. Returned as a
        string (which shows as the table at a prompt); also passed to ``print_fn``.

        A dense layer from 2 inputs to 1 output has 2 weights and 1 bias:

        >>> from graphnn import Graph
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> table = m.summary(memory=False)
        >>> for line in table.splitlines(): print(line.rstrip())
        ====================================================================
        Layer (type)   Output shape  Param #  Trainable  FLOPs  Connected to
        ====================================================================
        x (input)      (N, 2)        0                   0
        dense (dense)  (N, 1)        3        yes        5      x
        ====================================================================
        Total params: 3 (trainable 3, non-trainable 0)

        Once compiled, the table adds what training keeps per layer, and the
        memory plan of a training step.
        """
        from .summary import summarize
        checks.summary_arguments(print_fn, batch_size, memory)
        text = summarize(self, batch_size, memory, expand_nested)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path: str) -> None:
        """Write the model (graph, weights, optimizer state, settings) to one file;
        atomic: a failed save leaves an existing file as it was. See graphnn.io.

        >>> import os, tempfile
        >>> import numpy as np
        >>> from graphnn import Graph, load_model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1), seed=3)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     m.save(os.path.join(d, "m.gnn")); back = load_model(os.path.join(d, "m.gnn"))
        >>> data = np.array([[1.0, 2.0]])
        >>> np.array_equal(back.predict(data), m.predict(data))
        True
        """
        from .archive import save_model
        save_model(self, path)
