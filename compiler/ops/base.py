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

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable

from ..errors import OpShapeError

Shape = tuple  # of int, with None standing for the symbolic batch dimension

REQUIRED = object()

# TVM's fusion kinds, from most to least fusable.
FUSION_KINDS = ("elementwise", "broadcast", "injective", "reduce",
                "out-elementwise-fusable", "opaque")


@dataclass(frozen=True)
class Attr:
    """One op attribute: its default (or REQUIRED) and a check of its value."""

    default: Any = REQUIRED
    check: Callable[[Any], bool] = lambda v: True
    expect: str = "a valid value"   # says what `check` accepts, for error messages


@dataclass
class OpDef:
    """Everything the compiler knows about one op."""

    name: str
    arity: int | None                    # None: one or more operands
    infer: Callable[[list, list, dict], tuple]
    kernel: str | None                   # runtime kernel name; None for sources
    fusion: str = "opaque"
    vjp: Callable | None = None          # (ctx, node, dy) -> [grad node or None per input]
    attrs: dict[str, Attr] = field(default_factory=dict)
    flops: Callable[[list, Shape, dict], int] = lambda ins, out, a: 0
    kind: str = "compute"    # source | compute | gradient | loss | update | lowered (made by passes)
    mutates: tuple[int, ...] = ()        # operand ports an update op writes in place
    inplace: bool = False                # the kernel may write its result over operand 0
    view: bool = False                   # the result is operand 0's bytes, reshaped (no kernel)
    scratch: Callable | None = None      # (in_shapes, out_shape, attrs, dtype) -> [(shape, dtype)]
    doc: str = ""

    def scratch_buffers(self, in_shapes, out_shape, attrs, dtype) -> list:
        """Temporary buffers the kernel needs for one call, planned in the arena."""
        return list(self.scratch(in_shapes, out_shape, attrs, dtype)) if self.scratch else []

    def check_attrs(self, attrs: dict) -> tuple[dict, list[str]]:
        """Fill defaults and check values; return (attrs, messages about bad ones)."""
        out, bad = {}, []
        for key, spec in self.attrs.items():
            if key in attrs:
                value = attrs[key]
                ok = False
                try:
                    ok = bool(spec.check(value))
                except Exception:
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
    """Add an op to the table (each name once)."""
    if op.name in OPS:
        raise KeyError(f"op {op.name!r} is registered twice")
    if op.fusion not in FUSION_KINDS:
        raise ValueError(f"op {op.name!r}: unknown fusion kind {op.fusion!r}")
    OPS[op.name] = op
    return op


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
    """Number of elements, counting the batch symbol as ``batch``."""
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
    """The common float dtype of the given operands; an error if they differ."""
    picked = [dtypes[p] for p in ports]
    if len(set(picked)) != 1:
        raise OpShapeError(f"operand dtypes differ: {', '.join(picked)}; cast one of them")
    if not picked[0].startswith("float"):
        raise OpShapeError(f"expected floating-point operands, got {picked[0]}")
    return picked[0]


def like_input(port: int = 0):
    """Shape rule: the output has the shape and dtype of operand ``port``,
    and every operand has that same shape."""
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
    """FLOPs rule: ``per_element`` operations for each output element."""
    return lambda ins, out, attrs: per_element * prod(out)


def scratch_like(*ports_or_out, dtypes=None):
    """Scratch rule: one buffer shaped like each named operand port (or "out")."""
    def rule(in_shapes, out_shape, attrs, dtype):
        shapes = [out_shape if p == "out" else in_shapes[p] for p in ports_or_out]
        kinds = dtypes or [dtype] * len(shapes)
        return [(s, d if d != "same" else dtype) for s, d in zip(shapes, kinds)]
    return rule


def is_pos_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
