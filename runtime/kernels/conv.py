"""Kernels for lowered convolution (pad2d, crop2d, im2col, col2im, gemm_col2im)
and upsampling, on (N, C, H, W) arrays; pooling is in pool.py.

Windows are zero-copy strided views made once, when the kernel is bound.
Nothing loops in Python over pixels or batch items: im2col is one copy from a
6-D window view, col2im loops over kernel offsets only (KH * KW vectorized
operations).

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4); cols = np.empty((1, 4, 9))
>>> _ = im2col([x], [cols], kernel_size=2)(); cols[0, :, 0]       # the first window
array([0., 1., 4., 5.])
"""
from __future__ import annotations

import itertools
from functools import partial

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import kernel

# OpenBLAS (0.3.x, the NumPy wheels' BLAS) multiplies small matrices, M * N * K
# up to 100^3, with kernels that skip packing the operands; just above that its
# packing GEMM is up to twice as slow for the thin products here (K = the
# filters). A per-image GEMM above the limit is run as a few GEMMs of row
# pieces below it: gemm_col2im's tall GEMM of the benchmark CNN, (144, 32) @
# (32, 256) per image, 1.52 -> 1.22 ms a step (one thread, thread CPU time).
# Each output element is still one dot product over K, computed by one call.
SMALL_GEMM = 100 ** 3
MIN_PIECE_ROWS = 16     # thinner pieces lose more to call overhead than they gain


