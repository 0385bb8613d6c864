"""Hoisting the LSTM's input projection out of the steps, measured against the
per-step products the LSTM runs today (lstm_scan's steps; thread CPU time, one BLAS
thread), on the benchmark LSTM: 128 units, 28 steps of 28 features, batch 64.

    python benchmarks/lstm_hoisting.py [--rounds 31]

Today each step multiplies the stacked weights [W; b; U] (K = 157 rows) by
[x_t; 1; h] in one GEMM, and the weights' gradient is a running sum of
[x_t; 1; h] dz_t^T (the per-step design before lstm_scan). Hoisted, the input part
[W; b]^T [x; 1] is one GEMM over all N*T columns before the recurrence, each
step multiplies U alone (K = 128) and adds its slice of the projection; in the
backward the running sum covers U alone and the input part of the gradient is
one GEMM over all steps' dz. Only the operations that differ between the two
are timed (the cell's elementwise passes are the same in both); the hoisted
backward is timed without the copies that would gather each step's dz into one
block, which favours it. Kept as the measured reason the hoisting was not
adopted: OpenBLAS's per-step cost here is about linear in K (157 against 128
rows: 1.23x the time for 1.23x the flops; 160 rows cost what 157 do), while the
projection's K = 29 GEMM runs at about 90 GFLOP/s against the step GEMM's 130
and the added slice is one more pass per step. Measured at load 0.6-0.9 (41
rounds): forward products 2.34 -> 2.90 ms per training step, the weights'
gradient 3.33 -> 3.72 ms (docs/architecture.md, "An LSTM scan, a GRU step: one op each").
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

N, T, F, U = 64, 28, 28, 128
G, K = 4 * U, F + 1 + U


def _inputs(stack, x, t, h):
    """[x_t^T; 1; h] into ``stack``, as a step's stack [x_t; 1; h_t-1] is filled."""
    np.copyto(stack[:F], x[:, t, :].T)
    stack[F].fill(1.0)
    np.copyto(stack[F + 1:], h)


def variants(rng):
    """{name: closure running that part of one training step (all 28 steps)}."""
    f32 = np.float32
    ws = rng.standard_normal((K, G)).astype(f32)
    x = rng.standard_normal((N, T, F)).astype(f32)
    h = rng.standard_normal((U, N)).astype(f32)
    dz = rng.standard_normal((G, T * N)).astype(f32)
    z, stack = np.empty((G, N), f32), np.empty((K, N), f32)
    xs, proj = np.empty((F + 1, T * N), f32), np.empty((G, T * N), f32)
    total, later = np.empty((K, G), f32), rng.standard_normal((K, G)).astype(f32)
    dx_step, dx_all = np.empty((F, N), f32), np.empty((F, T * N), f32)

    def project():
        np.copyto(xs[:F].reshape(F, T, N), x.transpose(2, 1, 0))
        xs[F].fill(1.0)

    def forward_now():
        for t in range(T):
            _inputs(stack, x, t, h)
            np.matmul(ws.T, stack, out=z)

    def forward_hoisted():
        project()
        np.matmul(ws[:F + 1].T, xs, out=proj)
        for t in range(T):
            np.matmul(ws[F + 1:].T, h, out=z)
            np.add(z, proj[:, t * N:(t + 1) * N], out=z)

    def weights_now():
        for t in range(T):
            _inputs(stack, x, t, h)
            np.matmul(stack, dz[:, t * N:(t + 1) * N].T, out=total)
            np.add(total, later, out=total)

    def weights_hoisted():
        for t in range(T):
            np.matmul(h, dz[:, t * N:(t + 1) * N].T, out=total[F + 1:])
            np.add(total[F + 1:], later[F + 1:], out=total[F + 1:])
        project()
        np.matmul(xs, dz.T, out=total[:F + 1])

    def input_grad_now():
        for t in range(T):
            np.matmul(ws[:F], dz[:, t * N:(t + 1) * N], out=dx_step)

    def input_grad_hoisted():
        np.matmul(ws[:F], dz, out=dx_all)

    return {"forward products, today": forward_now, "forward products, hoisted": forward_hoisted,
            "weight gradient, today": weights_now, "weight gradient, hoisted": weights_hoisted,
            "input gradient, today": input_grad_now, "input gradient, hoisted": input_grad_hoisted}


def gemm_shapes(rng):
    """The step GEMMs at K = 128 (U alone), 157 (today) and 160 (157 padded to 16)."""
    out = {}
    for k in (128, 157, 160):
        w, s = rng.standard_normal((k, G)).astype(np.float32), rng.standard_normal((k, N)).astype(np.float32)
        d = rng.standard_normal((G, N)).astype(np.float32)
        z, tot = np.empty((G, N), np.float32), np.empty((k, G), np.float32)
        out[f"{G}x{k} @ {k}x{N} (forward), 28 calls"] = lambda w=w, s=s, z=z: [
            np.matmul(w.T, s, out=z) for _ in range(T)]
        out[f"{k}x{N} @ {N}x{G} (weight gradient), 28 calls"] = lambda s=s, d=d, tot=tot: [
            np.matmul(s, d.T, out=tot) for _ in range(T)]
    return out


def interleaved(fns: dict, rounds: int) -> dict:
    """{name: sorted thread CPU seconds per call over ``rounds`` interleaved rounds}."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.thread_time()
            fn()
            times[name].append(time.thread_time() - t)
    return {k: sorted(v) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for title, fns in (("Per training step (28 steps)", variants(rng)), ("GEMM shapes", gemm_shapes(rng))):
            print(f"\n{title}: median ms (25th-75th percentile), {args.rounds} interleaved rounds\n")
            for name, v in interleaved(fns, args.rounds).items():
                q = len(v) // 4
                print(f"  {name:48s} {v[len(v) // 2] * 1e3:6.3f}  ({v[q] * 1e3:.3f}-{v[-1 - q] * 1e3:.3f})")


if __name__ == "__main__":
    main()
