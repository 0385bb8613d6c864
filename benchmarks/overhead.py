"""Per-step overhead and kernel ratios, in CPU time of the calling thread
(time.thread_time: what a loaded machine's other processes do not inflate),
one BLAS thread:

- the executor's cost per instruction on a tiny model (10-16-2, batch 8), and
  `Model.fit` per batch against a bare `Executor.step` (rounds interleaved: the
  median ratio and its quartiles);
- the same ratio for the MLP example's setting (Adam, batch 64, accuracy metric);
- max-pool backward / forward and col2im / im2col inside the CNN benchmark's step.

    python benchmarks/overhead.py
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from graphnn.runtime import Executor
from graphs import cnn, compiled

from graphnn import Graph, Model, optim


def cpu_seconds(fn, repeats):
    fn()
    t = time.thread_time()
    for _ in range(repeats):
        fn()
    return (time.thread_time() - t) / repeats


def step_and_fit(build, optimizer, batch, features, metrics=(), batches=200, rounds=7):
    """(instructions, bare step seconds, fit seconds per batch, the per-round
    ratios fit / step sorted): each round times ``batches`` bare steps, then one
    epoch of ``fit`` over ``batches`` batches, so the two see the same machine."""
    g, x, out = build()
    model = Model(g, inputs=x, outputs=out, seed=0)
    model.compile(loss="softmax_cross_entropy", optimizer=optimizer, metrics=list(metrics))
    program = model.program("train", batch)
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()})
    rng = np.random.default_rng(0)
    xs = rng.random((batch * batches, features), dtype=np.float32)
    ys = rng.integers(0, 2, len(xs))
    ex.feed({x.name: xs[:batch], "target": ys[:batch]})
    model.fit(xs, ys, epochs=1, batch_size=batch, verbose=0)            # binds the programs
    steps, fits = [], []
    for _ in range(rounds):
        steps.append(cpu_seconds(ex.step, batches))
        t = time.thread_time()
        model.fit(xs, ys, epochs=1, batch_size=batch, verbose=0)
        fits.append((time.thread_time() - t) / batches)
    ratios = sorted(f / s for f, s in zip(fits, steps))
    return len(program.instructions), float(np.median(steps)), float(np.median(fits)), ratios


def spread(ratios):
    """'median (25th-75th percentile)' of sorted ratios."""
    q = np.percentile(ratios, [25, 50, 75])
    return f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"


def tiny():
    g = Graph()
    x = g.input("x", (None, 10))
    return g, x, g.dense(g.dense(x, 16, activation="relu"), 2)


def mlp():
    g = Graph()
    x = g.input("x", (None, 784))
    h = g.dense(g.dense(x, 512, activation="relu"), 256, activation="relu")
    return g, x, g.dense(h, 10)


def kernel_ratios(repeats=15):
    model, shape = compiled(cnn)
    program = model.program("train", shape[0])
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()})
    rng = np.random.default_rng(0)
    ex.feed({"x": rng.random(shape, dtype=np.float32), "target": rng.integers(0, 10, shape[0])})
    times = {}
    for ins, call in zip(program.instructions, ex.calls):
        if ins.kernel in ("max_pool2d", "max_pool2d_grad", "max_pool_blocks", "max_pool_blocks_grad",
                          "im2col", "col2im"):
            times[ins.node, ins.kernel] = np.median([cpu_seconds(call, 1) for _ in range(repeats)])
        if ins.kernel == "gemm_col2im":     # its GEMM and its col2im, chunk by chunk, timed apart
            call()                          # once whole: its weights in offset order are set
            for k, label in ((0, "gemm_col2im: GEMM"), (1, "gemm_col2im: col2im")):
                def part(k=k, call=call):
                    for chunk in call.chunks:
                        chunk[k]()
                times[ins.node, label] = np.median([cpu_seconds(part, 1) for _ in range(repeats)])
    return times


def main():
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        n, step, fit, ratios = step_and_fit(tiny, optim.SGD(0.01, momentum=0.9), 8, 10, batches=1000)
        print(f"tiny model: {n} instructions, step {step * 1e6:.1f} us = {step / n * 1e6:.2f} us "
              f"per instruction; fit per batch {fit * 1e6:.1f} us = {spread(ratios)} x step")
        n, step, fit, ratios = step_and_fit(mlp, optim.Adam(5e-4), 64, 784, ["accuracy"], batches=40)
        print(f"MLP, Adam, batch 64, accuracy metric: step {step * 1e3:.2f} ms; fit per batch "
              f"{fit * 1e3:.2f} ms = {spread(ratios)} x step")
        times = kernel_ratios()
    for node, kernel in times:
        print(f"  {node:45s} {kernel:16s} {times[node, kernel] * 1e6:8.0f} us")


if __name__ == "__main__":
    main()
