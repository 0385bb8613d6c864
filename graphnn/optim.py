"""Optimizers. Each is a description that the compiler turns into update nodes.

>>> Adam(lr=1e-3).spec()
{'name': 'adam', 'lr': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-08}
"""
from __future__ import annotations


def _check(name, value, ok, expect):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ValueError(f"{name} must be {expect}, got {value!r}")


class Optimizer:
    """Base: subclasses describe themselves as plain data with ``spec()``."""

    name = ""

    def __init__(self, lr: float):
        _check("lr", lr, lambda v: v > 0, "a positive number")
        self.lr = float(lr)

    def spec(self) -> dict:
        return {"name": self.name, "lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    >>> SGD(0.1, momentum=0.9, nesterov=True).spec()["nesterov"]
    True
    """

    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(lr)
        _check("momentum", momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def spec(self) -> dict:
        return {**super().spec(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    >>> Adam(beta1=0.5).beta1
    0.5
    """

    name = "adam"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8):
        super().__init__(lr)
        _check("beta1", beta1, lambda v: 0 <= v < 1, "in [0, 1)")
        _check("beta2", beta2, lambda v: 0 <= v < 1, "in [0, 1)")
        _check("eps", eps, lambda v: v > 0, "positive")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def spec(self) -> dict:
        return {**super().spec(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


def from_spec(spec: dict) -> Optimizer:
    """The optimizer a ``spec()`` describes.

    >>> from_spec(SGD(0.1, momentum=0.5).spec())
    SGD(lr=0.1, momentum=0.5, nesterov=False)
    """
    table = {"sgd": SGD, "adam": Adam}
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in table:
        raise ValueError(f"unknown optimizer {name!r}; use one of {sorted(table)}")
    return table[name](**spec)


def get(optimizer) -> Optimizer:
    """An Optimizer from an instance or a name ('sgd', 'adam') with defaults."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    table = {"sgd": SGD, "adam": Adam}
    if isinstance(optimizer, str) and optimizer.lower() in table:
        return table[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(table)} or an instance")
