"""The ``fused`` op: an anchor op and an epilogue of in-place ops, as one kernel.

Made by the fuse pass, never by users. Its attributes describe the parts; its
shape rule chains theirs, and its scratch is theirs, in order.

>>> from graphnn.compiler.ops import OPS
>>> attrs = {"anchor": {"op": "matmul", "attrs": {"transpose_a": False, "transpose_b": False}},
...          "epilogue": [{"op": "relu", "attrs": {}, "extra": 0}]}
>>> OPS["fused"].infer([(None, 3), (3, 4)], ["float32"] * 2, attrs)
((None, 4), 'float32')
"""
from __future__ import annotations

from .base import OPS, Attr, OpDef, register


def parts(in_shapes, in_dtypes, attrs):
    """Yield (op record, its operand shapes, its dtypes, its attrs) for the anchor,
    then each epilogue op (whose operand 0 is the running result).

    >>> attrs = {"anchor": {"op": "matmul", "attrs": {"transpose_a": False, "transpose_b": False}},
    ...          "epilogue": [{"op": "bias_add", "attrs": {"axis": -1}, "extra": 1},
    ...                       {"op": "relu", "attrs": {}, "extra": 0}]}
    >>> [(op.name, shapes) for op, shapes, _, _ in parts([(None, 3), (3, 4), (4,)], ["float32"] * 3, attrs)]
    [('matmul', [(None, 3), (3, 4)]), ('bias_add', [(None, 4), (4,)]), ('relu', [(None, 4)])]
    """
    anchor = OPS[attrs["anchor"]["op"]]
    n = len(in_shapes) - sum(p["extra"] for p in attrs["epilogue"])
    shapes, dtypes = list(in_shapes[:n]), list(in_dtypes[:n])
    yield anchor, shapes, dtypes, attrs["anchor"]["attrs"]
    out, dtype = anchor.infer(shapes, dtypes, attrs["anchor"]["attrs"])
    for part in attrs["epilogue"]:
        k = part["extra"]
        shapes, dtypes = [out, *in_shapes[n:n + k]], [dtype, *in_dtypes[n:n + k]]
        yield OPS[part["op"]], shapes, dtypes, part["attrs"]
        out, dtype = OPS[part["op"]].infer(shapes, dtypes, part["attrs"])
        n += k


def _shape(shapes, dtypes, attrs):
    for op, s, d, a in parts(shapes, dtypes, attrs):
        result = op.infer(s, d, a)
    return result


def _scratch(in_shapes, out_shape, attrs, dtype):
    buffers = []
    for op, s, _, a in parts(in_shapes, [dtype] * len(in_shapes), attrs):
        buffers += op.scratch_buffers(s, out_shape, a, dtype)
    return buffers


def _flops(in_shapes, out_shape, attrs):
    return sum(op.flops(s, out_shape, a) for op, s, _, a in
               parts(in_shapes, ["float32"] * len(in_shapes), attrs))


def _lower(rw, node, ins, attrs):
    """A fused node whose anchor has no kernel is lowered by the anchor's own hook."""
    hook = OPS[attrs["anchor"]["op"]].lower_fused
    if hook is not None:
        hook(rw, node, ins, attrs)


register(OpDef("fused", None, _shape, kernel="fused", fusion="opaque", kind="lowered", lower=_lower,
               lowers=lambda attrs: OPS[attrs["anchor"]["op"]].lower_fused is not None,
               attrs={"anchor": Attr(check=lambda v: isinstance(v, dict)),
                      "epilogue": Attr(check=lambda v: isinstance(v, list))},
               scratch=_scratch, flops=_flops,
               doc="An anchor op then in-place epilogue ops, one kernel, one buffer."))
