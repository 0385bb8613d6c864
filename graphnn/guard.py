"""Training steps that never leave a NaN or inf in the weights.

A step can go non-finite in two places: the forward pass (the loss guard of
the program stops it before the updates) or an update itself (a learning rate
so large that ``p - lr * g`` overflows, say), which no loss check can see
before it is written. ``StepGuard`` copies the variables (weights and optimizer
state) before each step, checks them after it, and on a NaN or inf puts the
copy back, so the model is exactly as it was before the step; then it replays
the step one instruction at a time to name the node that produced the value,
and undoes that replay too.

>>> import numpy as np
>>> variables = {"w": np.ones(2)}
>>> guard = StepGuard(variables)
>>> guard.save(); variables["w"][0] = np.inf
>>> guard.bad_variable()
'w'
>>> guard.restore(); variables["w"]
array([1., 1.])
"""
from __future__ import annotations

import numpy as np


class StepGuard:
    """The variables as they were before the running step, and the check after it."""

    def __init__(self, variables: dict[str, np.ndarray]):
        self.variables = variables
        self.saved: dict[str, np.ndarray] = {}

    def save(self) -> None:
        """Remember every variable's current value (copied into buffers kept
        from step to step, so a step allocates nothing)."""
        for name, value in self.variables.items():
            kept = self.saved.get(name)
            if kept is None or kept.shape != value.shape or kept.dtype != value.dtype:
                self.saved[name] = value.copy()
            else:
                np.copyto(kept, value)

    def restore(self) -> None:
        """Put back what ``save`` remembered."""
        for name, kept in self.saved.items():
            if name in self.variables:
                np.copyto(self.variables[name], kept)

    def bad_variable(self) -> str | None:
        """The first variable holding a NaN or inf, or None."""
        with np.errstate(over="ignore", invalid="ignore"):
            for name, value in self.variables.items():
                if value.dtype.kind != "f":
                    continue
                # A sum is one pass with no temporary; only if it is not finite (NaN,
                # inf, or finite values summing past the float range) look closer.
                if not np.isfinite(np.add.reduce(value, axis=None)) and not np.isfinite(value).all():
                    return name
        return None

    def step(self, model, ex, forward, where: str) -> None:
        """Run one training step of executor ``ex``; on a NaN or inf, undo it and
        raise FloatingPointError naming the node at fault. ``forward()`` gives
        an unfused forward program for diagnosing a non-finite loss."""
        self.save()
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # caught below, and named
                ex.step()
        except FloatingPointError as e:             # the loss guard: before the updates
            self.restore()
            model._steps -= 1
            raise _forward_error(ex, forward(), where, e) from None
        bad = self.bad_variable()
        if bad is None:
            return
        self.restore()
        found = ex.first_non_finite({k: ex.views[k] for k in ex.program.inputs})
        self.restore()                              # the replay ran updates too
        model._steps -= 1
        raise FloatingPointError(f"training stopped at {where}: {_culprit(ex, found, bad)}. The "
                                 "step was undone: weights and optimizer state are as they were "
                                 "before it.")


def _culprit(ex, found, bad: str) -> str:
    if found is None:
        return f"variable {bad!r} became NaN or inf"
    node, kernel = found
    ins = next((i for i in ex.program.instructions if i.node == node), None)
    if ins is not None and kernel.endswith("_update"):
        return (f"the update of parameter {ins.inputs[0]!r} (node {node!r}, {kernel}) produced "
                f"a NaN or inf; lower the learning rate or clip the gradients (clip_norm)")
    return f"node {node!r} ({kernel}) produced a NaN or inf, reaching variable {bad!r}"


def _forward_error(train_ex, forward_ex, where: str, error) -> FloatingPointError:
    """The error for a step stopped by a NaN or inf loss: the unfused forward
    program re-runs the step's inputs to name the first node that went non-finite."""
    found = forward_ex.first_non_finite({k: train_ex.views[k] for k in forward_ex.program.inputs
                                         if k in train_ex.views})
    culprit = f"first non-finite value at node {found[0]!r} ({found[1]})" if found else \
        "no non-finite value found when re-running the forward pass"
    return FloatingPointError(f"training stopped at {where}: {error}; {culprit}. The step was "
                              "undone: weights and optimizer state are as they were before it.")
