"""Model: compile a graph for training, then fit, evaluate and predict.

The model keeps one compiled Program per (purpose, batch size): training,
evaluation and prediction, and the last partial batch of each. All of them
share one set of variables (weights and optimizer state).

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

import zlib

import numpy as np

from .compiler import (GraphError, build_program, check_graph, inference_graph, prune,
                      training_graph)
from .compiler.errors import Problem
from .compiler.ir import add_op, copy_graph
from .compiler.ops import OPS
from .runtime import Executor

from . import optim
from .graph import Graph, Tensor
from .initializers import initialize
from .compiler.updates import LR_NODE

from .training import History, Batches, check_targets, prepare_inputs

LOSSES = {"mse": "mse", "l2": "mse", "rms": "mse", "l1": "l1",
          "softmax_cross_entropy": "softmax_cross_entropy",
          "cross_entropy": "softmax_cross_entropy",
          "categorical_cross_entropy": "cross_entropy",
          "binary_cross_entropy": "binary_cross_entropy", "bce": "binary_cross_entropy"}
CLASS_LOSSES = ("softmax_cross_entropy", "cross_entropy")   # take labels or one-hot rows
PENALTIES = ("l1_penalty", "l2_penalty", "gaussian_kl")   # added to the training loss
TARGET = "target"
WEIGHTS = "sample_weight"
LOSS = "loss"


def _names(graph: Graph, items) -> list[str]:
    items = items if isinstance(items, (list, tuple)) else [items]
    return [t.name if isinstance(t, Tensor) else str(t) for t in items]


class Model:
    """A graph with named inputs and outputs, ready to compile and train.

    ``seed`` fixes parameter initialization and, unless ``fit`` is given its
    own, the shuffling: the same graph and seeds give the same weights, bit for bit."""

    def __init__(self, graph: Graph, inputs, outputs, seed: int = 0):
        self.graph, self.seed = graph, int(seed)
        self.inputs, self.outputs = _names(graph, inputs), _names(graph, outputs)
        # losses, penalties and declared updates (batch norm's running averages) are ends too
        loss_sinks = [n for n, d in graph.nx.nodes(data=True)
                      if OPS.get(d.get("op")) is not None and OPS[d["op"]].kind in ("loss", "update")
                      and graph.nx.out_degree(n) == 0]
        self._checked = check_graph(graph.nx, self.outputs + loss_sinks)
        self._check_inputs()
        self.variables: dict[str, np.ndarray] = {}
        for name, d in self._checked.nodes(data=True):
            if d["op"] == "param":
                rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
                self.variables[name] = initialize(d["init"], d["shape"], d["dtype"], rng)
        self._loss = None
        self._fits = 0
        self._steps = 0                  # training steps taken (for learning-rate schedules)
        self.fuse = True
        self._built: dict = {}           # target layout -> training and evaluation graphs
        self._executors: dict = {}       # (purpose, batch, target layout, fuse) -> Executor

    def _check_inputs(self):
        g = self._checked
        problems = []
        for name in self.inputs:
            if name not in g or g.nodes[name]["op"] != "input":
                problems.append(Problem(name, g.nodes[name]["op"] if name in g else None,
                                        "is listed among the model's inputs but is not an input node"))
        for out in self.outputs:
            for node in prune(g, [out]).nodes:
                if g.nodes[node]["op"] == "input" and node not in self.inputs:
                    problems.append(Problem(node, "input", f"output {out!r} depends on it, but it "
                                            "is not among the model's inputs", g.nodes[node].get("source")))
        if problems:
            raise GraphError(problems)

    # ------------------------------------------------------------------ compile
    def compile(self, loss, optimizer="adam", metrics=None, fuse: bool = True) -> None:
        """Choose the loss (a name applied to the first output, or a loss tensor of
        the graph), the optimizer (name or ``graphnn.optim`` instance) and metrics.

        ``fuse=False`` compiles one kernel per op, without in-place writes: slower,
        for comparison and for finding the op behind a problem."""
        self.fuse = bool(fuse)
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)} "
                                 "or a loss tensor of the graph")
            self._loss = ("name", LOSSES[loss])
        else:
            name = _names(self.graph, loss)[0]
            if name not in self._checked or OPS[self._checked.nodes[name]["op"]].kind != "loss":
                raise ValueError(f"loss {name!r} is not a loss node of the graph")
            self._loss = ("node", name)
        self.optimizer = optim.get(optimizer)
        self.metrics = list(metrics or [])
        unknown = [m for m in self.metrics if m != "accuracy"]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; available: ['accuracy']")
        self._built: dict = {}
        self._executors: dict = {}

    def _require_compiled(self):
        if self._loss is None:
            raise RuntimeError("call model.compile(loss=..., optimizer=...) before fit or evaluate")

    def _loss_graph(self, target_spec):
        """(graph with the loss, loss node) for these targets. Weight penalties
        (regularizers) are added to the loss."""
        g = copy_graph(self._checked)
        shape, dtype, weighted = target_spec
        if self._loss[0] == "node":
            loss = self._loss[1]
        else:
            add_op(g, TARGET, "input", [], shape=shape, dtype=dtype)
            loss = add_op(g, LOSS, self._loss[1], [self.outputs[0], TARGET])
        if weighted:                      # one weight per sample: the loss's third operand
            add_op(g, WEIGHTS, "input", [], shape=(None,), dtype=self.graph.dtype)
            g.add_edge(WEIGHTS, loss, port=2)
        penalties = [n for n, d in g.nodes(data=True) if d["op"] in PENALTIES]
        if penalties:
            loss = add_op(g, "total_loss", "add_n", [loss, *penalties])
        declared = [n for n, d in g.nodes(data=True) if OPS[d["op"]].kind == "update"]
        return check_graph(g, [loss, *self.outputs, *declared], copy=False), loss

    def _targets(self) -> list[str]:
        """The target inputs the loss reads (not the sample weights)."""
        if self._loss[0] == "name":
            return [TARGET]
        g = self._checked
        return sorted(n for n in prune(g, [self._loss[1]]).nodes
                      if g.nodes[n]["op"] == "input" and n not in self.inputs)

    def _build(self, target_spec):
        if target_spec not in self._built:
            g, loss = self._loss_graph(target_spec)
            spec = {**self.optimizer.spec(), "lr": self.optimizer.lr}   # a schedule's first rate
            train, _ = training_graph(g, loss, self.outputs, spec, fuse=self.fuse)
            for name, d in train.nodes(data=True):
                if d["op"] == "state" and name not in self.variables:
                    self.variables[name] = np.full(d["shape"], d["init"], dtype=d["dtype"])
            self._built[target_spec] = {"train": train, "loss": loss,
                                        "eval": inference_graph(g, [loss, *self.outputs])}
        return self._built[target_spec]

    def _executor(self, purpose: str, batch: int, target_spec=None, fuse=None) -> Executor:
        key = (purpose, batch, target_spec, fuse)
        if key not in self._executors:
            program = self.program(purpose, batch, target_spec, fuse)
            self._executors[key] = Executor(program, self.variables)
        return self._executors[key]

    def program(self, purpose: str = "predict", batch_size: int = 1, target_spec=None,
                fuse: bool | None = None):
        """The compiled Program for 'train', 'eval' or 'predict' at one batch size
        (fused as compiled, unless ``fuse`` says otherwise)."""
        fuse = getattr(self, "fuse", True) if fuse is None else fuse
        if purpose == "predict":
            g = inference_graph(self._checked, self.outputs)       # prunes what prediction skips
            return build_program(g, self.outputs, batch_size, fuse=fuse)
        self._require_compiled()
        built = self._build(target_spec or self._default_target_spec())
        outs = [built["loss"], *self.outputs]
        return build_program(built[purpose], outs, batch_size, fuse=fuse,
                             guard=(built["loss"],) if purpose == "train" else ())

    def _default_target_spec(self):
        """(target shape, target dtype, weighted): what a training graph is built for."""
        if self._loss[0] == "node":
            return (None, None, False)
        if self._loss[1] in CLASS_LOSSES:
            return ((None,), "int64", False)
        out = self._checked.nodes[self.outputs[0]]
        return (out["shape"], out["dtype"], False)

    def _target_spec_for(self, y, weighted=False):
        if self._loss[0] == "node":
            return (None, None, weighted)
        if self._loss[1] in CLASS_LOSSES and y.ndim == 1:
            return ((None,), "int64", weighted)
        out = self._checked.nodes[self.outputs[0]]
        return (out["shape"], out["dtype"], weighted)

    # --------------------------------------------------------------------- data
    def _feeds(self, x, y, sample_weight=None):
        g = self._checked
        feeds = prepare_inputs(g, self.inputs, x, "x")
        spec = None
        if y is not None:
            targets = self._targets()
            weighted = sample_weight is not None
            if self._loss[0] == "name":
                y = np.asarray(y)
                spec = self._target_spec_for(y, weighted)
                tfeeds = prepare_inputs(self._build(spec)["eval"], targets, y, "y")
            else:
                spec = self._target_spec_for(None, weighted)
                tfeeds = prepare_inputs(g, targets, y, "y")
            if weighted:
                w = np.asarray(sample_weight, dtype=self.graph.dtype)
                if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any():
                    raise ValueError(f"sample_weight must be one finite weight >= 0 per sample, "
                                     f"got an array of shape {w.shape}")
                tfeeds[WEIGHTS] = w
            loss_op = self._loss[1] if self._loss[0] == "name" else g.nodes[self._loss[1]]["op"]
            check_targets(loss_op, tfeeds, g.nodes[self.outputs[0]]["shape"] if self.outputs else None)
            feeds.update(tfeeds)
        sizes = {k: len(v) for k, v in feeds.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"inputs have different numbers of samples: {sizes}")
        return feeds, spec

    # ------------------------------------------------------------------ train
    def fit(self, x, y=None, epochs: int = 1, batch_size: int = 32, validation_data=None,
            shuffle: bool = True, seed: int | None = None, verbose: int = 1,
            callbacks=None, sample_weight=None) -> History:
        """Train for ``epochs`` passes over the data (every sample, the last partial
        batch included); return the History of per-epoch loss and metrics.

        ``verbose``: 0 silent, 1 a progress bar per epoch on a terminal (one line
        per epoch when output is not a terminal), 2 one line per epoch.
        ``callbacks``: graphnn.callbacks objects (EarlyStopping, ModelCheckpoint, ...).
        ``sample_weight``: one weight per sample, multiplying its share of the loss."""
        from .callbacks import Progress
        self._require_compiled()
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        feeds, spec = self._feeds(x, y, sample_weight)
        n = len(next(iter(feeds.values())))
        rng = np.random.default_rng([self.seed if seed is None else seed, self._fits])
        self._fits += 1
        loss = self._build(spec)["loss"]
        steps = -(-n // batch_size)
        hooks = list(callbacks or [])
        if verbose:
            hooks.append(Progress(epochs, steps, verbose))
        for hook in hooks:
            hook.model = self
            hook.on_train_begin({})
        history, self.stop_training = History(), False
        for epoch in range(epochs):
            for hook in hooks:
                hook.on_epoch_begin(epoch, {})
            order = rng.permutation(n) if shuffle else np.arange(n)
            totals = Batches(self.metrics)
            for b, idx in enumerate(np.array_split(order, range(batch_size, n, batch_size))):
                ex = self._executor("train", len(idx), spec)
                for name, array in feeds.items():
                    np.take(array, idx, axis=0, out=ex.views[name], mode="clip")
                if self.optimizer.schedule is not None:
                    self.learning_rate = self.optimizer.schedule(self._steps)
                self._steps += 1
                try:
                    ex.step()
                except FloatingPointError as e:
                    self._diagnose(ex, spec, f"epoch {epoch + 1}, batch {b + 1}", e)
                totals.add(ex.views[loss], ex.views[self.outputs[0]] if self.outputs else None,
                           self._first_target(ex), len(idx), self._threshold())
                if hooks:
                    logs = totals.result()
                    for hook in hooks:
                        hook.on_batch_end(b, logs)
            logs = totals.result()
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=batch_size, verbose=0)
                logs.update({f"val_{k}": v for k, v in val.items()})
            history.append(epoch, logs)
            for hook in hooks:
                hook.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for hook in hooks:
            hook.on_train_end({})
        return history

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate; setting it takes effect at the next step."""
        lr = self.variables.get(LR_NODE)
        return float(lr) if lr is not None else self.optimizer.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if LR_NODE in self.variables:
            self.variables[LR_NODE][...] = value
        if self.optimizer.schedule is None:
            self.optimizer.lr = float(value)

    def _first_target(self, ex):
        targets = self._targets()
        return ex.views[targets[0]] if targets else None

    def _threshold(self) -> float:
        g = self._checked
        if self._loss[0] == "node" and g.nodes[self._loss[1]].get("from_logits"):
            return 0.0
        return 0.5

    def _diagnose(self, train_ex, spec, where, error):
        # Unfused, so the culprit is the op the user wrote, not a fused kernel.
        ex = self._executor("eval", train_ex.program.batch_size, spec, fuse=False)
        found = ex.first_non_finite({k: train_ex.views[k] for k in train_ex.program.inputs})
        culprit = f"first non-finite value at node {found[0]!r} ({found[1]})" if found else \
            "no non-finite value found when re-running the forward pass"
        raise FloatingPointError(f"training stopped at {where}: {error}; {culprit}. The step "
                                 "stopped before any weight changed.") from None

    def evaluate(self, x, y=None, batch_size: int = 256, verbose: int = 0,
                 sample_weight=None) -> dict:
        """The mean loss and metrics over (x, y), in batches."""
        self._require_compiled()
        feeds, spec = self._feeds(x, y, sample_weight)
        n = len(next(iter(feeds.values())))
        loss = self._build(spec)["loss"]
        totals = Batches(self.metrics)
        for idx in np.array_split(np.arange(n), range(batch_size, n, batch_size)):
            ex = self._executor("eval", len(idx), spec)
            for name, array in feeds.items():
                np.take(array, idx, axis=0, out=ex.views[name], mode="clip")
            ex.step()
            totals.add(ex.views[loss], ex.views[self.outputs[0]] if self.outputs else None,
                       self._first_target(ex), len(idx), self._threshold())
        result = totals.result()
        if not np.isfinite(result["loss"]):
            raise FloatingPointError(f"evaluation loss is {result['loss']}")
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        return result

    def predict(self, x, batch_size: int = 256):
        """The model's outputs for ``x`` (one array, or a list for several outputs)."""
        feeds, _ = self._feeds(x, None)
        n = len(next(iter(feeds.values())))
        results = None
        for idx in np.array_split(np.arange(n), range(batch_size, n, batch_size)):
            ex = self._executor("predict", len(idx))
            for name, array in feeds.items():
                np.take(array, idx, axis=0, out=ex.views[name], mode="clip")
            ex.step()
            if results is None:
                results = [np.empty((n, *ex.views[o].shape[1:]), ex.views[o].dtype) for o in self.outputs]
            for r, o in zip(results, self.outputs):
                r[idx[0]:idx[-1] + 1] = ex.views[o]
        return results[0] if len(results) == 1 else results

    def _repr_mimebundle_(self, include=None, exclude=None):
        from .viz import mimebundle
        return mimebundle(self, include, exclude)

    def summary(self, print_fn=None, batch_size: int = 32, memory: bool = True) -> str:
        """The model as a table: layer, output shape, parameters, FLOPs per sample,
        inputs; then totals and the memory plan at ``batch_size``. Returned as a
        string (which shows as the table at a prompt); also passed to ``print_fn``."""
        from .summary import summarize
        text = summarize(self, batch_size, memory)
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------ save / load
    def save(self, path: str) -> None:
        """Write the model (graph, weights, optimizer state, settings) to one file;
        atomic: a failed save leaves an existing file as it was. See graphnn.io."""
        from .io import save_model
        save_model(self, path)

    def compile_config(self) -> dict | None:
        """How the model was compiled, as plain data (None if it was not)."""
        if self._loss is None:
            return None
        return {"loss": list(self._loss), "optimizer": self.optimizer.spec(),
                "metrics": self.metrics, "fuse": self.fuse,
                "targets": [[None if t[0] is None else list(t[0]), t[1], t[2]] for t in self._built]}

    def compile_from_config(self, config: dict) -> None:
        """Compile as ``compile_config()`` described, and build the same programs'
        graphs, so that saved optimizer state has somewhere to go."""
        kind, loss = config["loss"]
        self.compile(loss=loss if kind == "name" else self.graph[loss],
                     optimizer=optim.from_spec(config["optimizer"]),
                     metrics=config.get("metrics"), fuse=config.get("fuse", True))
        if kind == "name" and loss not in LOSSES:
            self._loss = ("name", loss)
        for target in config.get("targets", []):
            shape, dtype, weighted = (target + [False])[:3] if target else (None, None, False)
            self._build((None if shape is None else tuple(shape), dtype, weighted))

    def state_dict(self) -> dict:
        """A copy of every variable (weights and optimizer state), by name."""
        return {k: v.copy() for k, v in self.variables.items()}

    def load_state_dict(self, state: dict, strict: bool = True, source: str | None = None):
        """Copy ``state`` into the model's variables. Returns (missing, unexpected)
        key lists; with ``strict``, either being non-empty is a KeyError."""
        where = f"{source}: " if source else ""
        missing = sorted(set(self.variables) - set(state))
        unexpected = sorted(set(state) - set(self.variables))
        if strict and (missing or unexpected):
            raise KeyError(f"{where}state does not match the model: missing {missing}, "
                           f"unexpected {unexpected}")
        for k in sorted(set(state) & set(self.variables)):
            value, own = np.asarray(state[k]), self.variables[k]
            if value.shape != own.shape:
                raise ValueError(f"{where}variable {k!r} has shape {value.shape}, the model's "
                                 f"is {own.shape}")
        for k in sorted(set(state) & set(self.variables)):
            self.variables[k][...] = state[k]
        return missing, unexpected

    # ---------------------------------------------------------------- weights
    def get_weights(self) -> dict:
        """A copy of every parameter, by name."""
        return {k: v.copy() for k, v in self.variables.items()
                if self._checked.has_node(k) and self._checked.nodes[k]["op"] == "param"}

    def set_weights(self, weights: dict) -> None:
        """Overwrite parameters in place (shapes must match)."""
        for k, v in weights.items():
            if k not in self.variables:
                raise KeyError(f"no parameter named {k!r}")
            if np.shape(v) != self.variables[k].shape:
                raise ValueError(f"parameter {k!r} has shape {self.variables[k].shape}, got {np.shape(v)}")
            self.variables[k][...] = v
