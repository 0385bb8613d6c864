"""plan_memory: place every arena buffer at an offset, reusing dead buffers' bytes.

Each buffer lives from the step that writes it to the last step that reads it.
Two buffers may share bytes only if their lifetimes do not overlap. Buffers are
placed largest first, each at the lowest offset where it fits between the
buffers already placed that are alive at the same time (greedy by size).

>>> offsets, report = plan_memory({"a": 64, "b": 64, "c": 64},
...                               {"a": (0, 1), "b": (1, 2), "c": (2, 3)})
>>> report.planned_bytes, report.lower_bound_bytes, report.naive_bytes
(128, 128, 192)
"""
from __future__ import annotations

from runtime.program import MemoryReport

ALIGN = 64


def _round_up(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def lower_bound(sizes: dict, lifetimes: dict) -> int:
    """Peak, over the schedule, of the bytes alive at once (no plan can do better)."""
    events = {}
    for name, (start, end) in lifetimes.items():
        events[start] = events.get(start, 0) + _round_up(sizes[name])
        events[end + 1] = events.get(end + 1, 0) - _round_up(sizes[name])
    live = peak = 0
    for t in sorted(events):
        live += events[t]
        peak = max(peak, live)
    return peak


def plan_memory(sizes: dict, lifetimes: dict) -> tuple[dict, MemoryReport]:
    """Return ({buffer: offset}, MemoryReport). ``lifetimes`` maps each buffer
    to (first step, last step), both inclusive."""
    placed: list[tuple[int, int, tuple[int, int]]] = []   # (offset, size, lifetime)
    offsets = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], lifetimes[n][0], n)):
        size, life = _round_up(sizes[name]), lifetimes[name]
        busy = sorted((o, o + s) for o, s, l in placed if _overlap(l, life))
        offset = 0
        for start, end in busy:
            if start - offset >= size:
                break
            offset = max(offset, end)
        offsets[name] = offset
        placed.append((offset, size, life))
    planned = max((o + s for o, s, _ in placed), default=0)
    naive = sum(_round_up(s) for s in sizes.values())
    return offsets, MemoryReport(naive, lower_bound(sizes, lifetimes), planned)
