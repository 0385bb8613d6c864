"""Splitting a kernel's batch across a small pool of threads.

NumPy runs each ufunc on one thread, but releases the GIL inside its loops (and
around BLAS calls), so the batch of a kernel (per-image GEMMs, pooling, im2col,
col2im, the activation epilogue) can be cut into chunks that run at once. Each chunk is the same
kernel bound to row slices of the same arrays (views: nothing is copied, and
every output element is computed by exactly the operations of the one-thread
path, so results are identical).

A kernel is split only when its declaration says which of its operands carry
the batch on axis 0 (``@kernel(batched=...)``, gathered in ``BATCHED``; its
results and scratch always do), every array cut
is C-contiguous with that batch as its first dimension, and the result is large
enough (``MIN_ELEMENTS``) for the hand-off to pay; a transpose that keeps the
batch axis first splits too. Stacked (per-image) GEMMs split by images, with
BLAS on one thread during a pooled step (``single_blas``); large 2-D GEMMs by
their result's rows or columns (runtime/split_gemm.py), large element-wise
optimizer updates by flat ranges (``@kernel(flat=True)``, gathered in ``FLAT_UPDATES``).

>>> import numpy as np
>>> from graphnn.runtime.kernels import KERNELS
>>> x, y = np.arange(-6.0, 6.0).reshape(3, 4), np.empty((3, 4))
>>> pool = Pool(2)
>>> run = split_call(KERNELS["relu"], "relu", [x], [y], {}, pool, min_elements=0)
>>> run(); y[0]
array([0., 0., 0., 0.])
>>> y[2]
array([2., 3., 4., 5.])
>>> pool.close()
"""
from __future__ import annotations

import contextvars
import itertools
import os
import threading

import numpy as np

from .kernels import KERNELS, bind

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:             # NumPy < 2
    byte_bounds = np.byte_bounds

# Which kernels the pool may cut, and how, from their declarations
# (``@kernel(batched=..., epilogue=..., flat=...)``, runtime/kernels/base.py):
# kernel name -> the operands whose axis 0 is the batch (results and scratch
# always are); the same for kernels that follow a GEMM in a fused kernel (there
# the GEMM runs whole and the epilogue is split; bias_add only when its bias is
# not along axis 0).
BATCHED = {name: k.batched for name, k in KERNELS.items() if k.batched is not None}
EPILOGUE = {name: k.epilogue for name, k in KERNELS.items() if k.epilogue is not None}
MIN_ELEMENTS = 1 << 15      # results smaller than this run whole: a hand-off costs ~10-50 us
MIN_GEMM_MACS = 1 << 21     # a 2-D GEMM with fewer multiply-adds runs whole (about 20 us)
# Optimizer updates that are element by element: a large parameter's arrays are
# cut into one flat range per thread. (Adam's and Adamax's step counter is
# shared: they run whole, and are not declared flat.)
FLAT_UPDATES = frozenset(name for name, k in KERNELS.items() if k.flat)
MIN_UPDATE_ELEMENTS = 1 << 16


# A program gets a pool by default when it has a kernel only convolution and
# pooling programs have: every split kernel but the activations (which dense
# programs have too), and gemm_col2im (split by runtime/split_gemm.py). Split by images
# over the pool (with BLAS on one thread) these beat BLAS's own threads; dense
# and recurrent programs keep BLAS's own threads for their GEMMs (two threads,
# docs/performance.md, before 2-D GEMMs were split: MLP step 1.67x and LSTM
# 1.23x slower with the pool, CNN step 1.13x faster).
POOLED_PROGRAMS = (frozenset(BATCHED) - {"relu", "relu_grad"}) | {"gemm_col2im"}


def pool_size(program) -> int:
    """The kernel pool an Executor gives ``program`` by default: the BLAS
    thread count for a program with convolution or pooling kernels, else 1 (the
    whole kernels on the calling thread, BLAS with its own threads). Without
    threadpoolctl, which holds BLAS to one thread during a pooled step, 1.

    >>> from graphnn.runtime.program import MemoryReport, Program
    >>> pool_size(Program({}, [], [], [], 1, MemoryReport(0, 0, 0)))
    1
    """
    if not any(ins.kernel in POOLED_PROGRAMS for ins in program.instructions):
        return 1
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return 1
    return default_threads()