def row_pieces(m: int, n: int, k: int) -> list[tuple[int, int]]:
    """Row ranges of an (m, k) @ (k, n) product, each piece at most SMALL_GEMM
    multiply-adds where pieces of MIN_PIECE_ROWS rows allow (else as close as
    they allow).

    >>> row_pieces(144, 256, 32)
    [(0, 72), (72, 144)]
    >>> row_pieces(32, 196, 145)
    [(0, 32)]
    """
    parts = min(-(-m * n * k // SMALL_GEMM), m // MIN_PIECE_ROWS)
    if parts < 2:
        return [(0, m)]
    q, r = divmod(m, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + q + (i < r))
    return list(itertools.pairwise(bounds))


def _matmul_rows(w, x, out):
    """np.matmul(w, x, out=out) for a 2-D ``w`` and stacked ``x``, by row pieces
    of ``w`` (``row_pieces``): a list of calls."""
    return [partial(np.matmul, w[a:b], x, out=out[..., a:b, :])
            for a, b in row_pieces(w.shape[0], x.shape[-1], w.shape[1])]


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


@kernel(operands=1, batched=(0,))
def pad2d(ins, outs, pads, value=0.0):
    """The image inside a border of ``value``, ``pads`` (top, bottom, left, right) wide.

    >>> x, y = np.ones((1, 1, 1, 2)), np.empty((1, 1, 2, 3))
    >>> pad2d([x], [y], pads=(1, 0, 0, 1))(); y[0, 0]
    array([[0., 0., 0.],
           [1., 1., 0.]])
    """
    (x,), (y,) = ins, outs
    t, _b, l, _r = pads
    h, w = x.shape[2:]
    inner = y[:, :, t:t + h, l:l + w]
    borders = [y[:, :, :t], y[:, :, t + h:], y[:, :, t:t + h, :l], y[:, :, t:t + h, l + w:]]

    def run():
        for band in borders:                  # the arena is reused: refill every step
            band.fill(value)
        np.copyto(inner, x)
    return run


@kernel(operands=1, batched=(0,))
def crop2d(ins, outs, pads):
    """pad2d's inverse (and its gradient): the image inside the ``pads`` border.

    >>> x, y = np.arange(6.0).reshape(1, 1, 2, 3), np.empty((1, 1, 1, 2))
    >>> _ = crop2d([x], [y], pads=(1, 0, 0, 1))(); y[0, 0]
    array([[3., 4.]])
    """
    (x,), (y,) = ins, outs
    t, _, l, _ = pads
    return partial(np.copyto, y, x[:, :, t:t + y.shape[2], l:l + y.shape[3]])


@kernel(operands=1, batched=(0,))
def im2col(ins, outs, kernel_size, strides=(1, 1), dilation=(1, 1), blocks=(1, 1), bias_row=False):
    """``blocks`` (ph, pw) other than (1, 1): the output positions in pooling-tile
    order, (i, j, OH / ph, OW / pw) for output pixel (ph * a + i, pw * b + j), so
    that a following ph x pw max pool of stride (ph, pw) reads whole blocks
    (``max_pool_blocks``). ``bias_row``: one more row, of ones.

    Each column is a window, its rows in (channel, kernel row, kernel column) order:

    >>> x, cols = np.arange(9.0).reshape(1, 1, 3, 3), np.empty((1, 5, 4))
    >>> im2col([x], [cols], kernel_size=2, bias_row=True)(); cols[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.],
           [1., 1., 1., 1.]])
    """
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


@kernel(operands=1, batched=(0,))
def col2im(ins, outs, kernel_size, strides=(1, 1), dilation=(1, 1), channels=None, image_hw=None,
           wide=False):
    """Sum columns back into the image. ``wide`` columns (stride 1 only) hold a
    full image row per output row, OH * W positions, the extra ones zero: then
    each kernel offset adds one contiguous run per (n, c) instead of OH short rows.

    im2col's adjoint: columns of ones count the windows that hold each pixel.

    >>> cols, image = np.ones((1, 4, 4)), np.empty((1, 1, 3, 3))
    >>> col2im([cols], [image], kernel_size=2)(); image[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> rng = np.random.default_rng(0)
    >>> x, dcols = rng.normal(size=(1, 1, 3, 3)), rng.normal(size=(1, 4, 4))
    >>> xcols = np.empty((1, 4, 4)); _ = im2col([x], [xcols], kernel_size=2)()
    >>> col2im([dcols], [image], kernel_size=2)()
    >>> bool(np.isclose((dcols * xcols).sum(), (image * x).sum()))     # <im2col(x), c> = <x, col2im(c)>
    True
    """
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
    image instead of KH * KW * C short ones (a loop's start costs what 200 adds do),
    all in one reduction over a strided view of the chunk (``_shifted_offsets``:
    the benchmark CNN's 9 chunks, 428 -> 350 us, one thread).

    Here against col2im(w^T @ dy), with a one-image chunk:

    >>> rng = np.random.default_rng(0); w, dy = rng.normal(size=(2, 4)), rng.normal(size=(2, 2, 4))
    >>> image, cols = np.empty((2, 1, 3, 3)), np.empty((1, 4, 4))
    >>> gemm_col2im([w, dy], [image, cols], kernel_size=2)()
    >>> expected = np.empty_like(image); col2im([w.T @ dy], [expected], kernel_size=2)()
    >>> np.allclose(image, expected)
    True
    """
    (w, dy), (image, cols, *padded) = ins, outs
    rows = cols.shape[0]
    if not tall:
        wt = w.T
        window = dict(kernel_size=kernel_size, strides=strides, dilation=dilation, wide=wide)
        parts = []
        for a in range(0, dy.shape[0], rows):
            b = min(a + rows, dy.shape[0])
            buf = cols[:b - a]
            parts.append((partial(_run_all, _matmul_rows(wt, dy[a:b], buf)),
                          col2im([buf], [image[a:b]], **window)))
        prepare = None
    else:
        n, c, h, wd = image.shape
        k, d = _pair(kernel_size), _pair(dilation)
        f, q = w.shape[0], k[0] * k[1]
        plane = c * h * wd
        ordered = np.empty((q * c, f), dtype=w.dtype)       # w's rows in (offset, channel) order
        source = w.reshape(f, c, q).transpose(2, 1, 0)
        oh, ow = h - d[0] * (k[0] - 1), wd - d[1] * (k[1] - 1)
        (pad,) = padded
        inside = pad.reshape(rows, f, h, wd)[:, :, :oh, :ow]
        parts = []
        for a in range(0, n, rows):
            b = min(a + rows, n)
            buf, flat = cols[:b - a], image[a:b].reshape(b - a, plane)
            shifted = _shifted_offsets(buf, k, (d[0] * wd, d[1]), plane)
            parts.append((partial(_padded_gemm, inside[:b - a], dy[a:b].reshape(b - a, f, oh, ow),
                                  _matmul_rows(ordered, pad[:b - a], buf)),
                          partial(np.sum, shifted, axis=(1, 2), out=flat)))

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


def _padded_gemm(inside, dy, gemms):
    np.copyto(inside, dy)
    _run_all(gemms)


def _run_all(calls):
    for call in calls:
        call()


def _shifted_offsets(buf, kernel, step, plane):
    """Tall columns (rows, KH * KW, plane) as (rows, KH, KW, plane): entry
    (i, j, t) is offset (i, j)'s column entry at image pixel t, that is its
    entry t - s for the offset's shift s = i * step[0] + j * step[1], so that
    summing over (i, j) is the whole col2im, one reduction per image. For
    t < s the view reads the previous offset's last s entries: those are the
    columns of windows starting past the last output row or column, zero
    because dy was padded with zeros there, so they add nothing."""
    (kh, kw), item = kernel, buf.itemsize
    block = plane * item
    strides = (buf.strides[0], kw * block - step[0] * item, block - step[1] * item, item)
    return as_strided(buf, (buf.shape[0], kh, kw, plane), strides, writeable=False)


@kernel(operands=1)
def upsample2d(ins, outs, factor=2):
    """Each pixel repeated into a ``factor`` block (nearest neighbour).

    >>> x, y = np.array([[[[1.0, 2.0]]]]), np.empty((1, 1, 2, 4))
    >>> _ = upsample2d([x], [y], factor=2)(); y[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.]])
    """
    (x,), (y,) = ins, outs
    fh, fw = _pair(factor)
    n, c, h, w = x.shape
    blocks = y.reshape(n, c, h, fh, w, fw)
    return partial(np.copyto, blocks, x[:, :, :, None, :, None])


@kernel(operands=1)
def upsample2d_grad(ins, outs, factor=2):
    """Its gradient: each ``factor`` block of dy summed into its pixel.

    >>> dy, dx = np.arange(8.0).reshape(1, 1, 2, 4), np.empty((1, 1, 1, 2))
    >>> _ = upsample2d_grad([dy], [dx], factor=2)(); dx[0, 0]         # 0+1+4+5, 2+3+6+7
    array([[10., 18.]])
    """
    (dy,), (dx,) = ins, outs
    fh, fw = _pair(factor)
    n, c, h, w = dx.shape
    return partial(np.sum, dy.reshape(n, c, h, fh, w, fw), axis=(3, 5), out=dx)
