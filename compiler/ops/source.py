"""Source ops: values that enter the graph rather than being computed in it.

``input`` is fed at every step (its first dimension may be the batch symbol),
``param`` is a trainable weight, ``state`` a persistent non-trained value
(optimizer slots, the learning rate), ``constant`` a literal.

>>> from graphnn.compiler.ops import OPS
>>> OPS["input"].infer([], [], {"shape": (None, 4), "dtype": "float32"})
((None, 4), 'float32')
"""
from __future__ import annotations

import numpy as np

from ..errors import OpShapeError
from .base import Attr, OpDef, register

DTYPES = ("float32", "float64", "int32", "int64", "int16", "int8", "uint64", "uint32", "uint16", "uint8")


def _is_shape(batch_ok: bool):
    def check(v):
        if not isinstance(v, (tuple, list)):
            return False
        for i, d in enumerate(v):
            if d is None:
                if not (batch_ok and i == 0):
                    return False
            elif not (isinstance(d, int) and not isinstance(d, bool) and d > 0):
                return False
        return True
    return check


def _declared(shapes, dtypes, attrs):
    return tuple(attrs["shape"]), attrs["dtype"]


def _constant(shapes, dtypes, attrs):
    value = np.asarray(attrs["value"])
    if tuple(value.shape) != tuple(attrs["shape"]):
        raise OpShapeError(f"value has shape {value.shape}, declared shape is {tuple(attrs['shape'])}")
    return tuple(attrs["shape"]), attrs["dtype"]


_dtype = Attr("float32", lambda v: v in DTYPES, f"one of {DTYPES}")

register(OpDef(
    "input", 0, _declared, kind="source",
    attrs={"shape": Attr(check=_is_shape(True), expect="a tuple of positive ints, "
                         "None allowed first for the batch"), "dtype": _dtype},
    doc="A value fed at every step."))

register(OpDef(
    "param", 0, _declared, kind="source", persistent=True,
    attrs={"shape": Attr(check=_is_shape(False), expect="a tuple of positive ints"),
           "dtype": _dtype,
           "init": Attr("auto", lambda v: isinstance(v, str), "an initializer name"),
           "trainable": Attr(True, lambda v: isinstance(v, bool), "True or False")},
    doc="A trained weight, kept between steps."))

register(OpDef(
    "state", 0, _declared, kind="source", persistent=True,
    attrs={"shape": Attr(check=_is_shape(False), expect="a tuple of positive ints"),
           "dtype": _dtype,
           "init": Attr(0.0, lambda v: isinstance(v, (int, float)), "a number to fill with")},
    doc="A persistent value that is not trained: optimizer slots, the learning rate."))

register(OpDef(
    "constant", 0, _constant, kind="source", persistent=True,
    attrs={"value": Attr(check=lambda v: np.asarray(v).dtype.kind in "fiub",
                         expect="a number or nested list of numbers"),
           "shape": Attr((), _is_shape(False), "a tuple of positive ints"),
           "dtype": _dtype},
    doc="A literal value."))
