"""Learning-rate schedules: the rate as a function of the step (0, 1, 2, ...).

Pass one as an optimizer's ``lr``; ``fit`` sets the compiled learning rate
before every step, so nothing is recompiled.

>>> [round(StepDecay(0.1, step_size=2, gamma=0.5)(s), 4) for s in range(5)]
[0.1, 0.1, 0.05, 0.05, 0.025]
>>> round(WarmUp(CosineDecay(1.0, decay_steps=10), warmup_steps=4)(1), 3)
0.5
"""
from __future__ import annotations

import math


class Schedule:
    """Base class: ``schedule(step) -> learning rate``; ``spec()`` is plain data.
    A subclass keeps its settings as attributes and defines ``__call__``:

    >>> class Halving(Schedule):
    ...     def __init__(self, initial): self.initial = initial
    ...     def __call__(self, step): return self.initial / 2 ** step
    >>> h = Halving(1.0); [h(s) for s in range(4)], h
    ([1.0, 0.5, 0.25, 0.125], Halving(initial=1.0))
    """

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def spec(self) -> dict:
        """The class name and settings as plain data (a wrapped schedule as its spec).

        >>> WarmUp(StepDecay(0.1, step_size=2), warmup_steps=3).spec()
        {'schedule': 'WarmUp', 'after': {'schedule': 'StepDecay', 'initial': 0.1, 'step_size': 2, 'gamma': 0.1}, 'warmup_steps': 3}
        """
        return {"schedule": type(self).__name__, **{k: (v.spec() if isinstance(v, Schedule) else v)
                                                   for k, v in vars(self).items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


class StepDecay(Schedule):
    """initial * gamma ** (step // step_size): the rate falls by ``gamma`` every
    ``step_size`` steps.

    >>> [StepDecay(1.0, step_size=2, gamma=0.5)(s) for s in range(6)]
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, initial: float, step_size: int, gamma: float = 0.1):
        self.initial, self.step_size, self.gamma = _positive("initial", initial), \
            int(_positive("step_size", step_size)), _positive("gamma", gamma)

    def __call__(self, step):
        return self.initial * self.gamma ** (step // self.step_size)


class ExponentialDecay(Schedule):
    """initial * decay_rate ** (step / decay_steps): smooth, multiplied by
    ``decay_rate`` every ``decay_steps`` steps.

    >>> [round(ExponentialDecay(1.0, 0.5, decay_steps=2)(s), 4) for s in range(5)]
    [1.0, 0.7071, 0.5, 0.3536, 0.25]
    """

    def __init__(self, initial: float, decay_rate: float, decay_steps: int = 1):
        self.initial, self.decay_rate = _positive("initial", initial), _positive("decay_rate", decay_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)

    def __call__(self, step):
        return self.initial * self.decay_rate ** (step / self.decay_steps)


class CosineDecay(Schedule):
    """From initial down to initial * alpha along half a cosine over decay_steps,
    then constant (Loshchilov and Hutter's SGDR without restarts).

    >>> [round(CosineDecay(1.0, decay_steps=4, alpha=0.1)(s), 4) for s in range(6)]
    [1.0, 0.8682, 0.55, 0.2318, 0.1, 0.1]
    """

    def __init__(self, initial: float, decay_steps: int, alpha: float = 0.0):
        self.initial, self.decay_steps = _positive("initial", initial), _positive("decay_steps", decay_steps)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.alpha = alpha

    def __call__(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        return self.initial * (self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * t)))


class WarmUp(Schedule):
    """A linear ramp from 0 over warmup_steps to ``after`` (a rate or a schedule,
    which then starts at its own step 0).

    >>> [WarmUp(0.1, warmup_steps=4)(s) for s in (0, 1, 3, 4, 100)]
    [0.025, 0.05, 0.1, 0.1, 0.1]
    >>> [WarmUp(StepDecay(0.1, step_size=2, gamma=0.5), 2)(s) for s in range(6)]
    [0.05, 0.1, 0.1, 0.1, 0.05, 0.05]
    """

    def __init__(self, after, warmup_steps: int):
        self.after, self.warmup_steps = after, int(_positive("warmup_steps", warmup_steps))

    def __call__(self, step):
        target = self.after(0) if isinstance(self.after, Schedule) else self.after
        if step < self.warmup_steps:
            return target * (step + 1) / self.warmup_steps
        rest = step - self.warmup_steps
        return self.after(rest) if isinstance(self.after, Schedule) else self.after


def from_spec(spec):
    """A schedule from its ``spec()`` (a number stays a number).

    >>> from_spec({"schedule": "StepDecay", "initial": 0.1, "step_size": 5}), from_spec(0.01)
    (StepDecay(initial=0.1, step_size=5, gamma=0.1), 0.01)
    >>> w = WarmUp(CosineDecay(1.0, 10), 5); from_spec(w.spec())(7) == w(7)
    True
    """
    if not isinstance(spec, dict):
        return spec
    spec = dict(spec)
    kind = {c.__name__: c for c in (StepDecay, ExponentialDecay, CosineDecay, WarmUp)}.get(
        spec.pop("schedule", None))
    if kind is None:
        raise ValueError(f"unknown learning-rate schedule in {spec!r}")
    return kind(**{k: from_spec(v) for k, v in spec.items()})
