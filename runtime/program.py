"""A Program is plain data: buffers, instructions, and a memory report.

It is what the compiler produces and the Executor runs. It holds no arrays and
no graph, so it can be printed, compared, saved as JSON and run with NumPy alone.

>>> p = Program(buffers={"x": Buffer("x", (2, 3), "float32", offset=0)},
...             instructions=[], inputs=["x"], outputs=["x"], batch_size=2,
...             memory=MemoryReport(24, 24, 24))
>>> p.arena_bytes
24
>>> Program.from_dict(p.to_dict()) == p
True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

import numpy as np


@dataclass
class Buffer:
    """One array: in the arena at ``offset``, or persistent (weights, state, constants).

    >>> x, W = Buffer("x", (32, 784), "float32", offset=0), Buffer("W", (3, 2), "float64", persistent=True)
    >>> x.nbytes, W.offset
    (100352, None)
    """

    name: str
    shape: tuple
    dtype: str
    offset: int | None = None
    persistent: bool = False
    value: float | list | None = None     # constants only
    view_of: str | None = None            # same bytes as that buffer, in this shape

    @property
    def nbytes(self) -> int:
        """Its size in bytes: elements times the dtype's item size.

        >>> Buffer("s", (), "float64").nbytes, Buffer("m", (4, 3), "float16").nbytes
        (8, 24)
        """
        return prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass
class Instruction:
    """Run ``kernel`` reading ``inputs`` and writing ``outputs`` (buffer names).
    ``inplace``: the input whose bytes the output reuses (the planner put them at
    one offset).

    >>> Instruction("relu", ["fc/bias_add"], ["fc/relu"], node="fc/relu", inplace=["fc/bias_add"])
    Instruction(kernel='relu', inputs=['fc/bias_add'], outputs=['fc/relu'], attrs={}, node='fc/relu', inplace=['fc/bias_add'])
    """

    kernel: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    node: str = ""                        # the graph node it comes from, for errors
    inplace: list = field(default_factory=list)   # inputs whose bytes outputs[0] reuses


@dataclass
class MemoryReport:
    """Arena sizes in bytes: every buffer apart, the peak of live bytes, the plan.

    >>> from graphnn.compiler.ir import new_graph, add_op
    >>> from graphnn.compiler.pipeline import compile_graph
    >>> g = new_graph()
    >>> _ = add_op(g, "x", "input", [], shape=(None, 256), dtype="float32")
    >>> _ = add_op(g, "a", "exp", ["x"]); _ = add_op(g, "b", "tanh", ["a"]); _ = add_op(g, "c", "exp", ["b"])
    >>> compile_graph(g, ["c"], batch_size=1, fuse=False).memory
    MemoryReport(naive_bytes=4096, lower_bound_bytes=3072, planned_bytes=3072)

    Four buffers of 1 KiB apart; at most three alive at once (the fed x, an
    operand and its result), and the plan reaches that bound (c reuses a's bytes).
    """

    naive_bytes: int
    lower_bound_bytes: int
    planned_bytes: int


def _example_relu_program() -> Program:
    """For the examples: the Program of Program's own example, y = relu(x) at batch 2, both
    (2, 2) float32, x at offset 0 and y at 64 (an 80-byte arena)."""
    return Program(buffers={"x": Buffer("x", (2, 2), "float32", offset=0),
                            "y": Buffer("y", (2, 2), "float32", offset=64)},
                   instructions=[Instruction("relu", ["x"], ["y"], node="y")],
                   inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(80, 80, 80))


@dataclass
class Program:
    """Buffers by name, instructions in run order, the fed inputs, the outputs,
    the batch size it was planned for and its memory report.

    >>> import numpy as np
    >>> from graphnn.runtime import Executor
    >>> p = Program(buffers={"x": Buffer("x", (2, 2), "float32", offset=0),
    ...                      "y": Buffer("y", (2, 2), "float32", offset=64)},
    ...             instructions=[Instruction("relu", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(80, 80, 80))
    >>> Executor(p).run({"x": np.array([[-1.0, 2.0], [3.0, -4.0]])})["y"]
    array([[0., 2.],
           [3., 0.]], dtype=float32)
    >>> print(p)
    program (batch 2): 1 instructions, arena 80 B (naive 80 B, lower bound 80 B)
      inputs:  x@0
        0  y@64 = relu(x@0)
      outputs: y@64
      buffers:
        x                                (2, 2)           float32  [0, 16)
        y                                (2, 2)           float32  [64, 80)
    """

    buffers: dict
    instructions: list
    inputs: list
    outputs: list
    batch_size: int
    memory: MemoryReport

    @property
    def arena_bytes(self) -> int:
        """The bytes the arena needs: the end of the buffer that ends last.

        >>> p = _example_relu_program()      # y = relu(x); x (2, 2) f32 at 0, y at 64
        >>> p.arena_bytes                     # y: 16 bytes from offset 64
        80
        """
        ends = [b.offset + b.nbytes for b in self.buffers.values() if b.offset is not None]
        return max(ends, default=0)

    def to_dict(self) -> dict:
        """Plain JSON-ready data.

        >>> p = _example_relu_program()      # y = relu(x); x (2, 2) f32 at 0, y at 64
        >>> import json
        >>> d = p.to_dict(); d["instructions"][0]["kernel"], d["buffers"]["y"]["offset"]
        ('relu', 64)
        >>> len(json.dumps(d)) > 0
        True
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Program:
        """The Program ``to_dict`` describes (shapes back to tuples), also after a
        trip through JSON.

        >>> p = _example_relu_program()      # y = relu(x); x (2, 2) f32 at 0, y at 64
        >>> import json
        >>> back = Program.from_dict(json.loads(json.dumps(p.to_dict())))
        >>> back == p, back.buffers["x"].shape
        (True, (2, 2))
        """
        buffers = {k: Buffer(**{**b, "shape": tuple(b["shape"])}) for k, b in d["buffers"].items()}
        return cls(buffers=buffers, instructions=[Instruction(**i) for i in d["instructions"]],
                   inputs=list(d["inputs"]), outputs=list(d["outputs"]),
                   batch_size=d["batch_size"], memory=MemoryReport(**d["memory"]))

    def __str__(self) -> str:
        def place(name):
            b = self.buffers[name]
            return f"{name}" if b.offset is None else f"{name}@{b.offset}"

        m = self.memory
        lines = [(f"program (batch {self.batch_size}): {len(self.instructions)} instructions, "
                 f"arena {m.planned_bytes} B (naive {m.naive_bytes} B, "
                 f"lower bound {m.lower_bound_bytes} B)")]
        lines.append("  inputs:  " + ", ".join(place(n) for n in self.inputs))
        for i, ins in enumerate(self.instructions):
            attrs = "".join(f" {k}={v!r}" for k, v in sorted(ins.attrs.items()))
            kernel = ins.kernel
            if kernel == "fused":        # name the parts; their attributes are in to_dict()
                parts = [ins.attrs["anchor"]] + ins.attrs["epilogue"]
                kernel, attrs = "fused[" + "+".join(p["kernel"] for p in parts) + "]", ""
            outs = ", ".join(place(o) for o in ins.outputs) or "-"
            args = ", ".join(place(a) for a in ins.inputs)
            same = f"  (in place of {', '.join(ins.inplace)})" if ins.inplace else ""
            lines.append(f"  {i:3d}  {outs} = {kernel}({args}){attrs}{same}")
        lines.append("  outputs: " + ", ".join(place(n) for n in self.outputs))
        lines.append("  buffers:")
        for b in sorted(self.buffers.values(), key=lambda b: (b.offset is None, b.offset or 0, b.name)):
            where = "persistent" if b.offset is None else f"[{b.offset}, {b.offset + b.nbytes})"
            if b.view_of:
                where += f" view of {b.view_of}"
            lines.append(f"    {b.name:32s} {b.shape!s:16s} {b.dtype:8s} {where}")
        return "\n".join(lines)
