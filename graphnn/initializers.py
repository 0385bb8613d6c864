"""Parameter initializers, by name, each drawing from a seeded generator.

Fan-in and fan-out follow the usual conventions: a dense weight is
(in, out); a convolution kernel is (out_channels, in_channels, *kernel).

>>> import numpy as np
>>> w = initialize("glorot_uniform", (64, 10), "float32", np.random.default_rng(0))
>>> bool(np.abs(w).max() <= np.sqrt(6 / 74)), w.dtype
(True, dtype('float32'))
"""
from __future__ import annotations

from math import prod, sqrt

import numpy as np


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape.

    >>> fans((784, 128)), fans((16, 3, 5, 5))
    ((784, 128), (75, 400))
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _uniform(limit):
    return lambda rng, shape: rng.uniform(-limit, limit, shape)


def _normal(std):
    return lambda rng, shape: rng.normal(0.0, std, shape)


def _scaled(kind, scale, mode):
    def draw(rng, shape):
        fan_in, fan_out = fans(shape)
        n = {"in": fan_in, "avg": (fan_in + fan_out) / 2}[mode]
        if kind == "uniform":
            return _uniform(sqrt(3.0 * scale / n))(rng, shape)
        return _normal(sqrt(scale / n))(rng, shape)
    return draw


def _orthogonal(rng, shape):
    """A (semi-)orthogonal matrix from the QR of a Gaussian one (Saxe et al., 2014);
    kernels of higher rank are flattened to (shape[0], rest)."""
    rows, cols = shape[0], int(prod(shape[1:])) if len(shape) > 1 else 1
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))                 # a unique, uniformly distributed Q
    q = q if rows >= cols else q.T
    return q[:rows, :cols].reshape(shape)


INITIALIZERS = {
    "zeros": lambda rng, shape: np.zeros(shape),
    "ones": lambda rng, shape: np.ones(shape),
    "uniform": _uniform(0.05),
    "normal": _normal(0.05),
    "glorot_uniform": _scaled("uniform", 1.0, "avg"),   # Glorot and Bengio, 2010
    "glorot_normal": _scaled("normal", 1.0, "avg"),
    "he_uniform": _scaled("uniform", 2.0, "in"),         # He et al., 2015
    "he_normal": _scaled("normal", 2.0, "in"),
    "lecun_uniform": _scaled("uniform", 1.0, "in"),      # LeCun et al., 1998
    "lecun_normal": _scaled("normal", 1.0, "in"),
    "orthogonal": _orthogonal,
}


def check_initializer(name) -> None:
    """Raise ValueError unless ``name`` names an initializer.

    >>> check_initializer("he_normal"); check_initializer("constant:0.1")
    >>> check_initializer("hee_normal")
    Traceback (most recent call last):
    ...
    ValueError: unknown initializer 'hee_normal'; expected auto, constant:NUMBER or one of ['glorot_normal', 'glorot_uniform', 'he_normal', 'he_uniform', 'lecun_normal', 'lecun_uniform', 'normal', 'ones', 'orthogonal', 'uniform', 'zeros']
    """
    if isinstance(name, str) and (name == "auto" or name in INITIALIZERS):
        return
    if isinstance(name, str) and name.startswith("constant:"):
        try:
            float(name.split(":", 1)[1])
            return
        except ValueError:
            raise ValueError(f"initializer {name!r}: expected constant:NUMBER") from None
    raise ValueError(f"unknown initializer {name!r}; expected auto, constant:NUMBER or one of "
                     f"{sorted(INITIALIZERS)}")


def initialize(name: str, shape: tuple, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """A new array for a parameter. ``auto`` is glorot_uniform for matrices and
    kernels and zeros for vectors (biases); ``constant:V`` fills with V.

    >>> initialize("constant:0.5", (2,), "float32", np.random.default_rng(0))
    array([0.5, 0.5], dtype=float32)
    """
    if name == "auto":
        name = "glorot_uniform" if len(shape) >= 2 else "zeros"
    if name.startswith("constant:"):            # "constant:0.5"
        try:
            return np.full(shape, float(name.split(":", 1)[1]), dtype=dtype)
        except ValueError:
            raise ValueError(f"initializer {name!r}: expected constant:NUMBER") from None
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}")
    return np.asarray(INITIALIZERS[name](rng, tuple(shape)), dtype=dtype)
