"""`make bench`: training and inference speed against PyTorch and plain NumPy,
memory, and compile time, printed as Markdown tables of ratios.

Every speed figure comes from one run in which the variants take turns: each
round runs every variant for a few steps, and a ratio is the median of the
per-round ratios (with the 25th-75th percentile spread), so load on the
machine hits all variants alike. Each thread setting limits OpenBLAS (through
threadpoolctl) and PyTorch (torch.set_num_threads) alike.

    python benchmarks/run.py [--rounds 9] [--steps 5] [--threads 1,2] [--clock wall|cpu]
                             [--parts train,predict,memory,compile] [--models mlp,cnn,lstm,gru]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy_reference
import torch_models
from graphnn.runtime import Executor
from graphs import cnn, compiled, gru, lstm, mlp, sized_graph

from graphnn import Model, optim

GRAPHS = {"mlp": mlp, "cnn": cnn, "lstm": lstm, "gru": gru}
LABELS = {"mlp": "MLP 784-512-256-10, batch 128",
          "cnn": "CNN conv16-pool-conv32-pool-dense128-dense10, batch 64",
          "lstm": "LSTM 128 units, 28 steps of 28, dense10, batch 64",
          "gru": "GRU 128 units, 28 steps of 28, dense10, batch 64"}


def graphnn_variant(kind, fuse=True, purpose="train", batch=None, pool=None):
    """A closure running one step of the compiled graphnn program; ``pool``: the
    Executor's kernel thread count (default: the Executor's own choice, a pool
    for convolution programs when BLAS has several threads)."""
    model, shape = compiled(GRAPHS[kind], fuse)
    shape = (batch or shape[0], *shape[1:])
    program = model.program(purpose, shape[0])
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=pool)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.random(shape, dtype=np.float32)}
    if purpose == "train":
        feeds["target"] = rng.integers(0, 10, shape[0])
    ex.feed(feeds)
    return ex.step, shape


def numpy_variant(kind, shape):
    net = numpy_reference.MLP() if kind == "mlp" else numpy_reference.CNN()
    rng = np.random.default_rng(0)
    x, y = rng.random(shape, dtype=np.float32), rng.integers(0, 10, shape[0])
    return lambda: net.step(x, y)


@contextlib.contextmanager
def threads(n: int):
    """OpenBLAS and PyTorch limited to ``n`` threads inside the block."""
    from threadpoolctl import threadpool_limits
    if torch_models.available():
        torch_models.set_threads(n)
    with threadpool_limits(limits=n):
        yield


PAUSE = 0.3    # seconds between variants: OpenBLAS and OpenMP workers stop busy-waiting
WARM_UP = 0.1  # seconds of untimed steps after the pause (see interleaved)


CLOCK = time.perf_counter   # --clock cpu: time.thread_time, the CPU time of this thread


def interleaved(variants: dict, rounds: int, steps: int) -> dict:
    """{name: [seconds per step, one per round]}, the variants taking turns.

    The order rotates every round and each variant starts after a pause, so no
    variant always follows the one whose worker threads are still busy-waiting;
    after the pause the variant runs untimed for WARM_UP seconds, so the timed
    steps are the steady state a training loop runs in. (Right after an idle
    pause the first steps are slow, by amounts that differ between variants: a
    cold first LSTM step cost PyTorch 2.4 ms and graphnn 1.1; on two threads,
    graphnn's kernel pool took 5-6 steps, about 50 ms, to come down from 12.8
    to 7.7 ms, PyTorch 2-3.)"""
    for fn in variants.values():            # warm up: first-touch, caches, BLAS threads
        for _ in range(3):
            fn()
    names = list(variants)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(PAUSE)
            fn = variants[name]
            start = time.perf_counter()
            fn()
            while time.perf_counter() - start < WARM_UP:
                fn()
            t = CLOCK()
            for _ in range(steps):
                fn()
            times[name].append((CLOCK() - t) / steps)
    return times


def ratio_cell(times: dict, name: str, base: str) -> str:
    """Median of the per-round ratios (variant time / base time), and their spread."""
    r = np.array(times[name]) / np.array(times[base])
    lo, mid, hi = np.percentile(r, [25, 50, 75])
    return f"{mid:.2f} ({lo:.2f}-{hi:.2f})"


def table(title, rows_by_kind, thread_counts, rounds, steps, batch=None):
    print(f"\n## {title}\n")
    print("Ratio = the variant's time per step / graphnn's (above 1: graphnn is faster); "
          "median of the interleaved rounds, 25th-75th percentile in brackets.\n")
    print("| model | threads | variant | steps/s | graphnn speed-up |")
    print("|---|---:|---|---:|---:|")
    for kind, make in rows_by_kind:
        for n in thread_counts:
            with threads(n):
                variants = make(kind)
                times = interleaved(variants, rounds, steps)
            base = next(iter(variants))
            label = LABELS[kind] if batch is None else f"{LABELS[kind].rsplit(', batch', 1)[0]}, batch {batch}"
            for name, ts in times.items():
                cell = "" if name == base else ratio_cell(times, name, base)
                print(f"| {label} | {n} | {name} | {1 / np.median(ts):.1f} | {cell} |", flush=True)


def training_variants(kind):
    fused, shape = graphnn_variant(kind)
    variants = {"graphnn": fused}
    if _blas_threads() > 1:                         # the Executor's default against the other choice
        variants[f"graphnn, {_other_pool(fused)}"] = graphnn_variant(kind, pool=_other_threads(fused))[0]
    if kind in ("mlp", "cnn"):
        variants["graphnn unfused"] = graphnn_variant(kind, fuse=False)[0]
        variants["plain NumPy"] = numpy_variant(kind, shape)
    if torch_models.available():
        variants["PyTorch eager"] = torch_models.train_step(kind, shape)
    return variants


def _other_pool(step):
    """The kernel-pool choice the Executor of ``step`` (its bound ``step``) did not make."""
    return "kernel pool off" if step.__self__.pool is not None else "kernel pool on"


def _other_threads(step):
    return 1 if step.__self__.pool is not None else _blas_threads()


def _blas_threads():
    from graphnn.runtime.threads import default_threads
    return default_threads()


def predict_variants(kind, batch=256):
    step, shape = graphnn_variant(kind, purpose="predict", batch=batch)
    variants = {"graphnn predict": step}
    if _blas_threads() > 1:
        variants[f"graphnn predict, {_other_pool(step)}"] = graphnn_variant(
            kind, purpose="predict", batch=batch, pool=_other_threads(step))[0]
    if torch_models.available():
        variants["PyTorch no_grad"] = torch_models.predict_step(kind, shape)
    return variants


def memory():
    print("\n## Memory (bytes)\n")
    print("| model | program | naive | lower bound | planned | planned / lower bound |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, graph_fn in GRAPHS.items():
        model, shape = compiled(graph_fn)
        for purpose in ("train", "predict"):
            m = model.program(purpose, shape[0]).memory
            print(f"| {kind.upper()} | {purpose} (batch {shape[0]}) | {m.naive_bytes:,} | "
                  f"{m.lower_bound_bytes:,} | {m.planned_bytes:,} | "
                  f"{m.planned_bytes / m.lower_bound_bytes:.3f} |")
        persistent = sum(v.nbytes for v in model.variables.values())
        print(f"| {kind.upper()} | weights + optimizer state | | | {persistent:,} | |")


def _compile_once(build, batch):
    """(CPU seconds, wall seconds, graph, Program): compiling is one Python thread,
    so its CPU time is what a loaded machine does not inflate."""
    g, x, out = build()[:3]
    t, wall = time.thread_time(), time.perf_counter()
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.01, momentum=0.9))
    program = model.program("train", batch)
    return time.thread_time() - t, time.perf_counter() - wall, g, program


def compile_time(repeats=5):
    print("\n## Compile time (declared graph -> training Program)\n")
    print(f"Median of {repeats} compiles (min-max in brackets), from `Model(...)` to the Program: "
          "CPU seconds of the compiling thread, and wall seconds.\n")
    print("| graph | declared nodes | instructions | planned / lower bound | CPU seconds | wall seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    cases = [("LSTM-128 x 28 steps, batch 64", lstm, 64), ("GRU-128 x 28 steps, batch 64", gru, 64),
             ("residual MLP, 100 nodes, batch 32", lambda: sized_graph(100), 32),
             ("residual MLP, 2,000 nodes, batch 32", lambda: sized_graph(2000), 32)]
    for label, build, batch in cases:
        runs = [_compile_once(build, batch) for _ in range(repeats)]
        _, _, g, program = runs[-1]
        m = program.memory
        cells = []
        for k in (0, 1):
            times = sorted(r[k] for r in runs)
            cells.append(f"{np.median(times):.3f} ({times[0]:.3f}-{times[-1]:.3f})")
        print(f"| {label} | {len(g)} | {len(program.instructions)} | "
              f"{m.planned_bytes / m.lower_bound_bytes:.3f} | {' | '.join(cells)} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--parts", default="train,predict,memory,compile")
    parser.add_argument("--models", default="mlp,cnn,lstm,gru")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this thread's CPU time, which other processes on a loaded "
                             "machine do not inflate (one thread only: worker threads' time is "
                             "not counted)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.threads.split(",")]
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.thread_time
        if counts != [1]:
            parser.error("--clock cpu measures one thread: use --threads 1")
    parts, kinds = args.parts.split(","), args.models.split(",")
    import torch_models as tm
    print(f"Clock: {args.clock}. NumPy {np.__version__}; " + (f"PyTorch {__import__('torch').__version__}" if tm.available()
                                         else "PyTorch not installed: its rows are left out")
          + f"; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start.")
    if "train" in parts:
        table("Training steps (SGD with momentum, float32)",
              [(k, training_variants) for k in kinds], counts, args.rounds, args.steps)
    if "predict" in parts:
        table("Inference (predict, batch 256, float32)",
              [(k, predict_variants) for k in kinds if k in ("mlp", "cnn")], counts,
              args.rounds, args.steps, batch=256)
    if "memory" in parts:
        memory()
    if "compile" in parts:
        compile_time()
    print(f"\nLoad average {os.getloadavg()[0]:.1f} at the end.")


if __name__ == "__main__":
    main()
