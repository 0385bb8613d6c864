"""The op record: one definition per op, and the table that holds them all.

An op says how to check its attributes, how its output shape and dtype follow
from its inputs (``infer``), how gradients flow back through it (``vjp``), how
it fuses (``fusion``, TVM's kinds), what it costs (``flops``) and which runtime
kernel runs it (``kernel``).

>>> relu = OPS["relu"]
>>> relu.infer([(None, 3)], ["float32"], {})
((None, 3), 'float32')
>>> relu.kernel, relu.fusion
('relu', 'elementwise')
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from typing import Any

from ...runtime.kernels import KERNELS
from ..errors import OpShapeError

Shape = tuple  # of int, with None standing for the symbolic batch dimension

REQUIRED = object()

# TVM's fusion kinds, from most to least fusable.
FUSION_KINDS = ("elementwise", "broadcast", "injective", "reduce",
                "out-elementwise-fusable", "opaque")


@dataclass(frozen=True)
class Attr:
    """One op attribute: its default (or REQUIRED) and a check of its value.

    >>> alpha = OPS["leaky_relu"].attrs["alpha"]
    >>> alpha.default, alpha.check(0.2), alpha.check(1.5), alpha.expect
    (0.01, True, False, 'a slope in [0, 1)')
    >>> Attr().default is REQUIRED
    True
    """

    default: Any = REQUIRED
    check: Callable[[Any], bool] = lambda v: True
    expect: str = "a valid value"   # says what `check` accepts, for error messages


_AUTO = "auto"     # OpDef.kernel's default: the op's own name, or None where no kernel runs

ROLES = ("activation", "loss", "penalty")   # what an op is to the user side


@dataclass
class OpDef:
    """Everything the compiler knows about one op.

    The hooks take the pass's rewrite toolkit (``compiler.rewrite.Rewriter``)
    and the node, its operands and its attributes:

    - ``lower(rw, node, ins, attrs)`` rewrites the node into ops that have a
      runtime kernel (a convolution into im2col + GEMM); ``lowers(attrs)``, when
      given, says whether a node needs it at all (the lower pass skips the
      graph copy when none does);
    - ``lower_fused(rw, node, ins, attrs)``, on an anchor op without a kernel,
      lowers a ``fused`` node anchored on it (so the fuse pass may use it);
    - ``inference(rw, node, ins, attrs)`` rewrites the node for evaluation and
      prediction programs (dropout's mask and noise go, batch norm reads its
      running averages);
    - ``fold_axes(attrs, rank)``, on a layer op whose operand 1 is a weight:
      (the output's channel axis, the weight's channel axis) when a per-channel
      scale of the output can be folded into the weight, else None.

    >>> op = OpDef("double", 1, like_input(0), fusion="elementwise", flops=elementwise_flops(1),
    ...            doc="2 x")           # a record (not registered): its kernel is named after it
    >>> op.kernel, op.kind, op.infer([(None, 3)], ["float32"], {})
    ('double', 'compute', ((None, 3), 'float32'))
    >>> OpDef("x", 0, None, kind="source").kernel is None      # a source runs no kernel
    True
    """

    name: str
    arity: int | None                    # None: one or more operands
    infer: Callable[[list, list, dict], tuple]
    kernel: str | None = _AUTO           # the op's name, or None (sources, views, lowered ops)
    fusion: str = "opaque"
    vjp: Callable | None = None          # (ctx, node, dy) -> [grad node or None per input]
    attrs: dict[str, Attr] = field(default_factory=dict)
    flops: Callable[[list, Shape, dict], int] = lambda ins, out, a: 0
    kind: str = "compute"    # source | compute | gradient | loss | update | lowered (made by passes)
    mutates: tuple[int, ...] = ()        # operand ports an update op writes in place
    inplace: bool = False                # the kernel may write its result over operand 0
    view: bool = False                   # the result is operand 0's bytes, reshaped (no kernel)
    # A further result of operand 0's instruction (no kernel): the ops that write it,
    # each needing exactly one such node; compiler/validate.py checks both.
    extra_output: tuple[str, ...] = ()
    scratch: Callable | None = None      # a composite's scratch (fused); else the kernel declares it
    lower: Callable | None = None        # see above
    lowers: Callable | None = None       # (attrs) -> whether a node needs `lower` (default: yes)
    lower_fused: Callable | None = None
    inference: Callable | None = None
    fold_axes: Callable | None = None
    persistent: bool = False             # a source whose value lives between steps (weights, state)
    stateful: bool = False               # the kernel keeps state between steps (a random generator)
    loops: str | None = None             # the kernel loops over a sequence's steps: how the views say so
    role: str | None = None              # activation | loss | penalty: named on the user side
    user_names: tuple[str, ...] | None = None   # names the user side accepts (default: the op's)
    slots: tuple[str, ...] = ()          # an update's state operands (ports 3, 4, ...), by name
    optimizers: tuple[str, ...] = ()     # optimizer names whose step this update op is
    doc: str = ""

    def __post_init__(self):
        if self.kernel == _AUTO:
            none = self.kind == "source" or self.view or self.extra_output or self.lower is not None
            self.kernel = None if none else self.name
        if self.user_names is None:
            self.user_names = (self.name,) if self.role else ()

    def scratch_buffers(self, in_shapes, out_shape, attrs, dtype) -> list:
        """Temporary buffers the kernel needs for one call, planned in the arena:
        [(shape, dtype)] as the runtime kernel declares them (runtime.kernels.base).

        >>> OPS["relu"].scratch_buffers([(4, 3)], (4, 3), {}, "float32")
        []
        >>> OPS["softmax_cross_entropy"].scratch_buffers([(4, 10), (4,)], (), {}, "float32")
        [((4, 10), 'float32')]
        """
        if self.scratch is not None:
            return list(self.scratch(in_shapes, out_shape, attrs, dtype))
        if self.kernel is None:
            return []
        return KERNELS[self.kernel].scratch_buffers(in_shapes, out_shape, dtype)

    def check_attrs(self, attrs: dict) -> tuple[dict, list[str]]:
        """Fill defaults and check values; return (attrs, messages about bad ones).

        >>> OPS["matmul"].check_attrs({})
        ({'transpose_a': False, 'transpose_b': False}, [])
        >>> OPS["leaky_relu"].check_attrs({"alpha": "x"})
        ({'alpha': 'x'}, ["attribute alpha='x' is invalid: expected a slope in [0, 1)"])
        >>> OPS["transpose"].check_attrs({})
        ({}, ["missing required attribute 'perm' (a permutation)"])
        """
        out, bad = {}, []
        for key, spec in self.attrs.items():
            if key in attrs:
                value = attrs[key]
                ok = False
                try:
                    ok = bool(spec.check(value))
                except Exception:  # noqa: BLE001 - a check that raises rejects the value
                    ok = False
                if not ok:
                    bad.append(f"attribute {key}={value!r} is invalid: expected {spec.expect}")
                out[key] = value
            elif spec.default is REQUIRED:
                bad.append(f"missing required attribute {key!r} ({spec.expect})")
            else:
                out[key] = spec.default
        return out, bad


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add an op to the table (each name once); the record's fusion kind, kernel
    name and role are checked first.

    >>> register(OpDef("relu", 1, like_input(0)))
    Traceback (most recent call last):
    ...
    KeyError: "op 'relu' is registered twice"
    >>> register(OpDef("twice", 1, like_input(0), fusion="fast"))
    Traceback (most recent call last):
    ...
    ValueError: op 'twice': unknown fusion kind 'fast'
    """
    if op.name in OPS:
        raise KeyError(f"op {op.name!r} is registered twice")
    if op.fusion not in FUSION_KINDS:
        raise ValueError(f"op {op.name!r}: unknown fusion kind {op.fusion!r}")
    if op.kernel not in (None, op.name):
        raise ValueError(f"op {op.name!r}: its kernel is named after it (or None), got {op.kernel!r}")
    if op.role is not None and op.role not in ROLES:
        raise ValueError(f"op {op.name!r}: unknown role {op.role!r}; known: {ROLES}")
    OPS[op.name] = op
    return op


