"""An independent check of a Program's memory plan.

It reads only the Program: which instruction writes and reads each buffer,
the views it declares and the in-place writes it declares. It shares no code
with compiler/plan.py or compiler/emit.py. The rules:

- a view (``view_of``) and its source are one storage, at one offset;
- an in-place result and the input it overwrites are one storage, and no later
  instruction may read that input (or a view of it);
- two different storages alive at the same step never share a byte;
- every arena buffer starts on an ``ALIGN`` boundary, so a storage of n bytes
  keeps round_up(n) bytes from others, and no plan can use less arena than the
  peak, over the instructions, of those rounded bytes alive at once
  (``lower_bound_bytes``, computed here from the instructions alone)."""
from __future__ import annotations

ALIGN = 64          # the runtime's arena alignment (runtime/executor.py)


class _Groups:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


def storages(program):
    """(group of each arena buffer, problems found with views and in-place writes)."""
    groups, problems = _Groups(), []
    arena = {n: b for n, b in program.buffers.items() if b.offset is not None}
    for name, b in arena.items():
        groups.find(name)
        if b.view_of:
            groups.union(name, b.view_of)
    for i, ins in enumerate(program.instructions):
        for src in ins.inplace:
            g = groups.find(src)
            later = [j for j, other in enumerate(program.instructions[i + 1:], i + 1)
                     if any(groups.find(r) == g for r in other.inputs if r in arena)]
            if later:
                problems.append(f"{ins.outputs[0]} overwrites {src}, which instruction {later[0]} reads")
            groups.union(ins.outputs[0], src)
    by_group = {}
    for name in arena:
        by_group.setdefault(groups.find(name), []).append(name)
    for members in by_group.values():
        if len({arena[m].offset for m in members}) > 1:
            problems.append(f"buffers {members} share storage but not an offset")
    return by_group, problems


def live_ranges(program, by_group):
    """Storage -> (first instruction that writes it, or -1 if fed; the last that
    reads or writes it, or len(instructions) if fed or an output)."""
    n = len(program.instructions)
    group_of = {m: g for g, members in by_group.items() for m in members}
    first, last = {}, {}
    for i, ins in enumerate(program.instructions):
        for name in ins.outputs:
            if name in group_of:
                first.setdefault(group_of[name], i)
                last[group_of[name]] = i
        for name in ins.inputs:
            if name in group_of:
                last[group_of[name]] = i
    fed = {group_of[m] for m in program.inputs if m in group_of}
    kept = fed | {group_of[m] for m in program.outputs if m in group_of}
    ranges = {}
    for g, members in by_group.items():
        start = -1 if g in fed else first.get(g)
        assert start is not None, f"storage {members} is read but never written"
        ranges[g] = (start, n if g in kept else max(last.get(g, start), start))
    return ranges


def lower_bound_bytes(program) -> int:
    """The peak, over the instructions, of the bytes of the storages alive at
    once, each rounded up to ``ALIGN``: no plan of this program fits in less."""
    by_group, _ = storages(program)
    events: dict[int, int] = {}
    for g, (start, end) in live_ranges(program, by_group).items():
        size = -(-max(program.buffers[m].nbytes for m in by_group[g]) // ALIGN) * ALIGN
        events[start] = events.get(start, 0) + size
        events[end + 1] = events.get(end + 1, 0) - size
    live = peak = 0
    for step in sorted(events):
        live += events[step]
        peak = max(peak, live)
    return peak


def planned_bytes(program) -> int:
    """The arena the plan takes, each buffer rounded up to ALIGN as the bound counts it."""
    return max((b.offset + -(-b.nbytes // ALIGN) * ALIGN for b in program.buffers.values()
                if b.offset is not None), default=0)


def misaligned(program) -> list:
    """Arena buffers that do not start on an ALIGN boundary."""
    return [n for n, b in program.buffers.items() if b.offset is not None and b.offset % ALIGN]


def overlapping_buffers(program) -> list:
    """Problems with the plan (an empty list when it is sound)."""
    by_group, problems = storages(program)
    ranges = live_ranges(program, by_group)
    size = {g: max(program.buffers[m].nbytes for m in ms) for g, ms in by_group.items()}
    offset = {g: program.buffers[ms[0]].offset for g, ms in by_group.items()}
    names = sorted(by_group)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (sa, ea), (sb, eb) = ranges[a], ranges[b]
            if sa <= eb and sb <= ea and size[a] and size[b] and \
                    offset[a] < offset[b] + size[b] and offset[b] < offset[a] + size[a]:
                problems.append((a, b))
    return problems


def unplanned(program):
    """The same program with every arena buffer at its own offset: no reuse, no
    views or in-place writes sharing bytes (view kernels do not exist, so a view
    keeps its source's offset)."""
    from copy import deepcopy
    p = deepcopy(program)
    offset = 0
    for b in p.buffers.values():
        if b.offset is not None and not b.view_of:
            b.offset = offset
            offset += (b.nbytes + 63) // 64 * 64
    for b in p.buffers.values():
        if b.offset is not None and b.view_of:
            b.offset = p.buffers[b.view_of].offset
    for ins in p.instructions:
        ins.inplace = []
    return p
