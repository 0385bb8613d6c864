"""Split calls in a row run on the pool with one hand-off, each thread waiting
only where another thread's part must come first.

Split calls in a row mostly cut the same images the same way: the rows of
pad2d's result that thread k writes are the rows its im2col reads, and so on
down the forward convolutions and back up the gradients. Such a run needs no
hand-off per call: thread k runs part k of each call in turn, and one hand-off
starts the run. Where a part on thread k touches memory that an earlier part on
another thread writes, or writes memory such a part touches (a result planned
over a buffer that the other thread is still reading, a row-split GEMM reading
what a column-split one wrote), thread k first waits until that part is done.
Every pair of parts that share memory, one of them writing, thus runs in
program order, and the rest can run in any order: each result is what the calls
one by one give. Which parts touch what is recorded when the kernels are bound
(``touches``: byte extents of each part's operands and results).

>>> import numpy as np
>>> from graphnn.runtime.kernels import KERNELS
>>> from graphnn.runtime.threads import Pool, split_call
>>> x, y, z = np.arange(-4.0, 4.0).reshape(4, 2), np.empty((4, 2)), np.empty((4, 2))
>>> p = Pool(2)
>>> relu = split_call(KERNELS["relu"], "relu", [x], [y], {}, p, min_elements=0)
>>> mask = np.empty((4, 2), bool)
>>> grad = split_call(KERNELS["relu_grad"], "relu_grad", [x, y], [z, mask], {}, p, min_elements=0)
>>> (step,) = segments([relu, grad], p)
>>> step.waits                  # the rows each thread reads are its own: no waiting
0
>>> step(); z[:, 1]
array([-0., -0.,  1.,  3.])
>>> p.close()
"""
from __future__ import annotations

import threading


def _overlap(spans_a, spans_b) -> bool:
    return any(lo < hi2 and lo2 < hi for lo, hi in spans_a for lo2, hi2 in spans_b)


def _conflict(part_a, part_b) -> bool:
    """Whether one of two parts writes memory the other reads or writes."""
    (reads_a, writes_a), (reads_b, writes_b) = part_a, part_b
    return _overlap(writes_a, reads_b + writes_b) or _overlap(writes_b, reads_a)


class Whole:
    """A call that is not split, as a member of a segment: one part, run by
    the calling thread, touching ``reads`` and writing ``writes`` (byte
    extents of its operands and of its results and scratch).

    >>> w = Whole(print, reads=[(0, 16)], writes=[(16, 32)])
    >>> w.tasks == [print], w.touches
    (True, [([(0, 16)], [(16, 32)])])
    """

    def __init__(self, call, reads, writes):
        self.call, self.tasks, self.touches = call, [call], [(reads, writes)]


class _Parts:
    """The split parts of a call whose own head runs first (``Whole``)."""

    def __init__(self, call):
        self.call, self.tasks, self.touches = call, call.tasks, call.touches


def segments(calls: list, pool, whole: list | None = None) -> list:
    """``calls`` with each run of two or more split calls (those that record
    their parts' ``touches``) merged into one call (see the module's
    docstring); the others stay as they are. With ``whole`` (per call, the
    (reads, writes) extents of a call that is not split, or None), those join
    the runs too, as parts of the calling thread: a step is one hand-off.

    >>> import numpy as np
    >>> from graphnn.runtime.kernels import KERNELS
    >>> from graphnn.runtime.threads import Pool, extents, split_call
    >>> x, y, z, p = np.arange(-4.0, 4.0).reshape(4, 2), np.empty((4, 2)), np.empty(2), Pool(2)
    >>> relu = split_call(KERNELS["relu"], "relu", [x], [y], {}, p, min_elements=0)
    >>> total = lambda: np.sum(y, axis=0, out=z)            # a call that is not split
    >>> g, mask = np.empty((4, 2)), np.empty((4, 2), bool)
    >>> grad = split_call(KERNELS["relu_grad"], "relu_grad", [x, y], [g, mask], {}, p, min_elements=0)
    >>> [c is total for c in segments([relu, total, grad], p)]      # runs of one stay as they are
    [False, True, False]
    >>> (step,) = segments([relu, total, grad], p, [None, (extents([y]), extents([z])), None])
    >>> step(); z                           # the sum waits for both relu parts
    array([2., 4.])
    >>> p.close()
    """
    out, run = [], []

    def close():
        if len(run) == 1:
            out.append(run[0].call if isinstance(run[0], Whole) else run[0])   # (a _Parts never alone)
        elif run:
            out.append(_segment(list(run), pool))
        run.clear()

    for i, call in enumerate(calls):
        head = getattr(call, "head", None)          # a split epilogue after its whole GEMM
        if head is not None and whole is None:
            close()
            out.append(call)
        elif head is not None:
            run += [Whole(*head), _Parts(call)]
        elif getattr(call, "touches", None) is not None:
            run.append(call)
        elif whole is not None and whole[i] is not None and not hasattr(call, "tasks"):
            # (a split call without touches hands off to the pool itself: never inside a run)
            run.append(Whole(call, *whole[i]))
        else:
            close()
            out.append(call)
    close()
    return out