def kernel_problems(ops: dict | None = None) -> list[str]:
    """What disagrees between op records and the kernels they name: a kernel
    missing from the runtime, or one that reads another number of operands
    than the op has. Checked when the op table is imported.

    >>> kernel_problems()
    []
    """
    problems = []
    for op in (OPS if ops is None else ops).values():
        if op.kernel is None:
            continue
        fn = KERNELS.get(op.kernel)
        if fn is None:
            problems.append(f"op {op.name!r}: kernel {op.kernel!r} is not in the runtime")
        elif fn.operands != op.arity:
            problems.append(f"op {op.name!r} takes {op.arity or 'one or more'} operand(s), its kernel "
                            f"declares {fn.operands or 'one or more'}")
    return problems


def with_role(role: str) -> dict[str, str]:
    """The user-side names of every op with ``role``, each mapped to its op.

    >>> with_role("penalty")["l2_penalty"]
    'l2_penalty'
    """
    return {alias: op.name for op in OPS.values() if op.role == role for alias in op.user_names}


# ---------------------------------------------------------------- shape helpers

def fmt_shape(shape: Shape | None) -> str:
    """Print a shape with the batch symbol as N.

    >>> fmt_shape((None, 28, 28))
    '(N, 28, 28)'
    """
    if shape is None:
        return "?"
    dims = ["N" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def concrete(shape: Shape, batch: int) -> tuple[int, ...]:
    """Replace the batch symbol by a concrete size.

    >>> concrete((None, 3), 8)
    (8, 3)
    """
    return tuple(batch if d is None else d for d in shape)


def numel(shape: Shape, batch: int = 1) -> int:
    """Number of elements, counting the batch symbol as ``batch``.

    >>> numel((None, 3, 4)), numel((None, 3), batch=8), numel(())
    (12, 24, 1)
    """
    return prod(concrete(shape, batch))


def broadcast_shapes(a: Shape, b: Shape) -> Shape:
    """NumPy broadcasting over shapes that may hold the batch symbol.

    >>> broadcast_shapes((None, 3), (3,))
    (None, 3)
    """
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise OpShapeError(f"shapes {fmt_shape(a)} and {fmt_shape(b)} do not broadcast")
    return tuple(reversed(out))


def same_dtype(dtypes: list[str], *ports: int) -> str:
    """The common float dtype of the given operands; an error if they differ.

    >>> same_dtype(["float32", "int64", "float32"], 0, 2)
    'float32'
    >>> same_dtype(["float32", "float64"], 0, 1)
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.OpShapeError: operand dtypes differ: float32, float64; cast one of them
    """
    picked = [dtypes[p] for p in ports]
    if len(set(picked)) != 1:
        raise OpShapeError(f"operand dtypes differ: {', '.join(picked)}; cast one of them")
    if not picked[0].startswith("float"):
        raise OpShapeError(f"expected floating-point operands, got {picked[0]}")
    return picked[0]


def like_input(port: int = 0):
    """Shape rule: the output has the shape and dtype of operand ``port``,
    and every operand has that same shape.

    >>> rule = like_input(0)
    >>> rule([(None, 3), (None, 3)], ["float32", "float32"], {})
    ((None, 3), 'float32')
    >>> rule([(None, 3), (None, 4)], ["float32", "float32"], {})
    Traceback (most recent call last):
    ...
    graphnn.compiler.errors.OpShapeError: operand 1 has shape (N, 4), expected (N, 3) (the shape of operand 0)
    """
    def rule(shapes, dtypes, attrs):
        ref = shapes[port]
        for i, s in enumerate(shapes):
            if s != ref:
                raise OpShapeError(
                    f"operand {i} has shape {fmt_shape(s)}, expected {fmt_shape(ref)} "
                    f"(the shape of operand {port})")
        return ref, same_dtype(dtypes, *range(len(shapes)))
    return rule


def elementwise_flops(per_element: int = 1):
    """FLOPs rule: ``per_element`` operations for each output element.

    >>> elementwise_flops(2)([(4, 3)], (4, 3), {})
    24
    """
    return lambda ins, out, attrs: per_element * prod(out)


def is_pos_int(v) -> bool:
    """An attribute check: an int > 0, not a bool.

    >>> is_pos_int(3), is_pos_int(0), is_pos_int(True), is_pos_int(2.0)
    (True, False, False, False)
    """
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def is_number(v) -> bool:
    """An attribute check: an int or float, not a bool.

    >>> is_number(1.5), is_number(-2), is_number(True), is_number("1")
    (True, True, False, False)
    """
    return isinstance(v, (int, float)) and not isinstance(v, bool)
