"""Max-pool backward against its forward, in both layouts the compiler uses,
with and without kept routes (thread CPU time, one BLAS thread, one pool
thread), on the CNN benchmark's two pooling shapes after a ReLU.

    python benchmarks/maxpool_routing.py [--rounds 7] [--cnn [--threads 1,2] [--steps 5]]

For each shape and layout (image order: ``max_pool2d``; tile order:
``max_pool_blocks``, compiler/blocked.py) two pairs, timed interleaved:

- unrouted: the plain forward (what a prediction program runs) and the gradient
  that finds each window's first maximum again (x == y per window offset);
- routed: the forward that also writes the routes (one byte mask per window
  offset) and the gradient that only scatters dy by them (what a training
  program runs, compiler/ops/pool.py).

Each line gives the forward, the backward, their sum (ms, medians) and
backward / forward; the routed gradient is checked equal to the unrouted one.

``--cnn``: the benchmark CNN's training step (benchmarks/graphs.py, batch 64)
compiled with and without routes (``route_max_pools`` switched off), steps
interleaved: the step time of each (thread CPU time at one thread, wall time
at more), their ratio, and the per-kernel medians of the pooling kernels
(``Executor.profile``, wall time) of both programs, with the arena sizes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from graphnn.runtime.kernels import KERNELS, bind


def _scratch(name, in_shapes, out_shape, dtype):
    return [np.empty(shape, dt) for shape, dt in KERNELS[name].scratch_buffers(in_shapes, out_shape, dtype)]


def pairs(x, dy, layout):
    """{variant: (forward, backward, dx)} for x (N, C, H, W) pooled 2 x 2 in ``layout``."""
    n, c, h, w = x.shape
    y = np.empty(dy.shape, x.dtype)
    if layout == "tile order":
        x = np.ascontiguousarray(x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 3, 5, 1, 2, 4)).reshape(
            n, 4, c, (h // 2) * (w // 2))
        names, attrs, grad_attrs = ("max_pool_blocks", "max_pool_blocks_grad", "max_pool_blocks_routed",
                                    "max_pool_blocks_routed_grad"), {"pooled_hw": list(dy.shape[2:])}, {}
    else:
        names, attrs = ("max_pool2d", "max_pool2d_grad", "max_pool2d_routed", "max_pool2d_routed_grad"), \
            {"pool_size": 2}
        grad_attrs = {"input_hw": [h, w]}
    fwd, bwd, rfwd, rbwd = names
    dtype = str(x.dtype)
    dx, rdx = np.empty_like(x), np.empty_like(x)
    routes = np.empty((n, 4, *dy.shape[1:]), np.int8)
    forward = bind(KERNELS[fwd], [x], [y, *_scratch(fwd, [x.shape], y.shape, dtype)], attrs)
    forward()
    backward = bind(KERNELS[bwd], [dy, x, y], [dx, *_scratch(bwd, [dy.shape, x.shape, y.shape], x.shape, dtype)],
                    attrs)
    y2 = np.empty_like(y)
    routed = bind(KERNELS[rfwd], [x], [y2, routes, *_scratch(rfwd, [x.shape], y.shape, dtype)], attrs)
    routed_grad = bind(KERNELS[rbwd], [dy, routes],
                       [rdx, *_scratch(rbwd, [dy.shape, routes.shape], x.shape, dtype)], {**attrs, **grad_attrs})
    return {"unrouted": (forward, backward, dx), "routed": (routed, routed_grad, rdx)}


def measure(x, dy, layout, rounds, reps=10):
    """Median seconds {(variant, "forward"|"backward"): s} over interleaved rounds."""
    variants = pairs(x, dy, layout)
    for fwd, bwd, _ in variants.values():
        fwd()
        bwd()
    assert np.array_equal(variants["unrouted"][2], variants["routed"][2]), "the routed gradient disagrees"
    times = {(v, part): [] for v in variants for part in ("forward", "backward")}
    for _ in range(rounds):
        for v, (fwd, bwd, _) in variants.items():
            for part, fn in (("forward", fwd), ("backward", bwd)):
                t = time.thread_time()
                for _ in range(reps):
                    fn()
                times[v, part].append((time.thread_time() - t) / reps)
    return {k: float(np.median(v)) for k, v in times.items()}


def cnn_programs():
    """{"unrouted": program, "routed": program} of the benchmark CNN's training
    step, and its model (the weights both start from)."""
    import graphnn.compiler.lower as lower_pass
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from graphs import cnn, compiled
    programs = {}
    routing = lower_pass.route_max_pools
    for variant in ("unrouted", "routed"):
        lower_pass.route_max_pools = routing if variant == "routed" else (lambda rw: None)
        try:
            model, shape = compiled(cnn)
            programs[variant] = model.program("train", shape[0])
        finally:
            lower_pass.route_max_pools = routing
    return programs, model, shape


def cnn_step(rounds, thread_counts, steps=5):
    """The CNN training step with and without routes, interleaved (see the module's docstring)."""
    from graphnn.runtime.executor import Executor
    from threadpoolctl import threadpool_limits
    programs, model, shape = cnn_programs()
    rng = np.random.default_rng(0)
    feeds = {"x": rng.random(shape, dtype=np.float32), "target": rng.integers(0, 10, shape[0])}
    for v, p in programs.items():
        print(f"{v:8s} program: arena {p.memory.planned_bytes:,} B (lower bound {p.memory.lower_bound_bytes:,})")
    for n in thread_counts:
        clock = time.thread_time if n == 1 else time.perf_counter
        with threadpool_limits(limits=n):
            runs = {v: Executor(p, {k: a.copy() for k, a in model.variables.items()}, threads=n)
                    for v, p in programs.items()}
            for ex in runs.values():
                ex.feed(feeds)
                for _ in range(3):
                    ex.step()
            times = {v: [] for v in runs}
            for r in range(rounds):
                for v in (list(runs) if r % 2 else list(runs)[::-1]):
                    t = clock()
                    for _ in range(steps):
                        runs[v].step()
                    times[v].append((clock() - t) / steps)
            med = {v: float(np.median(t)) for v, t in times.items()}
            ratios = sorted(a / b for a, b in zip(times["routed"], times["unrouted"]))
            print(f"{n} thread(s), {'thread CPU' if n == 1 else 'wall'} time per step: unrouted "
                  f"{med['unrouted'] * 1e3:.2f} ms, routed {med['routed'] * 1e3:.2f} ms, routed / unrouted "
                  f"{med['routed'] / med['unrouted']:.3f} (rounds {ratios[0]:.3f}..{ratios[-1]:.3f})")
            for v, ex in runs.items():
                prof = ex.profile(feeds, repeats=max(rounds, 5))
                pool = [(node, k, t) for node, k, t in prof if "max_pool" in k]
                total = sum(t for *_, t in prof)
                print(f"  {v:8s} kernels {total * 1e3:.2f} ms: " + ", ".join(
                    f"{k} {t * 1e6:.0f} us" for _, k, t in pool))
                ex.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cnn", action="store_true", help="the benchmark CNN's step, routed and unrouted")
    parser.add_argument("--threads", default="1,2", help="thread counts for --cnn")
    parser.add_argument("--steps", type=int, default=5, help="steps per round for --cnn")
    args = parser.parse_args(argv)
    if args.cnn:
        return cnn_step(args.rounds, [int(n) for n in args.threads.split(",")], args.steps)
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for shape in [(64, 16, 28, 28), (64, 32, 14, 14)]:
            n, c, h, w = shape
            x = np.maximum(rng.standard_normal(shape).astype(np.float32), 0)     # after a ReLU
            dy = rng.standard_normal((n, c, h // 2, w // 2)).astype(np.float32)
            for layout in ("image order", "tile order"):
                med = measure(x, dy, layout, args.rounds)
                for v in ("unrouted", "routed"):
                    f, b = med[v, "forward"], med[v, "backward"]
                    print(f"{shape} {layout:11s} {v:8s}: forward {f * 1e3:.3f} ms, backward {b * 1e3:.3f} ms, "
                          f"sum {(f + b) * 1e3:.3f} ms, backward / forward {b / f:.2f}")


if __name__ == "__main__":
    main()