def schedule(run: list) -> list[list[tuple]]:
    """Per thread, its parts in program order, each as (task, {thread: count}):
    before the task, that thread must have finished that many of its parts.
    Waits already implied by an earlier wait of the same thread are left out:
    each part looks back on another thread's parts only as far as the last
    part it already waits for there (the latest conflict behind that is the
    one that counts).

    Two calls split over two threads, the second's part on each thread reading
    what the first's part on the other thread writes:

    >>> from types import SimpleNamespace as Call
    >>> first = Call(tasks=["a0", "a1"], touches=[([], [(0, 8)]), ([], [(8, 16)])])
    >>> second = Call(tasks=["b0", "b1"], touches=[([(8, 16)], [(16, 24)]), ([(0, 8)], [(24, 32)])])
    >>> schedule([first, second])           # b0 waits for thread 1's first part, b1 for thread 0's
    [[('a0', {}), ('b0', {1: 1})], [('a1', {}), ('b1', {0: 1})]]
    """
    threads = max(len(call.tasks) for call in run)
    placed = [[] for _ in range(threads)]       # per thread, the touches of its parts so far
    ensured = [[0] * threads for _ in range(threads)]   # [j][k]: parts of k that j has waited for
    plan = [[] for _ in range(threads)]
    for call in run:
        for j, (task, part) in enumerate(zip(call.tasks, call.touches)):
            need = {}
            for k in range(threads):
                if k == j:
                    continue
                for pos in range(len(placed[k]) - 1, ensured[j][k] - 1, -1):
                    if _conflict(placed[k][pos], part):
                        need[k] = ensured[j][k] = pos + 1
                        break
            plan[j].append((task, need))
        for j, part in enumerate(call.touches):
            placed[j].append(part)
    return plan


def _segment(run, pool):
    plan = schedule(run)
    done = [0] * len(plan)                      # parts finished, per thread, this step
    failed = [False]
    ready = threading.Condition()
    told = [{n for steps in plan for _, need in steps for m, n in need.items() if m == k}
            for k in range(len(plan))]

    def thread_task(k):
        steps = [(task, tuple(need.items()), (p + 1) in told[k]) for p, (task, need) in enumerate(plan[k])]

        def run_parts():
            try:
                for p, (task, need, tell) in enumerate(steps):
                    for m, n in need:
                        if done[m] < n:
                            with ready:
                                while done[m] < n and not failed[0]:
                                    ready.wait()
                        if failed[0]:
                            return          # the failing thread's error reaches the caller
                    task()
                    if tell:
                        with ready:
                            done[k] = p + 1
                            ready.notify_all()
            except BaseException:
                with ready:
                    failed[0] = True
                    ready.notify_all()
                raise
        return run_parts

    tasks = [thread_task(k) for k in range(len(plan))]

    def run_segment():
        done[:] = [0] * len(done)
        failed[0] = False
        pool.run_all(tasks)
    run_segment.calls = run                     # the split calls it runs (tests read them)
    run_segment.plan = plan
    run_segment.waits = sum(len(need) for steps in plan for _, need in steps)
    return run_segment
