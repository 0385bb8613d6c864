"""Splitting GEMMs over the kernel pool (runtime/threads.py).

Stacked (per-image) GEMMs split by images; large 2-D GEMMs, a dense layer's,
by their result's rows or columns; gemm_col2im by images and its columns
buffer. Each output element is computed by the same BLAS call on the same
operands as in the whole GEMM (tests/runtime/test_threads.py checks the bits).
"""
from __future__ import annotations

from . import threads
from .threads import EPILOGUE, chunks
from .threads import _bound_parts as bound_parts

# A stacked (per-image) GEMM splits by images: NumPy makes one BLAS call per
# image either way, so every output element is computed as the whole call does. The Executor runs
# BLAS on one thread while it has a pool (``single_blas``): the pool's threads
# are the parallelism, and BLAS's own threads would compete with them for the
# same cores (with OpenBLAS at two threads the split kernels were 5-20% slower).

def _gemm_batched(ins, out, attrs):
    """Indices of a stacked matmul's operands cut with its result's images, or
    None (2-D GEMMs: ``_split_gemm_2d``)."""
    if out.ndim >= 3:
        return tuple(i for i, a in enumerate(ins) if a.ndim == out.ndim and a.shape[0] == out.shape[0])
    return None


def split_gemm(factory, name, ins, outs, attrs, pool, min_elements):
    """A matmul, fused GEMM or gemm_col2im bound once per part on ``pool``, or
    None where it does not split (runtime/threads.py's ``split_call`` then
    tries the rest).

    >>> import numpy as np
    >>> from graphnn.runtime.kernels import KERNELS
    >>> from graphnn.runtime.threads import Pool
    >>> w, cols, out = np.ones((2, 3)), np.ones((4, 3, 5)), np.empty((4, 2, 5))
    >>> p = Pool(2)
    >>> run = split_gemm(KERNELS["matmul"], "matmul", [w, cols], [out], {}, p, min_elements=0)
    >>> run(); run.parts, float(out[3, 1, 4])
    (2, 3.0)
    >>> p.close()
    """
    out = outs[0]
    if out.ndim == 2 and name != "gemm_col2im":
        return _split_gemm_2d(factory, name, ins, outs, attrs, pool)
    n = out.shape[0] if out.ndim else 0
    if n < 2 or out.size < min_elements or not out.flags.c_contiguous:
        return None
    if name == "gemm_col2im":       # (w, dy) -> (image, scratch of a few images): share the scratch
        scratch = outs[1:]
        parts = min(pool.size, scratch[0].shape[0], n)
        if parts < 2:
            return None
        rows = chunks(scratch[0].shape[0], parts)
        return bound_parts(factory, [([ins[0], ins[1][a:b]], [out[a:b], *(s[r0:r1] for s in scratch)])
                                      for (a, b), (r0, r1) in zip(chunks(n, parts), rows)], attrs, pool)
    if name == "matmul":
        batched = _gemm_batched(ins, out, attrs)
    else:
        anchor, epilogue = attrs["anchor"], attrs["epilogue"]
        n_anchor = len(ins) - sum(p["extra"] for p in epilogue)
        if anchor["kernel"] != "matmul" or any(
                p["kernel"] == "bias_add" and p["attrs"].get("axis", -1) % out.ndim == 0 for p in epilogue):
            return None
        batched = _gemm_batched(ins[:n_anchor], out, anchor["attrs"])
        if batched is not None:     # an extra with the result's rows is cut too (relu_grad's y)
            batched += tuple(i for i in range(n_anchor, len(ins))
                             if ins[i].ndim == out.ndim and ins[i].shape[0] == n)
    if not batched or any(a.ndim == 0 or a.shape[0] != n or not a.flags.c_contiguous for a in outs[1:]):
        return None
    return bound_parts(factory, [([x[a:b] if i in batched else x for i, x in enumerate(ins)],
                                   [o[a:b] for o in outs]) for a, b in chunks(n, pool.size)], attrs, pool)


def _split_gemm_2d(factory, name, ins, outs, attrs, pool):
    """A 2-D GEMM (and its bias/ReLU epilogue) cut along its result's longer
    side: by rows, A's rows; by columns, B's columns; the other operand whole.
    Each output element is the same dot product over K either way, and OpenBLAS
    computes it the same way in a piece as in the whole product: tested bit for
    bit on the dense layers of the benchmark MLP and CNN, float32 and float64,
    with BLAS on one thread and on two (tests/runtime/test_threads.py). By
    columns for the CNN's (64, 1568) @ (1568, 128) and (64, 128) @ (128, 1568),
    by rows for its (1568, 64) @ (64, 128): halves of 108, 126 and 90 us where
    the whole took 202, 266 and 184 us (one thread, thread CPU time). None when
    the product is small (MIN_GEMM_MACS) or an operand does not qualify."""
    out = outs[0]
    if name == "matmul":
        mm, epilogue = attrs, []
    else:
        if attrs["anchor"]["kernel"] != "matmul":
            return None
        mm, epilogue = attrs["anchor"]["attrs"], attrs["epilogue"]
        if any(spec["kernel"] not in EPILOGUE for spec in epilogue):
            return None
    a, b, *extras = ins
    if a.ndim != 2 or b.ndim != 2 or len(extras) != sum(spec["extra"] for spec in epilogue):
        return None
    ta, tb = mm.get("transpose_a", False), mm.get("transpose_b", False)
    (m, n), k = out.shape, a.shape[0] if ta else a.shape[1]
    if m * n * k < threads.MIN_GEMM_MACS or any(s.shape != out.shape for s in outs[1:]):
        return None
    axis = 0 if m >= n else 1           # the longer side of the result

    def cut(x, lo, hi, along):
        return x[lo:hi] if along == 0 else x[:, lo:hi]

    kinds = []                          # how each epilogue operand is cut
    for spec in epilogue:
        for x in extras[len(kinds):len(kinds) + spec["extra"]]:
            if x.shape == out.shape:
                kinds.append("same")
            elif spec["kernel"] == "bias_add" and x.ndim == 1:
                kinds.append("cut" if spec["attrs"].get("axis", -1) % 2 == axis else "whole")
            else:
                return None
    pieces = []
    for lo, hi in chunks(out.shape[axis], pool.size):
        if axis == 0:                   # A's rows: a's columns when a is transposed
            pa, pb = cut(a, lo, hi, 1 if ta else 0), b
        else:                           # B's columns: b's rows when b is transposed
            pa, pb = a, cut(b, lo, hi, 0 if tb else 1)
        pe = [cut(x, lo, hi, axis) if kind == "same" else x[lo:hi] if kind == "cut" else x
              for x, kind in zip(extras, kinds)]
        pieces.append(([pa, pb, *pe], [cut(o, lo, hi, axis) for o in outs]))
    return bound_parts(factory, pieces, attrs, pool)
