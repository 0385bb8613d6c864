"""Training steps that never leave a NaN or inf in the weights.

A step can go non-finite in two places: the forward pass (the loss guard of
the program stops it before the updates) or an update itself (a learning rate
so large that ``p - lr * g`` overflows, say), which no loss check can see
before it is written. ``StepGuard`` copies every variable a training program
writes (weights, optimizer state, running averages) before the step, runs
it, and checks what it wrote. On a NaN or inf (or any error in the step) it
puts everything back, so the model is exactly as it was before the step, and
the error names the first update that wrote a non-finite value.

>>> import numpy as np
>>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
>>> p = Program(buffers={"w": Buffer("w", (2,), "float64", persistent=True),
...                      "g": Buffer("g", (2,), "float64", offset=0)},
...             instructions=[Instruction("exp", ["g"], ["w"], node="w/update")],
...             inputs=["g"], outputs=[], batch_size=1, memory=MemoryReport(16, 16, 16))
>>> from graphnn.runtime import Executor
>>> variables = {"w": np.ones(2)}
>>> ex = Executor(p, variables)
>>> ex.views["g"][:] = [0.0, 1000.0]                  # exp(1000) overflows
>>> try:
...     StepGuard().run(ex)
... except NonFiniteUpdate as e:
...     print(e.node, e.variable, variables["w"])
w/update w [1. 1.]
"""
from __future__ import annotations

import math

import numpy as np


class NonFiniteUpdate(FloatingPointError):
    """An instruction wrote a NaN or inf into a variable (and was undone). A
    FloatingPointError that keeps the node, kernel and variable apart.

    >>> e = NonFiniteUpdate("fc/W/update", "sgd_update", "fc/W")
    >>> str(e), e.variable, isinstance(e, FloatingPointError)
    ("node 'fc/W/update' (sgd_update) wrote a NaN or inf into 'fc/W'", 'fc/W', True)
    """

    def __init__(self, node: str, kernel: str, variable: str):
        self.node, self.kernel, self.variable = node, kernel, variable
        super().__init__(f"node {node!r} ({kernel}) wrote a NaN or inf into {variable!r}")


def finite(a: np.ndarray) -> bool:
    """Whether ``a`` holds no NaN or inf: one BLAS pass (a sum of squares is NaN
    or inf if any element is), a closer look only when it overflows (which
    NumPy may warn about: call it under ``np.errstate(over="ignore")``).

    >>> with np.errstate(over="ignore", invalid="ignore"):
    ...     finite(np.array([1.0, 2.0])), finite(np.array([1.0, np.nan])), finite(np.array([1e300]))
    (True, False, True)
    """
    if a.dtype.kind != "f":
        return True
    if a.ndim == 1:                    # ndarray.dot: a third of np.vdot's call cost on small arrays
        return math.isfinite(a.dot(a)) or bool(np.isfinite(a).all())
    return bool(np.isfinite(np.vdot(a, a))) or bool(np.isfinite(a).all())


class _Undo:
    """What one executor's step writes to variables, and room for a copy of it.

    The copy is taken in spans: the variables that share one block of memory
    (``graphnn.state.packed`` puts all of a model's weights, and all of its
    optimizer state, side by side) are copied, and checked, as one span when
    they cover most of it, so a step costs a couple of copies and sums, not
    one per array."""

    def __init__(self, ex):
        self.writes = []                           # (instruction, variable), program order
        views = {}
        for ins in ex.program.instructions:
            for name in ins.outputs:
                if ex.program.buffers[name].persistent:
                    self.writes.append((ins, name))
                    views.setdefault(name, ex.views[name])
        self.views = views
        self.spans = [(live, np.empty_like(live)) for live in _spans(list(views.values()))]
        self.checked = [live for live, _ in self.spans if live.dtype.kind == "f"]

    def save(self) -> None:
        for live, keep in self.spans:
            np.copyto(keep, live)

    def restore(self) -> None:
        for live, keep in self.spans:
            np.copyto(live, keep)

    def culprit(self):
        """(instruction, variable) of the first write that left a NaN or inf,
        or None when every variable the step wrote is finite."""
        for live in self.checked:
            if not finite(live):
                break
        else:
            return None
        return next(((ins, name) for ins, name in self.writes if not finite(self.views[name])), None)


def _spans(views: list) -> list:
    """Arrays covering ``views``: one span of each memory block whose views
    fill at least half of the bytes between the first and the last of them,
    padding aside (the gaps are copied and checked too), every other view on
    its own."""
    groups, spans = {}, []
    for v in views:
        owner = v.base if v.base is not None else v
        groups.setdefault((id(owner), v.dtype), (owner, []))[1].append(v)
    for (_, dtype), (owner, members) in groups.items():
        if len(members) > 1 and owner.flags.c_contiguous and all(m.flags.c_contiguous for m in members):
            origin = owner.ctypes.data
            starts = [m.ctypes.data - origin for m in members]
            lo, hi = min(starts), max(s + m.nbytes for s, m in zip(starts, members))
            aligned = all((s - lo) % dtype.itemsize == 0 for s in starts) and (hi - lo) % dtype.itemsize == 0
            # each member may bring a cache line of padding (packed's alignment)
            if aligned and 2 * sum(m.nbytes for m in members) + 64 * len(members) >= hi - lo:
                spans.append(owner.reshape(-1).view(np.uint8)[lo:hi].view(dtype))
                continue
        spans.extend(members)
    return spans


