"""Max-pool backward against its forward, and a masked-copy routing measured
against today's kernel (thread CPU time, one BLAS thread, one pool thread),
on the CNN benchmark's two pooling shapes after a ReLU.

    python benchmarks/maxpool_routing.py [--rounds 7]

The masked variant routes each window offset's gradient with
``copyto(dx_offset, rest, where=hit)``: three operations per offset instead of
four, but masked copies are slow in NumPy; kept here as the measured reason it
was not adopted (docs/performance.md).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from graphnn.runtime.kernels import KERNELS, bind


def masked_routing(dy, x, y, dx, hit, rest):
    """The masked-copy backward for 2x2 windows of stride 2 (first maximum wins)."""
    xs = [x[:, :, i::2, j::2] for i in range(2) for j in range(2)]
    ds = [dx[:, :, i::2, j::2] for i in range(2) for j in range(2)]

    def run():
        dx.fill(0)
        np.copyto(rest, dy)
        for xo, do in zip(xs[:-1], ds[:-1]):
            np.equal(xo, y, out=hit)
            np.copyto(do, rest, where=hit)
            np.copyto(rest, 0, where=hit)
        np.copyto(ds[-1], rest)
    return run


def tile_order(x, dy, rounds):
    """The same pooling on x laid out in 2 x 2 tile order (max_pool_blocks and
    its gradient), as the lowering does for a convolution only a tiling pool reads."""
    n, c, h, w = x.shape
    xt = np.ascontiguousarray(x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 3, 5, 1, 2, 4)).reshape(
        n, 4, c, (h // 2) * (w // 2))
    y, dx = np.empty(dy.shape, x.dtype), np.empty_like(xt)
    forward = bind(KERNELS["max_pool_blocks"], [xt], [y], {})
    forward()
    scratch = [np.empty(dy.shape, bool), np.empty(dy.shape, x.dtype)]
    backward = bind(KERNELS["max_pool_blocks_grad"], [dy, xt, y], [dx, *scratch], {})
    times = {"forward": [], "backward": []}
    for _ in range(rounds):
        for name, fn in (("forward", forward), ("backward", backward)):
            t = time.thread_time()
            for _ in range(10):
                fn()
            times[name].append((time.thread_time() - t) / 10)
    fwd, bwd = (float(np.median(times[k])) for k in ("forward", "backward"))
    return f"forward {fwd * 1e3:.2f} ms, backward / forward {bwd / fwd:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for shape in [(64, 16, 28, 28), (64, 32, 14, 14)]:
            n, c, h, w = shape
            x = np.maximum(rng.standard_normal(shape).astype(np.float32), 0)     # after a ReLU
            y = np.empty((n, c, h // 2, w // 2), np.float32)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            forward = bind(KERNELS["max_pool2d"], [x], [y], {"pool_size": 2})
            forward()
            dx, dx_masked = np.empty_like(x), np.empty_like(x)
            scratch = [np.empty(y.shape, bool), np.empty(y.shape, np.float32), np.empty(y.shape, np.float32)]
            backward = bind(KERNELS["max_pool2d_grad"], [dy, x, y], [dx, *scratch], {"pool_size": 2})
            masked = masked_routing(dy, x, y, dx_masked, scratch[0], scratch[1])
            backward()
            masked()
            assert np.array_equal(dx, dx_masked), "the masked routing disagrees with the kernel"
            times = {"forward": [], "backward": [], "masked": []}
            for _ in range(args.rounds):
                for name, fn in (("forward", forward), ("backward", backward), ("masked", masked)):
                    t = time.thread_time()
                    for _ in range(10):
                        fn()
                    times[name].append((time.thread_time() - t) / 10)
            med = {k: float(np.median(v)) for k, v in times.items()}
            print(f"{shape}: forward {med['forward'] * 1e3:.2f} ms, backward / forward "
                  f"{med['backward'] / med['forward']:.2f}, masked routing / forward "
                  f"{med['masked'] / med['forward']:.2f}")
            print(f"{shape} in tile order (compiler/blocked.py): " + tile_order(x, dy, args.rounds))


if __name__ == "__main__":
    main()
