"""Optimizers. Each is a description that the compiler turns into update nodes
(the rules are written out in compiler/ops/update.py).

Every optimizer takes ``clip_norm`` (clip all gradients together to that global
norm before updating: each is scaled by min(1, clip_norm / (norm + 1e-6)), as
torch.nn.utils.clip_grad_norm_ does), and ``lr`` may be a number or a schedule
from graphnn.schedules.

The update rules and the defaults are PyTorch's (torch.optim), except RMSprop's
defaults, which are Keras's; docs/conventions.md has the table.

>>> Adam(lr=1e-3).spec()
{'name': 'adam', 'lr': 0.001, 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-08}
"""
from __future__ import annotations

from . import schedules


def _check(name, value, ok, expect):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ValueError(f"{name} must be {expect}, got {value!r}")
    return float(value)


class Optimizer:
    """Base: subclasses describe themselves as plain data with ``spec()``.
    ``lr`` may be a schedule: the optimizer then starts at its step-0 rate.

    >>> from graphnn.schedules import StepDecay
    >>> opt = SGD(lr=StepDecay(0.1, step_size=10), clip_norm=1.0)
    >>> opt.lr, opt.spec()
    (0.1, {'name': 'sgd', 'lr': {'schedule': 'StepDecay', 'initial': 0.1, 'step_size': 10, 'gamma': 0.1}, 'momentum': 0.0, 'nesterov': False, 'clip_norm': 1.0})
    >>> SGD(lr=-1)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a positive number, got -1
    """

    name = ""

    def __init__(self, lr, clip_norm: float | None = None):
        self.schedule = lr if isinstance(lr, schedules.Schedule) else None
        self.lr = float(self.schedule(0)) if self.schedule else _check("lr", lr, lambda v: v > 0,
                                                                          "a positive number")
        self.clip_norm = None if clip_norm is None else _check("clip_norm", clip_norm,
                                                               lambda v: v > 0, "positive")

    def hyper(self) -> dict:
        """The optimizer's own settings (all but lr and clip_norm); none for the base.

        >>> Optimizer(0.1).hyper()
        {}
        """
        return {}

    def spec(self) -> dict:
        """Name, learning rate (or schedule), settings and clip norm as plain data:
        what a saved model stores and ``from_spec`` reads back.

        >>> Adagrad(lr=0.5, clip_norm=2).spec()
        {'name': 'adagrad', 'lr': 0.5, 'eps': 1e-10, 'clip_norm': 2.0}
        """
        spec = {"name": self.name, "lr": self.schedule.spec() if self.schedule else self.lr,
                **self.hyper()}
        if self.clip_norm is not None:
            spec["clip_norm"] = self.clip_norm
        return spec

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and
    (coupled, L2-style) weight decay, in PyTorch's form: g += weight_decay p;
    v = momentum v + g; p -= lr v, or lr (g + momentum v) with Nesterov. (Keras
    keeps v' = momentum v' - lr g, the same steps at a constant rate, and decays
    the weights apart from the gradient.)

    >>> SGD(0.1, momentum=0.9, nesterov=True).spec()["nesterov"]
    True
    """

    name = "sgd"

    def __init__(self, lr=0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.momentum = _check("momentum", momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs a momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check("weight_decay", weight_decay, lambda v: v >= 0, ">= 0")

    def hyper(self):
        """Momentum and Nesterov always; weight decay where set.

        >>> SGD(momentum=0.9).hyper(), SGD(weight_decay=1e-4).hyper()
        ({'momentum': 0.9, 'nesterov': False}, {'momentum': 0.0, 'nesterov': False, 'weight_decay': 0.0001})
        """
        return {"momentum": self.momentum, "nesterov": self.nesterov,
                **({"weight_decay": self.weight_decay} if self.weight_decay else {})}


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction; eps is added to
    sqrt(v_hat). Defaults are PyTorch's (eps 1e-8; Keras's is 1e-7).

    >>> Adam(beta1=0.5).beta1
    0.5
    """

    name = "adam"

    def __init__(self, lr=0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 clip_norm=None):
        super().__init__(lr, clip_norm)
        self.beta1 = _check("beta1", beta1, lambda v: 0 <= v < 1, "in [0, 1)")
        self.beta2 = _check("beta2", beta2, lambda v: 0 <= v < 1, "in [0, 1)")
        self.eps = _check("eps", eps, lambda v: v > 0, "positive")

    def hyper(self):
        """The two decay rates and eps.

        >>> Adam(beta2=0.99).hyper()
        {'beta1': 0.9, 'beta2': 0.99, 'eps': 1e-08}
        """
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019): p *= 1 - lr
    weight_decay before the Adam step, as torch.optim.AdamW (and its default 0.01).

    >>> AdamW(weight_decay=0.1).spec()["weight_decay"]
    0.1
    """

    name = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay: float = 0.01,
                 clip_norm=None):
        super().__init__(lr, beta1, beta2, eps, clip_norm)
        self.weight_decay = _check("weight_decay", weight_decay, lambda v: v >= 0, ">= 0")

    def hyper(self):
        """Adam's settings and the (decoupled) weight decay.

        >>> AdamW().hyper()
        {'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-08, 'weight_decay': 0.01}
        """
        return {**super().hyper(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012): a running mean of squared gradients scales the step.

    v = rho v + (1 - rho) g^2; the step is lr g / (sqrt(v) + eps). ``centered``
    subtracts the square of a running mean of the gradients from v (an estimate
    of their variance); ``momentum`` > 0 keeps a buffer b = momentum b + g / (...)
    and steps by lr b. The update is PyTorch's (eps added after the square root);
    the defaults are Keras's (lr 1e-3, rho 0.9, eps 1e-7), where PyTorch's are
    lr 1e-2, alpha 0.99, eps 1e-8.

    >>> RMSprop(momentum=0.9, centered=True).spec()
    {'name': 'rmsprop', 'lr': 0.001, 'rho': 0.9, 'eps': 1e-07, 'momentum': 0.9, 'centered': True}
    """

    name = "rmsprop"

    def __init__(self, lr=0.001, rho: float = 0.9, eps: float = 1e-7, momentum: float = 0.0,
                 centered: bool = False, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.rho = _check("rho", rho, lambda v: 0 <= v < 1, "in [0, 1)")
        self.eps = _check("eps", eps, lambda v: v > 0, "positive")
        self.momentum = _check("momentum", momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        if not isinstance(centered, bool):
            raise ValueError(f"centered must be True or False, got {centered!r}")
        self.centered = centered

    def hyper(self):
        """rho and eps; momentum and centered only where they differ from the defaults.

        >>> RMSprop().hyper(), RMSprop(momentum=0.5).hyper()
        ({'rho': 0.9, 'eps': 1e-07}, {'rho': 0.9, 'eps': 1e-07, 'momentum': 0.5})
        """
        return {"rho": self.rho, "eps": self.eps,
                **({"momentum": self.momentum} if self.momentum else {}),
                **({"centered": True} if self.centered else {})}


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): the step shrinks with the summed squared gradients,
    lr g / (sqrt(sum) + eps). PyTorch's defaults (lr 0.01, eps 1e-10, the sum
    starting at 0; Keras starts it at 0.1 with lr 1e-3).

    >>> Adagrad().spec()
    {'name': 'adagrad', 'lr': 0.01, 'eps': 1e-10}
    """

    name = "adagrad"

    def __init__(self, lr=0.01, eps: float = 1e-10, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.eps = _check("eps", eps, lambda v: v > 0, "positive")

    def hyper(self):
        """eps alone.

        >>> Adagrad(eps=1e-8).hyper()
        {'eps': 1e-08}
        """
        return {"eps": self.eps}


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): steps sized by running means of squared gradients
    and squared updates; ``lr`` scales the result (1.0 is the paper's rule).
    PyTorch's defaults (lr 1.0, rho 0.9, eps 1e-6; Keras's are 1e-3, 0.95, 1e-7).

    >>> Adadelta().spec()
    {'name': 'adadelta', 'lr': 1.0, 'rho': 0.9, 'eps': 1e-06}
    """

    name = "adadelta"

    def __init__(self, lr=1.0, rho: float = 0.9, eps: float = 1e-6, clip_norm=None):
        super().__init__(lr, clip_norm)
        self.rho = _check("rho", rho, lambda v: 0 <= v < 1, "in [0, 1)")
        self.eps = _check("eps", eps, lambda v: v > 0, "positive")

    def hyper(self):
        """rho and eps.

        >>> Adadelta(rho=0.95).hyper()
        {'rho': 0.95, 'eps': 1e-06}
        """
        return {"rho": self.rho, "eps": self.eps}


OPTIMIZERS = {c.name: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta)}


def from_spec(spec: dict) -> Optimizer:
    """The optimizer a ``spec()`` describes.

    >>> from_spec(SGD(0.1, momentum=0.5).spec())
    SGD(lr=0.1, momentum=0.5, nesterov=False)
    """
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; use one of {sorted(OPTIMIZERS)}")
    spec["lr"] = schedules.from_spec(spec.get("lr", OPTIMIZERS[name]().lr))
    return OPTIMIZERS[name](**spec)


def get(optimizer) -> Optimizer:
    """An Optimizer from an instance (returned as it is) or a name ('sgd',
    'adam', ..., any case) with its defaults.

    >>> get("Adam"), get(SGD(0.5)).lr
    (Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08), 0.5)
    >>> get("lbfgs")
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'lbfgs'; use one of ['adadelta', 'adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'] or an instance
    """
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZERS)} or an instance")
