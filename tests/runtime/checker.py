"""An independent check of a Program's memory plan.

It reads only the Program: when each arena buffer is first written and last
read, from the instruction list itself. No two buffers alive at the same time
may share a byte. (It shares no code with compiler/plan.py.)"""
from __future__ import annotations


def live_ranges(program):
    n = len(program.instructions)
    ranges = {}
    for name, b in program.buffers.items():
        if b.offset is None:
            continue
        if name in program.inputs:
            start = -1
        else:
            writes = [i for i, ins in enumerate(program.instructions) if name in ins.outputs]
            assert writes, f"arena buffer {name} is never written"
            start = writes[0]
        reads = [i for i, ins in enumerate(program.instructions) if name in ins.inputs]
        end = n if name in program.outputs or name in program.inputs else max(reads + [start])
        ranges[name] = (start, end)
    return ranges


def overlapping_buffers(program) -> list[tuple[str, str]]:
    """Pairs of buffers alive at the same time whose bytes overlap (should be none)."""
    ranges = live_ranges(program)
    names = sorted(ranges)
    bad = []
    for i, a in enumerate(names):
        ba, (sa, ea) = program.buffers[a], ranges[a]
        for b in names[i + 1:]:
            bb, (sb, eb) = program.buffers[b], ranges[b]
            alive_together = sa <= eb and sb <= ea
            share_bytes = ba.offset < bb.offset + bb.nbytes and bb.offset < ba.offset + ba.nbytes
            if alive_together and share_bytes and ba.nbytes and bb.nbytes:
                bad.append((a, b))
    return bad


def unplanned(program):
    """The same program with every arena buffer at its own offset (no reuse)."""
    from copy import deepcopy
    p = deepcopy(program)
    offset = 0
    for b in p.buffers.values():
        if b.offset is not None:
            b.offset = offset
            offset += (b.nbytes + 63) // 64 * 64
    return p