def default_threads() -> int:
    """The BLAS library's thread count (threadpoolctl), else the CPU count.

    >>> default_threads() >= 1
    True
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [info.get("num_threads", 1) for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else (os.cpu_count() or 1)


class Pool:
    """``size - 1`` persistent worker threads; the calling thread is the last.

    ``run_all(tasks)`` runs ``tasks[0]`` on the caller and the others on the
    workers, and returns when all are done. Hand-offs go through plain locks
    (nothing is allocated per call but a context copy per worker, so a worker
    sees the caller's NumPy error and buffer settings). A worker's exception is
    raised in the caller.

    >>> out = []
    >>> p = Pool(3); p.run_all([lambda: out.append(0), lambda: out.append(1), lambda: out.append(2)])
    >>> sorted(out)
    [0, 1, 2]
    >>> p.close()
    """

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"threads must be a positive int, got {size!r}")
        self.size = size
        self._go = [threading.Lock() for _ in range(size - 1)]
        self._done = [threading.Lock() for _ in range(size - 1)]
        self._tasks = [None] * (size - 1)
        self._errors = [None] * (size - 1)
        self._threads = []
        self._closed = False
        for k in range(size - 1):
            self._go[k].acquire()
            self._done[k].acquire()

    def _start(self):
        # Lazily, on the first call: an Executor with nothing to split starts no thread.
        for k in range(self.size - 1):
            t = threading.Thread(target=self._work, args=(k,), daemon=True, name=f"graphnn-{k + 1}")
            t.start()
            self._threads.append(t)

    def _work(self, k):
        go, done = self._go[k], self._done[k]
        while True:
            go.acquire()
            task = self._tasks[k]
            if task is None:
                done.release()
                return
            try:
                task[0].run(task[1])
            except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                self._errors[k] = e
            self._tasks[k] = None
            done.release()

    def run_all(self, tasks) -> None:
        """Run ``tasks[0]`` here and the others on the workers; return when all are
        done, raising a worker's exception here.

        >>> p, seen = Pool(2), []
        >>> p.run_all([lambda: seen.append("caller"), lambda: seen.append("worker")]); sorted(seen)
        ['caller', 'worker']
        >>> p.run_all([lambda: None, lambda: 1 / 0])
        Traceback (most recent call last):
        ...
        ZeroDivisionError: division by zero
        >>> p.run_all([lambda: None] * 3)
        Traceback (most recent call last):
        ...
        ValueError: 3 tasks for a pool of 2
        >>> p.close()
        """
        workers = len(tasks) - 1
        if workers > self.size - 1:
            raise ValueError(f"{len(tasks)} tasks for a pool of {self.size}")
        if not self._threads:
            if self._closed:
                raise RuntimeError("this thread pool (Executor) is closed")
            self._start()
        for k in range(workers):
            self._tasks[k] = (contextvars.copy_context(), tasks[k + 1])
            self._go[k].release()
        try:
            tasks[0]()
        finally:
            for k in range(workers):
                self._done[k].acquire()
        for k in range(workers):
            if self._errors[k] is not None:
                e, self._errors[k] = self._errors[k], None
                raise e

    def close(self) -> None:
        """Stop the workers (idempotent).

        >>> p = Pool(2); p.run_all([lambda: None, lambda: None]); p.close(); p.close()
        >>> p.run_all([lambda: None])
        Traceback (most recent call last):
        ...
        RuntimeError: this thread pool (Executor) is closed
        """
        self._closed = True
        threads, self._threads = self._threads, []
        for k, t in enumerate(threads):
            self._tasks[k] = None
            self._go[k].release()
            self._done[k].acquire()
            t.join()


def chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous [start, stop) ranges covering range(n), sizes differing by at most 1.

    >>> chunks(7, 2)
    [(0, 4), (4, 7)]
    """
    parts = max(1, min(parts, n))
    q, r = divmod(n, parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(bounds[-1] + q + (k < r))
    return list(itertools.pairwise(bounds))


def split_call(factory, name: str, ins: list, outs: list, attrs: dict, pool: Pool | None,
               min_elements: int | None = None):
    """Bind ``factory`` whole, or once per batch chunk run on ``pool`` when the
    kernel is in ``BATCHED`` and its arrays allow (see the module's docstring).

    >>> from graphnn.runtime.kernels import KERNELS
    >>> x, y, p = np.arange(-4.0, 4.0).reshape(4, 2), np.empty((4, 2)), Pool(2)
    >>> relu = split_call(KERNELS["relu"], "relu", [x], [y], {}, p, min_elements=0)
    >>> relu.parts, [hi - lo for (_, ((lo, hi),)) in relu.touches]     # two images (32 bytes) each
    (2, [32, 32])
    >>> relu(); y[:, 1]
    array([0., 0., 1., 3.])
    >>> hasattr(split_call(KERNELS["relu"], "relu", [x], [y], {}, None), "parts")   # no pool: whole
    False
    >>> p.close()
    """
    min_elements = MIN_ELEMENTS if min_elements is None else min_elements
    if pool is not None and pool.size > 1 and name in ("matmul", "fused", "gemm_col2im"):
        from .split_gemm import split_gemm  # (it builds on this module)
        split = split_gemm(factory, name, ins, outs, attrs, pool, min_elements)
        if split is not None:
            return split
    if name == "fused" and pool is not None and pool.size > 1:
        split = _split_epilogue(ins, outs, attrs, pool, min_elements)
        if split is not None:
            return split
    if name in FLAT_UPDATES and pool is not None and pool.size > 1:
        split = _split_update(factory, ins, outs, attrs, pool)
        if split is not None:
            return split
    whole = bind(factory, ins, outs, attrs)
    batched = BATCHED.get(name)
    if name == "transpose" and list(attrs.get("perm", ()))[:1] == [0]:
        batched = (0,)              # the batch axis stays first: a copy per image
    if pool is None or pool.size < 2 or batched is None or not outs:
        return whole
    n = outs[0].shape[0] if outs[0].ndim else 0
    cut = [ins[i] for i in batched if i < len(ins)] + list(outs)
    if (n < 2 or outs[0].size < min_elements
            or any(a.ndim == 0 or a.shape[0] != n or not a.flags.c_contiguous for a in cut)):
        return whole
    return _bound_parts(factory, [([x[a:b] if i in batched else x for i, x in enumerate(ins)],
                                   [o[a:b] for o in outs]) for a, b in chunks(n, pool.size)], attrs, pool)


def _on_pool(parts, pool, before=None):
    """One call running ``before`` (if any), then each part's calls, part k on thread k."""
    tasks = [_sequence(calls) for calls in parts]

    def run_split():
        if before is not None:
            before()
        pool.run_all(tasks)
    run_split.parts = len(tasks)        # how many chunks (tests and profiles read it)
    run_split.tasks = tasks
    return run_split


def _bound_parts(factory, pieces, attrs, pool):
    """``factory`` bound once per piece [(operands, results)], piece k run on
    thread k; the call records the memory each piece reads and writes
    (``touches``), so that split calls in a row can share one hand-off
    (``segments``)."""
    run = _on_pool([[bind(factory, list(i), list(o), attrs)] for i, o in pieces], pool)
    run.touches = [(extents(i), extents(o)) for i, o in pieces]
    return run


def extents(arrays) -> list[tuple[int, int]]:
    """[start, stop) byte addresses spanned by each non-empty array.

    >>> a = np.zeros(10, "float32")
    >>> [hi - lo for lo, hi in extents([a[2:5], a[:0]])]
    [12]
    """
    return [byte_bounds(a) for a in arrays if a.size]


def _sequence(calls):
    if len(calls) == 1:
        return calls[0]

    def run():
        for call in calls:
            call()
    return run


def _split_epilogue(ins, outs, attrs, pool, min_elements):
    """A fused kernel as its anchor (whole), then its epilogue split by batch;
    None when the epilogue does not qualify. Operands and scratch are dealt out
    as the fused kernel does (runtime/kernels/fused.py)."""
    from .kernels import KERNELS
    anchor, epilogue = attrs["anchor"], attrs["epilogue"]
    out = outs[0]
    if (not epilogue or out.ndim < 2 or out.shape[0] < 2 or out.size < min_elements
            or not out.flags.c_contiguous):
        return None
    n_rows = out.shape[0]
    scratch = list(outs[1:])
    n = n_anchor = len(ins) - sum(spec["extra"] for spec in epilogue)
    k = len(KERNELS[anchor["kernel"]].scratch)
    # Here the GEMM could not be split (split_gemm.py): it runs whole, its epilogue split.
    head = bind(KERNELS[anchor["kernel"]], list(ins[:n]), [out, *scratch[:k]], anchor["attrs"])
    anchor_scratch = scratch[:k]
    del scratch[:k]
    steps = []
    for spec in epilogue:
        factory, batched = KERNELS[spec["kernel"]], EPILOGUE.get(spec["kernel"])
        operands = [out, *ins[n:n + spec["extra"]]]
        n += spec["extra"]
        own = scratch[:len(factory.scratch)]
        del scratch[:len(factory.scratch)]
        axis = spec["attrs"].get("axis", -1)
        if batched is None or (spec["kernel"] == "bias_add" and axis % out.ndim == 0):
            return None
        cut = [operands[i] for i in batched] + own
        if any(a.ndim == 0 or a.shape[0] != n_rows or not a.flags.c_contiguous for a in cut):
            return None
        steps.append((factory, batched, operands, own, spec["attrs"]))
    parts, touches = [], []
    for a, b in chunks(n_rows, pool.size):
        calls, reads, writes = [], [], []
        for factory, batched, operands, own, spec_attrs in steps:
            part_ins = [x[a:b] if i in batched else x for i, x in enumerate(operands)]
            part_outs = [out[a:b], *(s[a:b] for s in own)]
            calls.append(bind(factory, part_ins, part_outs, spec_attrs))
            reads += extents(part_ins)
            writes += extents(part_outs)
        parts.append(calls)
        touches.append((reads, writes))
    run = _on_pool(parts, pool, before=head)
    # In a segment (runtime/segments.py) the anchor is a call of its own, on the calling thread.
    run.touches, run.head = touches, (head, extents(ins[:n_anchor]), extents([out, *anchor_scratch]))
    return run


def _split_update(factory, ins, outs, attrs, pool):
    """An element-wise optimizer update (FLAT_UPDATES) over one flat range of
    its parameter per thread: every array shaped like the parameter is cut
    alike, the 0-d learning rate shared. None for small parameters."""
    p = ins[0]
    arrays = [x for x in (*ins, *outs) if x.ndim]
    if p.size < MIN_UPDATE_ELEMENTS or any(x.shape != p.shape or not x.flags.c_contiguous for x in arrays):
        return None
    flat_ins = [x.reshape(-1) if x.ndim else x for x in ins]
    flat_outs = [x.reshape(-1) for x in outs]
    return _bound_parts(factory, [([x[lo:hi] if x.ndim else x for x in flat_ins], [x[lo:hi] for x in flat_outs])
                                  for lo, hi in chunks(p.size, pool.size)], attrs, pool)


class single_blas:
    """Context: the BLAS libraries NumPy uses run on one thread inside it
    (threadpoolctl; nothing happens without it). Entering costs a few
    microseconds once the libraries are found (on the first use).

    >>> with single_blas():
    ...     pass
    """
    _libraries = None

    def __enter__(self):
        if single_blas._libraries is None:
            try:
                from threadpoolctl import ThreadpoolController
                single_blas._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
            except ImportError:
                single_blas._libraries = []
        self._before = [(lib, lib.num_threads) for lib in single_blas._libraries]
        for lib, k in self._before:
            if k != 1:
                lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, k in self._before:
            if k != 1:
                lib.set_num_threads(k)
        return False
