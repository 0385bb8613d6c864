"""What the step guard (graphnn/guard.py) costs: one training step under
`StepGuard.run` against a bare `Executor.step`, same executor, interleaved.

    python benchmarks/step_guard.py [--rounds 15] [--steps 20]

For the MLP (784-512-256-10, batch 128) and the CNN of benchmarks/graphs.py
(batch 64), with Adam (three variables per weight: the most a guard copies)
and SGD with momentum, at 1 and 2 BLAS threads (each in its own process, the
thread count set before NumPy loads). Prints the median of the per-round
ratios guarded / plain, and the spread (min..max).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(rounds: int, steps: int) -> None:
    import numpy as np

    sys.path.insert(0, os.path.dirname(HERE))
    from benchmarks.graphs import cnn, mlp
    from graphnn import Model, optim
    from graphnn.guard import StepGuard

    for graph_fn in (mlp, cnn):
        for opt_name, make in (("adam", lambda: optim.Adam(1e-3)),
                               ("sgd-momentum", lambda: optim.SGD(0.01, momentum=0.9))):
            g, x, out, shape = graph_fn()
            model = Model(g, inputs=x, outputs=out, seed=0)
            model.compile(loss="softmax_cross_entropy", optimizer=make())
            rng = np.random.default_rng(0)
            xs = rng.normal(size=shape).astype("float32")
            ys = rng.integers(0, 10, shape[0])
            model.fit(xs, ys, epochs=1, batch_size=shape[0], verbose=0)
            ex = model._executor("train", shape[0], next(iter(model._built)))
            guard = StepGuard()
            plain, guarded = ex.step, (lambda guard=guard, ex=ex: guard.run(ex))

            def run(step):
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                return (time.perf_counter() - start) / steps

            ratios, base = [], []
            for r in range(rounds):
                first, second = (plain, guarded) if r % 2 else (guarded, plain)
                t = {id(first): run(first), id(second): run(second)}
                ratios.append(t[id(guarded)] / t[id(plain)])
                base.append(t[id(plain)])
            ratios.sort()
            print(f"{graph_fn.__name__:4s} {opt_name:13s} threads={os.environ['OPENBLAS_NUM_THREADS']}: "
                  f"plain step {sorted(base)[len(base) // 2] * 1e3:7.2f} ms, guarded/plain "
                  f"{ratios[len(ratios) // 2]:.3f} ({ratios[0]:.3f}..{ratios[-1]:.3f})", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args.rounds, args.steps)
    else:
        for threads in (1, 2):
            env = {**os.environ, **{v: str(threads) for v in
                                    ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
            subprocess.run([sys.executable, __file__, "--child", "--rounds", str(args.rounds),
                            "--steps", str(args.steps)], env=env, check=True)
