"""What a kernel needs, declared on the kernel itself.

A kernel is a factory ``kernel(ins, outs, **scratch, **attrs) -> run``: it binds
its operand and result arrays once and returns the function a step calls.
``@kernel(...)`` declares, beside its code,

- ``operands``: how many inputs it reads (an int, or ``None`` for one or more);
- ``scratch``: the temporary buffers it writes, each by name, with the shape
  (``"out"``: the result's; an int: that operand's) and dtype (``"same"``: the
  result's; or a dtype name) it needs. The compiler plans them in the arena
  from this declaration; the executor hands each one to the kernel as the
  keyword argument of that name, after the results.

The declaration is checked against the function when the module is imported:
every scratch name must be a keyword-only parameter of the kernel, and the
kernel may take no other keyword-only parameter.

>>> import numpy as np
>>> @kernel(operands=1, scratch={"t": ("out", "same")})
... def double(ins, outs, *, t):
...     (x,), (y,) = ins, outs
...     def run():
...         np.add(x, x, out=t)
...         np.copyto(y, t)
...     return run
>>> double.scratch_buffers([(2,)], (2,), "float64")
[((2,), 'float64')]
>>> x, y = np.array([1.0, 2.0]), np.empty(2)
>>> bind(double, [x], [y, np.empty(2)], {})(); y
array([2., 4.])
"""
from __future__ import annotations

import inspect

KERNELS: dict = {}       # every declared kernel, by name (the runtime's table)


def kernel(operands: int | None, scratch: dict | None = None, name: str | None = None,
           register: bool = True, batched: tuple | None = None, epilogue: tuple | None = None,
           flat: bool = False):
    """Declare a kernel's operands and scratch buffers, and add it to KERNELS
    (under ``name``, by default the function's; not at all with ``register=False``,
    for a kernel that a wrapper registers).

    How the kernel pool (runtime/threads.py) may cut a call: ``batched``, the
    operands whose axis 0 is the batch (results and scratch always are), so that
    the call may run as slices of its batch; ``epilogue``, the same when the kernel
    follows a GEMM inside a fused kernel; ``flat``, element by element over its
    arrays, so that a large call may run as flat ranges (an optimizer update).

    >>> import numpy as np
    >>> @kernel(operands=2, register=False)
    ... def hypot(ins, outs):
    ...     (a, b), (y,) = ins, outs
    ...     return lambda: np.hypot(a, b, out=y)
    >>> y = np.empty(1); _ = hypot([np.array([3.0]), np.array([4.0])], [y])(); y
    array([5.])
    >>> hypot.operands, hypot.scratch, hypot.batched, "hypot" in KERNELS
    (2, {}, None, False)
    >>> @kernel(operands=1, scratch={"t": ("out", "same")}, register=False)
    ... def wrong(ins, outs, *, s): ...
    Traceback (most recent call last):
    ...
    TypeError: kernel wrong: declares scratch ['t'] but takes keyword-only parameters ['s'] (they must be the same, in order)
    """
    scratch = dict(scratch or {})

    def declare(fn):
        own = [p.name for p in inspect.signature(fn).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
        if own != list(scratch):
            raise TypeError(f"kernel {fn.__name__}: declares scratch {list(scratch)} but takes "
                            f"keyword-only parameters {own} (they must be the same, in order)")
        for key, (shape, dtype) in scratch.items():
            if not (shape == "out" or (isinstance(shape, int) and shape >= 0)) or not isinstance(dtype, str):
                raise TypeError(f"kernel {fn.__name__}: scratch {key!r} needs a shape ('out' or an "
                                f"operand index) and a dtype ('same' or a name), got {(shape, dtype)}")
        return _declared(fn, operands, scratch, (name or fn.__name__) if register else None,
                         batched, epilogue, flat)
    return declare


def _declared(fn, operands, scratch, name, batched=None, epilogue=None, flat=False):
    fn.operands = operands
    fn.scratch = scratch
    fn.batched, fn.epilogue, fn.flat = batched, epilogue, flat
    fn.scratch_buffers = lambda in_shapes, out_shape, dtype: [
        (out_shape if shape == "out" else in_shapes[shape], dtype if kind == "same" else kind)
        for shape, kind in scratch.values()]
    if name is not None:
        if name in KERNELS:
            raise KeyError(f"kernel {name!r} is declared twice")
        KERNELS[name] = fn
    return fn


def like(inner, name: str):
    """Register ``inner``'s declaration for a wrapper of it (the weighted losses).

    >>> KERNELS["mse"].operands, KERNELS["mse"].scratch      # the wrapper, as the inner kernel declared
    (None, {'d': (0, 'same')})
    >>> KERNELS["mse"].scratch_buffers([(4, 3), (4, 3)], (), "float32")
    [((4, 3), 'float32')]
    """
    def wrap(fn):
        fn.__name__ = name
        return _declared(fn, inner.operands, inner.scratch, name, inner.batched, inner.epilogue, inner.flat)
    return wrap


def bind(factory, ins: list, outs: list, attrs: dict):
    """Call a kernel factory: ``outs`` holds its results, then its scratch
    buffers in declaration order, which it receives by name.

    >>> import numpy as np
    >>> p, t, loss, scratch = np.array([1.0, 3.0]), np.array([0.0, 1.0]), np.empty(()), np.empty(2)
    >>> bind(KERNELS["mse"], [p, t], [loss, scratch], {"reduction": "sum"})(); float(loss)   # 1 + 4
    5.0
    """
    k = len(factory.scratch)
    results, extra = (outs[:-k], outs[-k:]) if k else (outs, [])
    return factory(ins, results, **dict(zip(factory.scratch, extra)), **attrs)
