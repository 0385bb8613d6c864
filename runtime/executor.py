"""The Executor: binds a Program's kernels to views of one arena, then runs steps.

Persistent buffers (weights, optimizer state) are arrays the caller owns and
passes in, so several programs (training, evaluation, each batch size) share
one set of weights. Everything else lives in one preallocated arena.

>>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
>>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
...                      "y": Buffer("y", (2,), "float64", offset=64)},
...             instructions=[Instruction("relu", ["x"], ["y"])],
...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
>>> Executor(p).run({"x": [-1.0, 3.0]})["y"]
array([0., 3.])
"""
from __future__ import annotations

import contextlib
import weakref

import numpy as np

from .kernels import KERNELS
from .program import Program
from .segments import segments
from .threads import Pool, extents, pool_size, single_blas, split_call

ALIGN = 64
UFUNC_BUFFER = 1024      # elements; see Executor.step


def _aligned_arena(nbytes: int) -> np.ndarray:
    raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


class Executor:
    """Runs a Program. ``variables`` maps persistent buffer names to arrays;
    ``comm`` is the MPI communicator of collective kernels (default COMM_WORLD).

    ``threads``: how many threads the batch of the large kernels (per-image
    GEMMs, with BLAS on one thread during the step, pooling, im2col, col2im,
    ReLU) is split over (runtime/threads.py); 1 runs every kernel whole on the
    calling thread, with BLAS's own threads. The default, None, is
    ``runtime.threads.pool_size(program)``: the BLAS thread count for
    convolution and pooling programs, 1 for the others (where the pool
    measured slower, docs/performance.md). Results are the same bit for bit
    either way. Call ``close()`` (or drop the Executor) to stop the workers.

    One SGD step of y = x @ W, loss = mean((y - t)^2) from W = 0: the gradient is
    -x^T t / N there (N = 4 rows, 2 columns), so W becomes 0.1 x^T t / 4, in the
    caller's ``variables``. The learning rate is a variable too (a schedule sets it);
    a persistent buffer the caller does not pass starts at zero:

    >>> from graphnn.compiler.pipeline import _example_regression_graph, compile_graph
    >>> p = compile_graph(_example_regression_graph(), ["y"], 4, loss="loss",
    ...                   optimizer={"name": "sgd", "lr": 0.1})
    >>> weights = {"optimizer/lr": np.array(0.1, "float32")}; e = Executor(p, variables=weights, threads=1)
    >>> x, t = np.arange(12.0).reshape(4, 3) / 10, np.ones((4, 2))
    >>> float(e.run({"x": x, "t": t})["loss"])            # y = 0: the mean of t^2
    1.0
    >>> np.allclose(weights["W"], 0.1 * x.T @ t / 4)
    True
    """

    def __init__(self, program: Program, variables: dict | None = None, comm=None,
                 threads: int | None = None):
        self.program, self.comm = program, comm
        if threads is None:
            threads = pool_size(program)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"Executor threads must be a positive int, got {threads!r}")
        self.threads = threads
        self.pool = Pool(threads) if threads > 1 else None
        self.variables = {} if variables is None else variables
        self.arena = _aligned_arena(program.arena_bytes)
        self.views = {}
        for name, b in program.buffers.items():
            if b.persistent and b.view_of is not None:
                continue            # after its root, below
            self.views[name] = self._view(b)
        for name, b in program.buffers.items():
            if name not in self.views:
                self.views[name] = self.views[b.view_of].reshape(b.shape)
        self.calls = []
        for ins in program.instructions:
            if ins.kernel not in KERNELS:
                raise KeyError(f"instruction for node {ins.node!r}: unknown kernel {ins.kernel!r}")
            factory = KERNELS[ins.kernel]
            extra = {"comm": comm} if getattr(factory, "collective", False) else {}
            self.calls.append(split_call(factory, ins.kernel, [self.views[i] for i in ins.inputs],
                                         [self.views[o] for o in ins.outputs], {**ins.attrs, **extra},
                                         self.pool))
        # What a step runs: with a pool, one hand-off in which the calling
        # thread runs the calls that are not split and its parts of the split
        # ones, the workers theirs, each waiting where the memory one touches
        # another writes (runtime/segments.py). ``calls`` stays one per
        # instruction (profile, first_non_finite).
        self.step_calls = self.calls
        if self.pool is not None:
            whole = [None if hasattr(call, "tasks") else
                     (extents([self.views[i] for i in ins.inputs]), extents([self.views[o] for o in ins.outputs]))
                     for ins, call in zip(program.instructions, self.calls)]
            self.step_calls = segments(self.calls, self.pool, whole)
        if self.pool is not None:
            # The workers hold no reference to the Executor: stop them when it goes.
            self._finalizer = weakref.finalize(self, self.pool.close)

    def close(self) -> None:
        """Stop the worker threads (the Executor then runs no more steps).

    >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    >>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
    ...                      "y": Buffer("y", (2,), "float64", offset=64)},
    ...             instructions=[Instruction("relu", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    >>> e = Executor(p, threads=2); e.pool.size
    2
    >>> e.close(); e.close()                # a second close does nothing
    """
        if self.pool is not None:
            self._finalizer()

    def _view(self, b):
        if b.value is not None:
            return np.array(b.value, dtype=b.dtype).reshape(b.shape)
        if b.persistent:
            if b.name not in self.variables:
                self.variables[b.name] = np.zeros(b.shape, dtype=b.dtype)
            arr = self.variables[b.name]
            if arr.shape != tuple(b.shape) or arr.dtype != np.dtype(b.dtype):
                raise ValueError(f"variable {b.name!r} has shape {arr.shape} {arr.dtype}, "
                                 f"the program expects {tuple(b.shape)} {b.dtype}")
            return arr
        return self.arena[b.offset:b.offset + b.nbytes].view(b.dtype).reshape(b.shape)

    def feed(self, feeds: dict) -> None:
        """Copy each input into its buffer (casting to the buffer's dtype).

    >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    >>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
    ...                      "y": Buffer("y", (2,), "float64", offset=64)},
    ...             instructions=[Instruction("relu", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    >>> e = Executor(p); e.feed({"x": [-1, 3]}); e.views["x"]
    array([-1.,  3.])
    """
        for name in self.program.inputs:
            np.copyto(self.views[name], feeds[name], casting="unsafe")

    def step(self) -> None:
        """Run every instruction once, on whatever the input buffers hold.

    >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    >>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
    ...                      "y": Buffer("y", (2,), "float64", offset=64)},
    ...             instructions=[Instruction("relu", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    >>> e = Executor(p); e.views["x"][:] = [-2.0, 5.0]; e.step(); e.views["y"]
    array([0., 5.])
    """
        # NumPy's ufuncs buffer strided operands in blocks of `bufsize` elements;
        # the default (8192) means ~100 KB of temporaries per call. 1024 is as
        # fast here and keeps a step's transient allocations small.
        previous = np.setbufsize(UFUNC_BUFFER)
        try:
            if self.pool is None:
                for call in self.step_calls:
                    call()
            else:                       # the pool's threads split the GEMMs: BLAS on one thread
                with single_blas():
                    for call in self.step_calls:
                        call()
        finally:
            np.setbufsize(previous)

    def run(self, feeds: dict) -> dict:
        """One step: feed, run every instruction, return the output buffers
        (views, overwritten by the next step: copy what you keep).

    >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    >>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
    ...                      "y": Buffer("y", (2,), "float64", offset=64)},
    ...             instructions=[Instruction("relu", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    >>> e = Executor(p); first = e.run({"x": [-1.0, 3.0]})["y"]; kept = first.copy()
    >>> second = e.run({"x": [4.0, -5.0]})["y"]
    >>> second is first, kept, first
    (True, array([0., 3.]), array([4., 0.]))
    """
        self.feed(feeds)
        self.step()
        return {name: self.views[name] for name in self.program.outputs}

    def profile(self, feeds: dict, repeats: int = 10) -> list[tuple[str, str, float]]:
        """Median seconds of each instruction over ``repeats`` steps, as
        [(node, kernel, seconds)] in program order. Updates do run: profile a
        copy of the variables you care about.

    >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    >>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
    ...                      "y": Buffer("y", (2,), "float64", offset=64)},
    ...             instructions=[Instruction("relu", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    >>> [(node, kernel, seconds >= 0) for node, kernel, seconds in Executor(p).profile({"x": [1.0, 2.0]}, 3)]
    [('y', 'relu', True)]
    """
        from time import perf_counter
        self.feed(feeds)
        times = [[] for _ in self.calls]
        with single_blas() if self.pool is not None else contextlib.nullcontext():
            for _ in range(repeats):
                for k, call in enumerate(self.calls):
                    t = perf_counter()
                    call()
                    times[k].append(perf_counter() - t)
        return [(ins.node, ins.kernel, sorted(t)[len(t) // 2])
                for ins, t in zip(self.program.instructions, times)]

    def first_non_finite(self, feeds: dict) -> tuple[str, str] | None:
        """Run instruction by instruction until one writes NaN or inf; return
        (node, kernel) of that instruction, or None. For diagnosis: slow, and
        it stops before any later instruction (an update, say) runs.

    >>> from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    >>> p = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
    ...                      "y": Buffer("y", (2,), "float64", offset=64)},
    ...             instructions=[Instruction("log", ["x"], ["y"], node="y")],
    ...             inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    >>> e = Executor(p)
    >>> e.first_non_finite({"x": [1.0, 2.0]}), e.first_non_finite({"x": [1.0, 0.0]})   # log 0 = -inf
    (None, ('y', 'log'))
    >>> e.first_non_finite({"x": [np.nan, 1.0]})
    ('x', 'input')
    """
        with np.errstate(all="ignore"):
            return self._first_non_finite(feeds)

    def _first_non_finite(self, feeds):
        self.feed(feeds)
        for name in self.program.inputs:
            if not np.isfinite(self.views[name]).all():
                return name, "input"
        for name, b in self.program.buffers.items():
            if b.persistent and not np.isfinite(self.views[name]).all():
                return name, "persistent"
        for ins, call in zip(self.program.instructions, self.calls):
            try:
                call()
            except FloatingPointError:
                return ins.node, ins.kernel
            for o in ins.outputs:
                if not np.isfinite(self.views[o]).all():
                    return ins.node, ins.kernel
        return None