class StepGuard:
    """Undo for a training step: a copy of every variable the step writes
    (in spans, see ``_Undo``), taken before it runs and checked after.
    ``fit`` runs every step through one; an update that overflows stops
    training with the model as it was:

    >>> from graphnn import Graph, Model
    >>> from graphnn.optim import SGD
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer=SGD(1e30))
    >>> before = m.get_weights()
    >>> m.fit(np.full((4, 2), 1e10), np.zeros((4, 1)), verbose=0)
    Traceback (most recent call last):
    ...
    FloatingPointError: training stopped at epoch 1, batch 1: the update of parameter 'dense/b' (node 'dense/b/update', sgd_update) wrote a NaN or inf into 'dense/b'; lower the learning rate or clip the gradients (clip_norm). The step was undone: weights and optimizer state are as they were before it.
    >>> all(np.array_equal(w, m.get_weights()[k]) for k, w in before.items())
    True
    """

    def _undo(self, ex) -> _Undo:
        made = getattr(ex, "_step_undo", None)     # one per executor, made at its first step
        if made is None:
            made = ex._step_undo = _Undo(ex)
        return made

    def run(self, ex) -> None:
        """One step of ``ex``; on any error, or a NaN or inf written into a
        variable, every variable is put back as it was before the step.

        A one-instruction program that adds its input to a weight, w += g:

        >>> from graphnn.runtime import Executor
        >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
        >>> p = Program(buffers={"w": Buffer("w", (2,), "float64", persistent=True),
        ...                      "g": Buffer("g", (2,), "float64", offset=0)},
        ...             instructions=[Instruction("add", ["w", "g"], ["w"], node="w/update")],
        ...             inputs=["g"], outputs=[], batch_size=1, memory=MemoryReport(16, 16, 16))
        >>> w = np.ones(2); ex = Executor(p, {"w": w}); guard = StepGuard()
        >>> ex.views["g"][:] = [1.0, 2.0]; guard.run(ex); w
        array([2., 3.])
        >>> ex.views["g"][:] = [1.0, np.inf]; guard.run(ex)
        Traceback (most recent call last):
        ...
        graphnn.guard.NonFiniteUpdate: node 'w/update' (add) wrote a NaN or inf into 'w'
        >>> w                                     # as before the failed step
        array([2., 3.])
        """
        undo = self._undo(ex)
        undo.save()
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # checked, and named, here
                ex.step()
                bad = undo.culprit()
            if bad is not None:
                ins, name = bad
                raise NonFiniteUpdate(ins.node, ins.kernel, name)
        except BaseException:
            undo.restore()
            raise

    def step(self, model, ex, forward, where: str) -> None:
        """One training step; on a NaN or inf, undone, and a FloatingPointError
        naming the node at fault. ``forward()`` gives an unfused forward program
        for finding the first non-finite node when the loss is NaN or inf.

        A loss that overflows is caught before any update runs, and the unfused
        forward pass names the first node that went non-finite:

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd")
        >>> m.fit(np.full((4, 2), 1e30), np.zeros((4, 1)), verbose=0)
        Traceback (most recent call last):
        ...
        FloatingPointError: training stopped at epoch 1, batch 1: loss is inf; first non-finite value at node 'loss' (mse). The step was undone: weights and optimizer state are as they were before it.
        >>> m._steps                              # the step is not counted either
        0
        """
        try:
            self.run(ex)
        except NonFiniteUpdate as e:
            model._steps -= 1
            raise FloatingPointError(f"training stopped at {where}: {_culprit(ex, e)}. {UNDONE}") from None
        except FloatingPointError as e:             # the loss guard: before the updates
            model._steps -= 1
            raise _forward_error(ex, forward(), where, e) from None


UNDONE = "The step was undone: weights and optimizer state are as they were before it."


def _culprit(ex, e: NonFiniteUpdate) -> str:
    ins = next((i for i in ex.program.instructions if i.node == e.node), None)
    if ins is not None and e.kernel.endswith("_update"):
        return (f"the update of parameter {ins.inputs[0]!r} (node {e.node!r}, {e.kernel}) wrote "
                f"a NaN or inf into {e.variable!r}; lower the learning rate or clip the "
                "gradients (clip_norm)")
    return str(e)


def _forward_error(train_ex, forward_ex, where: str, error) -> FloatingPointError:
    """The error for a step stopped by a NaN or inf loss: the unfused forward
    program re-runs the step's inputs to name the first node that went non-finite."""
    found = forward_ex.first_non_finite({k: train_ex.views[k] for k in forward_ex.program.inputs
                                         if k in train_ex.views})
    culprit = f"first non-finite value at node {found[0]!r} ({found[1]})" if found else \
        "no non-finite value found when re-running the forward pass"
    return FloatingPointError(f"training stopped at {where}: {error}; {culprit}. {UNDONE}")
