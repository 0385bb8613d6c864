"""`make bench`: training speed, memory and compile time, printed as tables of ratios.

Every speed figure comes from one run in which the variants take turns:
each round runs every variant for a few steps, and a ratio is the median of
the per-round ratios, so load on the machine hits all variants alike.

    python benchmarks/run.py [--rounds 9] [--steps 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from graphs import cnn, compiled, mlp, sized_graph  # noqa: E402
import numpy_reference  # noqa: E402

from graphnn import Model, optim  # noqa: E402
from graphnn.runtime import Executor  # noqa: E402


def graphnn_variant(graph_fn, fuse):
    model, shape = compiled(graph_fn, fuse)
    program = model.program("train", shape[0])
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()})
    rng = np.random.default_rng(0)
    ex.feed({"x": rng.random(shape, dtype=np.float32), "target": rng.integers(0, 10, shape[0])})
    return ex.step, program


def numpy_variant(kind, shape):
    net = numpy_reference.MLP() if kind == "mlp" else numpy_reference.CNN()
    rng = np.random.default_rng(0)
    x, y = rng.random(shape, dtype=np.float32), rng.integers(0, 10, shape[0])
    return lambda: net.step(x, y)


def torch_variant(kind, shape):
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    if kind == "mlp":
        net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                            nn.Linear(256, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.rand(shape), torch.randint(0, 10, (shape[0],))

    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(net(x), y).backward()
        opt.step()
    return step


PAUSE = 0.3    # seconds between variants: OpenBLAS and OpenMP workers stop busy-waiting


def interleaved(variants: dict, rounds: int, steps: int) -> dict:
    """{name: [seconds per step, one per round]}, the variants taking turns.

    The order rotates every round and each variant starts after a pause, so no
    variant always follows the one whose worker threads are still busy-waiting."""
    for fn in variants.values():            # warm up: first-touch, caches, BLAS threads
        for _ in range(3):
            fn()
    names = list(variants)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(PAUSE)
            fn = variants[name]
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t) / steps)
    return times


def speed(rounds, steps):
    print("\n## Training steps per second (SGD with momentum, float32)\n")
    torch_threads = None
    try:
        import torch
        torch_threads = os.cpu_count()
        print(f"PyTorch {torch.__version__}, {torch_threads} threads; NumPy {np.__version__}, "
              f"BLAS threads: all {os.cpu_count()} cores unless OPENBLAS_NUM_THREADS is set "
              f"({os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}).\n")
    except ImportError:
        print("PyTorch is not installed: its column is left out.\n")
    print("| model | variant | steps/s | graphnn fused / variant |")
    print("|---|---|---:|---:|")
    for kind, graph_fn in (("mlp", mlp), ("cnn", cnn)):
        fused, _ = graphnn_variant(graph_fn, True)
        unfused, _ = graphnn_variant(graph_fn, False)
        shape = graph_fn()[3]
        variants = {"graphnn fused": fused, "graphnn unfused": unfused,
                    "plain NumPy": numpy_variant(kind, shape)}
        t = torch_variant(kind, shape)
        if t is not None:
            variants["PyTorch eager"] = t
        times = interleaved(variants, rounds, steps)
        label = {"mlp": "MLP 784-512-256-10, batch 128",
                 "cnn": "CNN conv16-pool-conv32-pool-dense128-dense10, batch 64"}[kind]
        for name, ts in times.items():
            ratio = np.median(np.array(ts) / np.array(times["graphnn fused"]))
            print(f"| {label} | {name} | {1 / np.median(ts):.1f} | {ratio:.2f} |")


def memory():
    print("\n## Memory (bytes)\n")
    print("| model | program | naive | lower bound | planned | planned / lower bound |")
    print("|---|---|---:|---:|---:|---:|")
    for label, graph_fn in (("MLP", mlp), ("CNN", cnn)):
        model, shape = compiled(graph_fn)
        for purpose in ("train", "predict"):
            m = model.program(purpose, shape[0]).memory
            print(f"| {label} | {purpose} (batch {shape[0]}) | {m.naive_bytes:,} | "
                  f"{m.lower_bound_bytes:,} | {m.planned_bytes:,} | "
                  f"{m.planned_bytes / m.lower_bound_bytes:.3f} |")
        persistent = sum(v.nbytes for v in model.variables.values())
        print(f"| {label} | weights + optimizer state | | | {persistent:,} | |")


def compile_time(repeats=3):
    print("\n## Compile time (graph -> training Program, batch 32)\n")
    print("| declared nodes | compiled nodes | instructions | seconds (median of 3) |")
    print("|---:|---:|---:|---:|")
    for nodes in (100, 2000):
        times = []
        for _ in range(repeats):
            g, x, out = sized_graph(nodes)
            t = time.perf_counter()
            model = Model(g, inputs=x, outputs=out)
            model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.01, momentum=0.9))
            program = model.program("train", 32)
            times.append(time.perf_counter() - t)
        built = next(iter(model._built.values()))["train"]
        print(f"| {len(g)} | {len(built)} | {len(program.instructions)} | {np.median(times):.3f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    speed(args.rounds, args.steps)
    memory()
    compile_time()


if __name__ == "__main__":
    main()
