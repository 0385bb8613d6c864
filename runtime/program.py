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
    """One array: in the arena at ``offset``, or persistent (weights, state, constants)."""

    name: str
    shape: tuple
    dtype: str
    offset: int | None = None
    persistent: bool = False
    value: float | list | None = None     # constants only
    view_of: str | None = None            # same bytes as that buffer, in this shape

    @property
    def nbytes(self) -> int:
        return prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass
class Instruction:
    """Run ``kernel`` reading ``inputs`` and writing ``outputs`` (buffer names)."""

    kernel: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    node: str = ""                        # the graph node it comes from, for errors
    inplace: list = field(default_factory=list)   # inputs whose bytes outputs[0] reuses


@dataclass
class MemoryReport:
    """Arena sizes in bytes: every buffer apart, the peak of live bytes, the plan."""

    naive_bytes: int
    lower_bound_bytes: int
    planned_bytes: int


@dataclass
class Program:
    buffers: dict
    instructions: list
    inputs: list
    outputs: list
    batch_size: int
    memory: MemoryReport

    @property
    def arena_bytes(self) -> int:
        ends = [b.offset + b.nbytes for b in self.buffers.values() if b.offset is not None]
        return max(ends, default=0)

    def to_dict(self) -> dict:
        """Plain JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Program:
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
