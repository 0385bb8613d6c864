"""Kernels for lowered convolution and for pooling, on (N, C, H, W) arrays.

Windows are zero-copy strided views made once, when the kernel is bound.
Nothing loops in Python over pixels or batch items: im2col is one copy from a
6-D window view, col2im and the pooling kernels loop over kernel offsets only
(KH * KW vectorized operations).

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4); y = np.empty((1, 1, 2, 2))
>>> _ = max_pool2d([x], [y], pool_size=2, strides=2)(); y[0, 0]
array([[ 5.,  7.],
       [13., 15.]])
"""
from __future__ import annotations

from functools import partial

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import kernel


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _offset_slices(image, kernel, strides, dilation, out_hw):
    """For each kernel offset (i, j): the view of ``image`` that offset touches
    in every window, shaped (N, C, OH, OW)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilation, out_hw
    return [image[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            for i in range(kh) for j in range(kw)]


def _pool_offsets(image, pool_size, strides, out_hw, dilation=1):
    """_offset_slices for a pooling window (strides default to the size)."""
    return _offset_slices(image, _pair(pool_size), _pair(strides or pool_size), _pair(dilation), out_hw)


@kernel(operands=1)
def pad2d(ins, outs, pads, value=0.0):
    (x,), (y,) = ins, outs
    t, b, l, r = pads
    h, w = x.shape[2:]
    inner = y[:, :, t:t + h, l:l + w]
    borders = [y[:, :, :t], y[:, :, t + h:], y[:, :, t:t + h, :l], y[:, :, t:t + h, l + w:]]

    def run():
        for band in borders:                  # the arena is reused: refill every step
            band.fill(value)
        np.copyto(inner, x)
    return run


@kernel(operands=1)
def crop2d(ins, outs, pads):
    (x,), (y,) = ins, outs
    t, _, l, _ = pads
    return partial(np.copyto, y, x[:, :, t:t + y.shape[2], l:l + y.shape[3]])


@kernel(operands=1)
def im2col(ins, outs, kernel_size, strides=(1, 1), dilation=(1, 1), blocks=(1, 1), bias_row=False):
    """``blocks`` (ph, pw) other than (1, 1): the output positions in pooling-tile
    order, (i, j, OH / ph, OW / pw) for output pixel (ph * a + i, pw * b + j), so
    that a following ph x pw max pool of stride (ph, pw) reads whole blocks
    (``max_pool_blocks``). ``bias_row``: one more row, of ones."""
    (x,), (cols,) = ins, outs
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel_size), _pair(strides), _pair(dilation)
    n, c, h, w = x.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    s_n, s_c, s_h, s_w = x.strides
    ph, pw = _pair(blocks)
    shape = (n, c, kh, kw, ph, pw, oh // ph, ow // pw)
    windows = as_strided(x, shape, (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw,
                                    s_h * sh * ph, s_w * sw * pw), writeable=False)
    if (ph, pw) == (1, 1):                  # fewer, longer loops for NumPy
        windows = windows.reshape(n, c, kh, kw, oh, ow)
    rows = c * kh * kw
    target = cols[:, :rows].reshape(windows.shape)
    assert np.shares_memory(target, cols), "im2col: the columns must be viewable as windows"
    if not bias_row:
        return partial(np.copyto, target, windows)
    ones = cols[:, rows]

    def run():
        np.copyto(target, windows)
        ones.fill(1)                        # the arena is reused: refill every step
    return run


@kernel(operands=1)
def col2im(ins, outs, kernel_size, strides=(1, 1), dilation=(1, 1), channels=None, image_hw=None,
           wide=False):
    """Sum columns back into the image. ``wide`` columns (stride 1 only) hold a
    full image row per output row, OH * W positions, the extra ones zero: then
    each kernel offset adds one contiguous run per (n, c) instead of OH short rows."""
    (cols,), (image,) = ins, outs
    k, s, d = _pair(kernel_size), _pair(strides), _pair(dilation)
    n, c, h, w = image.shape
    oh, ow = (h - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if wide:
        flat = image.reshape(n, c, h * w)
        per_offset = cols.reshape(n, c, k[0] * k[1], oh * w)
        length = (oh - 1) * w + ow
        starts = [i * d[0] * w + j * d[1] for i in range(k[0]) for j in range(k[1])]
        pairs = [(flat[:, :, a:a + length], per_offset[:, :, q, :length])
                 for q, a in enumerate(starts)]
    else:
        per_offset = cols.reshape(n, c, k[0] * k[1], oh, ow)
        pairs = [(dst, per_offset[:, :, i])
                 for i, dst in enumerate(_offset_slices(image, k, s, d, (oh, ow)))]

    # The first offset's run is assigned, not added; only what it does not cover
    # is cleared (one pass over the image saved of the KH * KW + 1).
    if wide:
        uncovered = [flat[:, :, length:]]
    elif s == (1, 1):
        uncovered = [image[:, :, oh:], image[:, :, :oh, ow:]]
    else:
        uncovered = None
    (first_dst, first_src), rest = pairs[0], pairs[1:]

    def run():
        if uncovered is None:
            image.fill(0)
            np.add(first_dst, first_src, out=first_dst)
        else:
            for part in uncovered:
                part.fill(0)
            np.copyto(first_dst, first_src)
        for dst, src in rest:
            np.add(dst, src, out=dst)
    return run


@kernel(operands=2)
def gemm_col2im(ins, outs, kernel_size, strides=(1, 1), dilation=(1, 1), channels=None, image_hw=None,
                wide=False, tall=False):
    """col2im(w^T @ dy) for (F, K) weights and (N, F, L) gradients, a batch chunk
    at a time: the chunk's columns (``outs[1]``, planned scratch of (rows, K, L))
    are summed into the image while they are still in cache, instead of a whole
    (N, K, L) array written by the GEMM and read back by col2im.

    ``tall`` (stride 1): each chunk of dy (N, F, OH * OW) is first copied into
    ``outs[2]``, (rows, F, H * W), a pixel per position of the image (zero where
    no window starts), and the GEMM's rows are taken in (kernel offset, channel)
    order, so that each offset's columns for all channels of an image are one
    contiguous run, added to the image flattened, shifted by the offset. A
    column entry is non-zero only where its window lies inside the image, so
    nothing spills into the next channel; NumPy then makes KH * KW long loops per
    image instead of KH * KW * C short ones (a loop's start costs what 200 adds do)."""
    (w, dy), (image, cols, *padded) = ins, outs
    rows = cols.shape[0]
    if not tall:
        wt = w.T
        window = dict(kernel_size=kernel_size, strides=strides, dilation=dilation, wide=wide)
        parts = []
        for a in range(0, dy.shape[0], rows):
            b = min(a + rows, dy.shape[0])
            buf = cols[:b - a]
            parts.append((partial(np.matmul, wt, dy[a:b], out=buf), col2im([buf], [image[a:b]], **window)))
        prepare = None
    else:
        n, c, h, wd = image.shape
        k, d = _pair(kernel_size), _pair(dilation)
        f, q = w.shape[0], k[0] * k[1]
        plane = c * h * wd
        ordered = np.empty((q * c, f), dtype=w.dtype)       # w's rows in (offset, channel) order
        source = w.reshape(f, c, q).transpose(2, 1, 0)
        starts = [i * d[0] * wd + j * d[1] for i in range(k[0]) for j in range(k[1])]
        oh, ow = h - d[0] * (k[0] - 1), wd - d[1] * (k[1] - 1)
        (pad,) = padded
        inside = pad.reshape(rows, f, h, wd)[:, :, :oh, :ow]
        parts = []
        for a in range(0, n, rows):
            b = min(a + rows, n)
            buf, flat = cols[:b - a], image[a:b].reshape(b - a, plane)
            per = buf.reshape(b - a, q, plane)
            pairs = [(flat[:, s:], per[:, i, :plane - s]) for i, s in enumerate(starts)]
            parts.append((partial(_padded_gemm, inside[:b - a], dy[a:b].reshape(b - a, f, oh, ow),
                                  ordered, pad[:b - a], buf), partial(_shifted_sum, pairs)))

        def prepare():
            np.copyto(ordered.reshape(q, c, f), source)
            pad.fill(0)                 # the chunks write the inside only: the margins stay 0

    def run():
        if prepare is not None:
            prepare()
        for gemm, scatter in parts:
            gemm()
            scatter()
    run.chunks = parts          # (GEMM, col2im) per chunk: benchmarks/overhead.py times them apart
    return run


def _padded_gemm(inside, dy, w, padded, cols):
    np.copyto(inside, dy)
    np.matmul(w, padded, out=cols)


def _shifted_sum(pairs):
    """The first (offset 0, covering everything) assigned, the others added."""
    (dst, src), rest = pairs[0], pairs[1:]
    np.copyto(dst, src)
    for dst, src in rest:
        np.add(dst, src, out=dst)


@kernel(operands=1)
def max_pool2d(ins, outs, pool_size, strides=None, padding="valid", dilation=1, **_):
    (x,), (y,) = ins, outs
    first, *rest = _pool_offsets(x, pool_size, strides, y.shape[2:], dilation)

    def run():
        np.copyto(y, first)
        for view in rest:
            np.maximum(y, view, out=y)
    return run


@kernel(operands=3, scratch={"hit": (0, "bool"), "rest": (0, "same"), "part": (0, "same")})
def max_pool2d_grad(ins, outs, pool_size, strides=None, padding="valid", dilation=1, *, hit, rest,
                    part, **_):
    (dy, x, y), (dx,) = ins, outs
    k, st = _pair(pool_size), _pair(strides or pool_size)
    oh, ow = y.shape[2:]
    pairs = list(zip(_pool_offsets(x, pool_size, strides, (oh, ow), dilation),
                     _pool_offsets(dx, pool_size, strides, (oh, ow), dilation)))
    # Windows that tile the input exactly (stride = pool size) write each input
    # pixel once: assign instead of clearing and adding.
    tiles = st == k and _pair(dilation) == (1, 1) and dx.shape[2] == oh * k[0] and dx.shape[3] == ow * k[1]
    if tiles:
        (x0, dx0), *middle, (_, dx_last) = pairs

    def run_tiles():
        # The first maximum of each window takes dy; "rest" is the gradient of the
        # windows whose maximum is not found yet. The last offset needs no test:
        # a window with gradient left has its (first) maximum there.
        # The arithmetic runs on contiguous (N, C, OH, OW) arrays; the strided
        # windows of x and dx are touched once each (a strided operand makes a
        # NumPy loop several times slower here: rows of OW elements).
        np.equal(x0, y, out=hit)
        np.multiply(hit, dy, out=part)
        np.subtract(dy, part, out=rest)
        np.copyto(dx0, part)
        for xs, dxs in middle:
            np.equal(xs, y, out=hit)
            np.multiply(hit, rest, out=part)
            np.subtract(rest, part, out=rest)
            np.copyto(dxs, part)
        np.copyto(dx_last, rest)

    def run():
        np.copyto(rest, dy)                     # gradient not yet routed, per window
        dx.fill(0)
        for xs, dxs in pairs:                   # the first maximum of each window wins
            np.equal(xs, y, out=hit)
            np.multiply(hit, rest, out=part)
            np.add(dxs, part, out=dxs)
            np.subtract(rest, part, out=rest)
    return run_tiles if tiles and len(pairs) > 1 else run


CHUNK_BYTES = 1 << 19       # tile-order pooling works on batch chunks of about this much input


def _batch_chunks(x, arrays):
    """``arrays`` cut into batch chunks of about CHUNK_BYTES of ``x`` each: the
    several passes of a kernel over one chunk then stay in L2 (measured 20%
    faster than whole-batch passes on the CNN benchmark's first pooling)."""
    n = x.shape[0]
    step = max(1, min(n, CHUNK_BYTES // max(1, x[0].nbytes)))
    return [[a[i:i + step] for a in arrays] for i in range(0, n, step)]


@kernel(operands=1)
def max_pool_blocks(ins, outs, pooled_hw=None):
    """Max pooling of an image in tile order (N, C, P, OH * OW) (``im2col``'s
    ``blocks``): the maximum over the P blocks, each a contiguous run per image
    and channel, so every operation runs on unit strides."""
    (x,), (y,) = ins, outs
    n, c, p, m = x.shape
    flat = y.reshape(n, c, m)
    blocks = [x[:, :, k] for k in range(p)]

    def run():
        np.maximum(blocks[0], blocks[1], out=flat)
        for block in blocks[2:]:
            np.maximum(flat, block, out=flat)
    return run


@kernel(operands=3, scratch={"hit": (0, "bool"), "rest": (0, "same")})
def max_pool_blocks_grad(ins, outs, pooled_hw=None, *, hit, rest):
    """Each window's gradient to its first maximum, blocks in window order
    (row-major): block k takes what the blocks before it did not."""
    (dy, x, y), (dx,) = ins, outs
    n, c, p, m = x.shape
    flat = [a.reshape(n, c, m) for a in (dy, y, hit, rest)]
    chunks = [(dyc, yc, hitc, restc, [xc[:, :, k] for k in range(p)], [dxc[:, :, k] for k in range(p)])
              for dyc, yc, hitc, restc, xc, dxc in _batch_chunks(x, [*flat, x, dx])]

    def run():
        for dyc, yc, hitc, restc, xs, dxs in chunks:
            np.equal(xs[0], yc, out=hitc)
            np.multiply(hitc, dyc, out=dxs[0])
            np.subtract(dyc, dxs[0], out=restc)
            for xk, dxk in zip(xs[1:-1], dxs[1:-1]):
                np.equal(xk, yc, out=hitc)
                np.multiply(hitc, restc, out=dxk)
                np.subtract(restc, dxk, out=restc)
            np.copyto(dxs[-1], restc)
    return run


def _mean_scale(image_hw, pool_size, strides, out_hw, uncounted, dilation=1):
    """1 / (the number of counted pixels) per window: a scalar when every pixel
    counts, else an (OH, OW) map, made once by pooling a mask of counted pixels."""
    k = _pair(pool_size)
    if not any(uncounted or ()):
        return 1.0 / (k[0] * k[1])
    t, b, l, r = uncounted
    h, w = image_hw
    mask = np.zeros((1, 1, h, w))
    mask[:, :, t:h - b, l:w - r] = 1.0
    counts = sum(_pool_offsets(mask, pool_size, strides, out_hw, dilation))
    return 1.0 / np.maximum(counts[0, 0], 1.0)


@kernel(operands=1)
def avg_pool2d(ins, outs, pool_size, strides=None, padding="valid", uncounted=None, dilation=1, **_):
    (x,), (y,) = ins, outs
    first, *rest = _pool_offsets(x, pool_size, strides, y.shape[2:], dilation)
    scale = _mean_scale(x.shape[2:], pool_size, strides, y.shape[2:], uncounted, dilation)

    def run():
        np.copyto(y, first)
        for view in rest:
            np.add(y, view, out=y)
        np.multiply(y, scale, out=y)
    return run


@kernel(operands=1, scratch={"share": (0, "same")})
def avg_pool2d_grad(ins, outs, pool_size, strides=None, padding="valid", input_hw=None,
                    uncounted=None, dilation=1, *, share, **_):
    (dy,), (dx,) = ins, outs
    views = _pool_offsets(dx, pool_size, strides, dy.shape[2:], dilation)
    scale = _mean_scale(dx.shape[2:], pool_size, strides, dy.shape[2:], uncounted, dilation)

    def run():
        np.multiply(dy, scale, out=share)
        dx.fill(0)
        for view in views:
            np.add(view, share, out=view)
    return run


@kernel(operands=1)
def global_avg_pool(ins, outs):
    (x,), (y,) = ins, outs
    scale = 1.0 / (x.shape[2] * x.shape[3])

    def run():
        np.sum(x, axis=(2, 3), out=y)
        np.multiply(y, scale, out=y)
    return run


@kernel(operands=1)
def global_avg_pool_grad(ins, outs, input_hw=None):
    (dy,), (dx,) = ins, outs
    scale = 1.0 / (dx.shape[2] * dx.shape[3])
    return partial(np.multiply, dy[:, :, None, None], scale, out=dx)


@kernel(operands=1)
def upsample2d(ins, outs, factor=2):
    (x,), (y,) = ins, outs
    fh, fw = _pair(factor)
    n, c, h, w = x.shape
    blocks = y.reshape(n, c, h, fh, w, fw)
    return partial(np.copyto, blocks, x[:, :, :, None, :, None])


@kernel(operands=1)
def upsample2d_grad(ins, outs, factor=2):
    (dy,), (dx,) = ins, outs
    fh, fw = _pair(factor)
    n, c, h, w = dx.shape
    return partial(np.sum, dy.reshape(n, c, h, fh, w, fw), axis=(3, 5), out=dx)
