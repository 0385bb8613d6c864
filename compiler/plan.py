"""plan_memory: place every arena buffer at an offset, reusing dead buffers' bytes.

Each storage (a buffer with its views and the in-place results written over
it) lives from the step that first writes it to the last step that reads it.
Two storages may share bytes only if their lifetimes do not overlap. Storages
are placed one by one in the best-fitting gap among those already placed and
alive at the same time (the smallest gap that holds it, else on top). A few
orders are tried (busiest step first, largest first, ...) until
one reaches the lower bound, and the smallest arena wins. That alone ends
within 1.05 x the bound on every example and benchmark graph, in well under a
second for a thousand storages.

A plan still above 1.05 x the bound gets one round of local search (small
plans also a few seeded shuffles); ``search=True`` asks for the thorough,
slow variant on every order, for when bytes matter more than compile time.

>>> offsets, report = plan_memory({"a": 64, "b": 64, "c": 64},
...                               {"a": (0, 1), "b": (1, 2), "c": (2, 3)})
>>> report.planned_bytes, report.lower_bound_bytes, report.naive_bytes
(128, 128, 192)
"""
from __future__ import annotations

import numpy as np

from ..runtime.program import MemoryReport

ALIGN = 64


def _round_up(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def lower_bound(sizes: dict, lifetimes: dict) -> int:
    """Peak, over the schedule, of the bytes alive at once (no plan can do better).
    Sizes count rounded up to 64 bytes, as placed: at step 1 a (128 B) and b
    (64 B) are alive, at step 2 b and c (128 B):

    >>> lower_bound({"a": 100, "b": 10, "c": 64}, {"a": (0, 1), "b": (1, 2), "c": (2, 2)})
    192
    """
    events: dict[int, int] = {}
    for name, (start, end) in lifetimes.items():
        events[start] = events.get(start, 0) + _round_up(sizes[name])
        events[end + 1] = events.get(end + 1, 0) - _round_up(sizes[name])
    live = peak = 0
    for t in sorted(events):
        live += events[t]
        peak = max(peak, live)
    return peak


def _best_offset(lo: np.ndarray, hi: np.ndarray, size: int) -> int:
    """The start of the smallest gap that holds ``size`` among the busy [lo, hi)
    intervals, or the top of them all."""
    if not lo.size:
        return 0
    by_offset = np.argsort(lo, kind="stable")
    lo, hi = lo[by_offset], hi[by_offset]
    top = np.maximum.accumulate(hi)                 # highest end so far
    below = np.concatenate(([0], top[:-1]))         # free from here...
    gaps = lo - below                               # ...up to the next start
    fits = np.flatnonzero(gaps >= size)
    return int(below[fits[np.argmin(gaps[fits])]]) if fits.size else int(top[-1])


def _place(order: list, sizes: dict, lifetimes: dict) -> dict:
    n = len(order)
    starts, ends = np.empty(n, np.int64), np.empty(n, np.int64)
    lows, highs = np.empty(n, np.int64), np.empty(n, np.int64)
    offsets = {}
    for k, name in enumerate(order):
        size, (s, e) = _round_up(sizes[name]), lifetimes[name]
        alive = (starts[:k] <= e) & (ends[:k] >= s)
        offset = _best_offset(lows[:k][alive], highs[:k][alive], size)
        offsets[name] = offset
        starts[k], ends[k], lows[k], highs[k] = s, e, offset, offset + size
    return offsets


def _improve(offsets: dict, sizes: dict, lifetimes: dict, passes: int = 4) -> dict:
    """Local search on a plan: lift each storage out, tallest first, and put it
    back in the best gap the others leave, when that lowers it. Repeats while
    anything moves (at most ``passes`` times)."""
    names = list(offsets)
    size = np.array([_round_up(sizes[n]) for n in names], np.int64)
    start = np.array([lifetimes[n][0] for n in names], np.int64)
    end = np.array([lifetimes[n][1] for n in names], np.int64)
    lo = np.array([offsets[n] for n in names], np.int64)
    for _ in range(passes):
        moved = False
        for k in np.argsort(-(lo + size), kind="stable"):
            others = (start <= end[k]) & (end >= start[k])
            others[k] = False
            best = _best_offset(lo[others], lo[others] + size[others], int(size[k]))
            if best < lo[k]:
                lo[k], moved = best, True
        if not moved:
            break
    return {n: int(o) for n, o in zip(names, lo)}


def _busiest_step_first(sizes: dict, lifetimes: dict) -> list:
    """Storages by the peak of live bytes over their lifetime, then size: the
    storages of the busiest step (the ones that set the lower bound) go first."""
    names = list(sizes)
    size = np.array([_round_up(sizes[n]) for n in names], np.int64)
    start = np.array([lifetimes[n][0] for n in names], np.int64)
    end = np.array([lifetimes[n][1] for n in names], np.int64)
    first = start.min(initial=0)
    delta = np.zeros(int(end.max(initial=0) - first) + 2, np.int64)
    np.add.at(delta, start - first, size)
    np.add.at(delta, end - first + 1, -size)
    live = np.cumsum(delta)
    peak = np.array([live[s:e + 1].max() for s, e in zip(start - first, end - first)])
    return [names[k] for k in np.lexsort((np.array(names), start, -size, -peak))]


def _keyed(key):
    return lambda sizes, lifetimes: sorted(
        sizes, key=lambda n: (*key(_round_up(sizes[n]), *lifetimes[n]), n))


ORDERS = {   # placement orders tried in turn (the most often best first), until one reaches the bound
    "busiest step first": _busiest_step_first,
    "largest first": _keyed(lambda size, start, end: (-size, start)),
    "largest area first": _keyed(lambda size, start, end: (-size * (end - start + 1), start)),
    "longest-lived first": _keyed(lambda size, start, end: (start - end, -size)),
    "earliest first": _keyed(lambda size, start, end: (start, -size)),
    "earliest end first": _keyed(lambda size, start, end: (end, -size)),
}

GOOD_ENOUGH = 1.05       # above this, the best plan gets a round of local search
SHUFFLED_UP_TO, SHUFFLES = 200, 20    # plans this small (storages) also get shuffles


def _top(offsets: dict, sizes: dict) -> int:
    return max((o + _round_up(sizes[n]) for n, o in offsets.items()), default=0)


def plan_memory(sizes: dict, lifetimes: dict, search: bool = False) -> tuple[dict, MemoryReport]:
    """Return ({storage: offset}, MemoryReport). ``lifetimes`` maps each storage
    to (first step, last step), both inclusive. ``search=True`` runs the local
    search on every order's plan and tries seeded shuffles whatever the size
    (slow on large graphs, for the last few percent).

    a dies after step 1, c starts at step 2: c takes a's bytes.

    >>> plan_memory({"a": 64, "b": 64, "c": 64}, {"a": (0, 1), "b": (1, 2), "c": (2, 3)})
    ({'a': 0, 'b': 64, 'c': 0}, MemoryReport(naive_bytes=192, lower_bound_bytes=128, planned_bytes=128))
    """
    bound = lower_bound(sizes, lifetimes)
    best, best_top = {}, None
    for order in ORDERS.values():
        offsets = _place(order(sizes, lifetimes), sizes, lifetimes)
        if search:
            offsets = _improve(offsets, sizes, lifetimes)
        top = _top(offsets, sizes)
        if best_top is None or top < best_top:
            best, best_top = offsets, top
        if best_top <= bound:
            break
    if best_top is not None and best_top > GOOD_ENOUGH * bound and not search:
        best = _improve(best, sizes, lifetimes)
        best_top = _top(best, sizes)
    if best_top is not None and best_top > GOOD_ENOUGH * bound and \
            (search or len(sizes) <= SHUFFLED_UP_TO):
        rng, first = np.random.default_rng(0), ORDERS["largest first"](sizes, lifetimes)
        for _ in range(SHUFFLES):
            offsets = _improve(_place([first[i] for i in rng.permutation(len(first))],
                                      sizes, lifetimes), sizes, lifetimes)
            top = _top(offsets, sizes)
            if top < best_top:
                best, best_top = offsets, top
            if best_top <= GOOD_ENOUGH * bound:
                break
    naive = sum(_round_up(s) for s in sizes.values())
    return best, MemoryReport(naive, bound, best_top or 0)
