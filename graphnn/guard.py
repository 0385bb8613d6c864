"""Training steps that never leave a NaN or inf in the weights.

A step can go non-finite in two places: the forward pass (the loss guard of
the program stops it before the updates) or an update itself (a learning rate
so large that ``p - lr * g`` overflows, say), which no loss check can see
before it is written. ``StepGuard`` wraps every instruction of a training
program that writes variables (weights, optimizer state, running averages):
it copies what the instruction is about to overwrite, runs it, and checks what
it wrote while it is still in cache. On a NaN or inf it puts back everything
the step has written so far, so the model is exactly as it was before the
step, and the error names the update at fault.

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

import numpy as np

from .runtime.executor import UFUNC_BUFFER


class NonFiniteUpdate(FloatingPointError):
    """An instruction wrote a NaN or inf into a variable (and was undone)."""

    def __init__(self, node: str, kernel: str, variable: str):
        self.node, self.kernel, self.variable = node, kernel, variable
        super().__init__(f"node {node!r} ({kernel}) wrote a NaN or inf into {variable!r}")


def finite(a: np.ndarray) -> bool:
    """Whether ``a`` holds no NaN or inf: one BLAS pass (a sum of squares is NaN
    or inf if any element is), a closer look only when it overflows.

    >>> finite(np.array([1.0, 2.0])), finite(np.array([1.0, np.nan])), finite(np.array([1e300]))
    (True, False, True)
    """
    if a.dtype.kind != "f":
        return True
    return bool(np.isfinite(np.vdot(a, a))) or bool(np.isfinite(a).all())


class StepGuard:
    """Undo for the instructions of a step that write variables."""

    def __init__(self):
        # The guard finds what each executor writes from its program.
        self.saved: dict[str, np.ndarray] = {}     # variable -> its value before the step
        self.written: list[str] = []               # variables this step has written, in order
        self._seen: set[str] = set()

    def _wrap(self, ex, ins, call):
        names = [o for o in ins.outputs if ex.program.buffers[o].persistent]
        views = [ex.views[o] for o in names]
        for name, view in zip(names, views):
            if name not in self.saved or self.saved[name].shape != view.shape:
                self.saved[name] = np.empty_like(view)
        saved = [self.saved[n] for n in names]

        def guarded():
            for name, view, keep in zip(names, views, saved):
                if name not in self._seen:             # the first write of this step
                    np.copyto(keep, view)
                    self._seen.add(name)
                    self.written.append(name)
            call()
            for name, view in zip(names, views):
                if not finite(view):
                    raise NonFiniteUpdate(ins.node, ins.kernel, name)
        return guarded

    def calls(self, ex) -> list:
        """The instructions of executor ``ex``, those that write variables wrapped
        (made once per executor; ``ex.calls`` itself is left as it is)."""
        made = getattr(ex, "_guarded_calls", None)
        if made is None or made[0] is not self:
            made = (self, [self._wrap(ex, ins, call) if any(ex.program.buffers[o].persistent
                                                            for o in ins.outputs) else call
                           for ins, call in zip(ex.program.instructions, ex.calls)])
            ex._guarded_calls = made
        return made[1]

    def run(self, ex) -> None:
        """One step of ``ex``; on any error, what it wrote to variables is put back."""
        calls = self.calls(ex)
        self.written, self._seen = [], set()
        previous = np.setbufsize(UFUNC_BUFFER)          # as Executor.step runs
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # checked, and named, here
                for call in calls:
                    call()
        except BaseException:
            for name in self.written:
                np.copyto(ex.views[name], self.saved[name])
            raise
        finally:
            np.setbufsize(previous)

    def step(self, model, ex, forward, where: str) -> None:
        """One training step; on a NaN or inf, undone, and a FloatingPointError
        naming the node at fault. ``forward()`` gives an unfused forward program
        for finding the first non-finite node when the loss is NaN or inf."""
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
