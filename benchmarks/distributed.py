"""Data-parallel scaling on this machine, and a model of larger K (docs/distributed.md).

    mpiexec -n 2 python benchmarks/distributed.py [--rounds 7] [--steps 5]

Needs exactly two ranks. Every round measures, in turn and after a pause:

- K = 1: rank 0 alone runs the plain training step at the global batch B (rank 1
  sleeps, polling a non-blocking barrier, so it leaves its core free);
- K = 2: both ranks run the distributed step at B / 2, the gradient all-reduce
  timed inside the step (the allreduce_bucket kernels: packing and MPI);
- a plain mpi4py Allreduce of the same number of bytes, for comparison.

Each rank gets cores / K BLAS threads, so K = 1 and K = 2 both use the whole
machine. Ratios are medians of per-round ratios; the spread is the min..max.
A final table models K = 8 ... 64 from the measured compute per sample and the
ring all-reduce (2 (K - 1) / K of the bucket bytes sent per rank).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

CORES = os.cpu_count() or 1

if __name__ == "__main__":       # before NumPy loads: BLAS threads per rank
    ranks = int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(max(1, CORES // ranks)))

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graphnn.compiler.allreduce import SHARE  # noqa: E402
from graphnn.runtime import Executor  # noqa: E402
from graphs import cnn, compiled, mlp  # noqa: E402

from graphnn.distributed import Ranks, training_program  # noqa: E402

PAUSE = 0.2
MODELS = {"MLP 784-512-256-10": mlp, "CNN conv16-conv32-dense128-dense10": cnn}


def timed_allreduce(ex: Executor, spent: list) -> list:
    """Wrap the executor's all-reduce calls so that their seconds add up in spent[0];
    return the unwrapped calls."""
    raw = []
    for k, ins in enumerate(ex.program.instructions):
        if ins.kernel == "allreduce_bucket":
            raw.append(ex.calls[k])

            def call(inner=ex.calls[k]):
                t = time.perf_counter()
                inner()
                spent[0] += time.perf_counter() - t
            ex.calls[k] = call
    return raw


def idle_until_released(comm):
    """Wait for rank 0 without spinning a core (MPI's blocking barrier busy-polls)."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.001)


def measure(name, graph_fn, ranks, rounds, steps):
    from mpi4py import MPI
    comm = ranks.comm
    model, shape = compiled(graph_fn)
    batch = shape[0]
    rng = np.random.default_rng(ranks.rank)
    feeds = {"x": rng.random((batch, *shape[1:]), dtype=np.float32),
             "target": rng.integers(0, 10, batch)}
    local = batch // ranks.size
    dist = Executor(training_program(model, local), {k: v.copy() for k, v in model.variables.items()},
                    comm=comm)
    dist.feed({"x": feeds["x"][:local], "target": feeds["target"][:local], SHARE: 1 / ranks.size})
    spent = [0.0]
    allreduce_calls = timed_allreduce(dist, spent)
    bucket_bytes = sum(dist.program.buffers[i.outputs[0]].nbytes
                       for i in dist.program.instructions if i.kernel == "allreduce_bucket")
    buckets = sum(i.kernel == "allreduce_bucket" for i in dist.program.instructions)
    plain_buf = np.ones(bucket_bytes // 4, np.float32)
    single = alone_with_op = None
    if ranks.root:
        single = Executor(model.program("train", batch), {k: v.copy() for k, v in model.variables.items()})
        single.feed(feeds)
        # the same step with the all-reduce op on a communicator of one: its copies, no MPI
        alone_with_op = Executor(training_program(model, batch),
                                 {k: v.copy() for k, v in model.variables.items()}, comm=MPI.COMM_SELF)
        alone_with_op.feed({**feeds, SHARE: 1.0})
        for _ in range(3):
            single.step()
            alone_with_op.step()
    for _ in range(3):
        dist.step()
    one, one_op, two, reduce_time, alone, plain = [], [], [], [], [], []
    for _ in range(rounds):
        comm.Barrier()
        time.sleep(PAUSE)
        if ranks.root:                        # K = 1
            t = time.perf_counter()
            for _ in range(steps):
                single.step()
            one.append((time.perf_counter() - t) / steps)
            time.sleep(PAUSE)
            one_op.append(sum(seconds for _, kernel, seconds in alone_with_op.profile({**feeds, SHARE: 1.0}, steps)
                              if kernel in ("allreduce_bucket", "bucket_slice")))
            comm.Ibarrier().Wait()
        else:
            idle_until_released(comm)
        comm.Barrier()
        time.sleep(PAUSE)
        spent[0] = 0.0                        # K = 2
        t = time.perf_counter()
        for _ in range(steps):
            dist.step()
        two.append((time.perf_counter() - t) / steps)
        reduce_time.append(spent[0] / steps)
        comm.Barrier()                        # the op alone: pack + Allreduce
        t = time.perf_counter()
        for _ in range(steps):
            for call in allreduce_calls:
                call()
        alone.append((time.perf_counter() - t) / steps)
        comm.Barrier()                        # plain mpi4py, same bytes
        t = time.perf_counter()
        for _ in range(steps):
            comm.Allreduce(MPI.IN_PLACE, plain_buf, op=MPI.SUM)
        plain.append((time.perf_counter() - t) / steps)
    return dict(name=name, batch=batch, one=np.array(one or [np.nan]),
                one_op=np.array(one_op or [np.nan]), two=np.array(two),
                reduce=np.array(reduce_time), alone=np.array(alone), plain=np.array(plain), bytes=bucket_bytes,
                buckets=buckets)


def latency(comm, repeats=200):
    """Median seconds of an 8-byte Allreduce: the per-message cost alpha."""
    from mpi4py import MPI
    buf, times = np.ones(1, np.float64), []
    for _ in range(repeats):
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def spread(values):
    return f"{np.median(values):.3g} ({np.min(values):.3g}..{np.max(values):.3g})"


def ring_model(r, alpha, beta):
    """Seconds per global batch at K ranks: compute on B / K samples, then a ring
    all-reduce of the bucket (2 (K - 1) messages, 2 (K - 1) / K of its bytes)."""
    per_sample = np.median(r["one"]) / r["batch"]
    rows = []
    for k in (1, 2, 8, 16, 32, 64):
        comm_time = 0.0 if k == 1 else 2 * (k - 1) * alpha + 2 * (k - 1) / k * r["bytes"] / beta
        strong = per_sample * r["batch"] / k + comm_time          # global batch fixed
        weak = per_sample * r["batch"] + comm_time                # batch per rank fixed
        rows.append((k, strong, comm_time / strong, per_sample * r["batch"] / strong,
                     per_sample * r["batch"] / weak))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    ranks = Ranks()
    if ranks.size != 2:
        sys.exit("run under mpiexec -n 2 (K = 1 is measured on rank 0 alone)")
    results = [measure(name, fn, ranks, args.rounds, args.steps) for name, fn in MODELS.items()]
    alpha = latency(ranks.comm)
    if not ranks.root:
        return
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    print(f"## Scaling on this machine ({CORES} cores; K = 1 with {CORES} BLAS threads, "
          f"K = 2 with {threads} each; ms, median (min..max) of {args.rounds} rounds of "
          f"{args.steps} steps)\n")
    print("| model | global batch | K = 1 ms/batch | K = 2 ms/batch | speed-up | "
          "all-reduce in the step, ms | fraction of the step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {r['batch']} | {spread(r['one'] * 1e3)} | {spread(r['two'] * 1e3)} | "
              f"{spread(r['one'] / r['two'])} | {spread(r['reduce'] * 1e3)} | "
              f"{spread(r['reduce'] / r['two'])} |")
    print("\nThe op's own copies (packing share * g, the slices), timed per instruction on one "
          "rank, where MPI is not called:\n")
    print("| model | copies ms | of the K = 1 step |")
    print("|---|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {spread(r['one_op'] * 1e3)} | {spread(r['one_op'] / r['one'])} |")
    print("\nThe all-reduce in the step includes waiting for the slower rank. Alone (after a "
          "barrier), against a plain mpi4py Allreduce of the same bytes:\n")
    print("| model | buckets | bytes | op alone ms | plain Allreduce ms | op / plain | op GB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {r['buckets']} | {r['bytes']:,} | {spread(r['alone'] * 1e3)} | "
              f"{spread(r['plain'] * 1e3)} | {spread(r['alone'] / r['plain'])} | "
              f"{r['bytes'] / np.median(r['alone']) / 1e9:.2f} |")
    print(f"\n8-byte Allreduce (alpha): {alpha * 1e6:.1f} us")
    for r in results:
        beta = r["bytes"] / np.median(r["plain"])     # K = 2 ring: each rank sends the bytes once
        print(f"{r['name']}: Allreduce bandwidth {beta / 1e9:.2f} GB/s over {r['bytes']:,} bytes; "
              f"compute {np.median(r['one']) / r['batch'] * 1e6:.1f} us per sample")
    for label, beta_of in (("shared memory, as measured", lambda r: r["bytes"] / np.median(r["plain"])),
                           ("a 10 Gb/s network (1.25 GB/s, alpha 20 us)", lambda r: 1.25e9),
                           ("a 100 Gb/s network (12.5 GB/s, alpha 2 us)", lambda r: 12.5e9)):
        a = alpha if label.startswith("shared") else (20e-6 if "10 Gb" in label else 2e-6)
        print(f"\n### Model, {label}\n")
        print("| model | K | ms per global batch (B fixed) | all-reduce share | speed-up | "
              "weak-scaling efficiency (B/K fixed) |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in results:
            for k, t, share, speedup, weak in ring_model(r, a, beta_of(r)):
                print(f"| {r['name']} | {k} | {t * 1e3:.2f} | {share:.0%} | {speedup:.2f} | {weak:.0%} |")


if __name__ == "__main__":
    main()
