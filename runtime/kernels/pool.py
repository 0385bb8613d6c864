"""Pooling kernels on (N, C, H, W) arrays: max and average pooling over windows
(strided views of the image, one vectorized operation per window offset), their
gradients, the tile-order max pool (compiler/blocked.py) and the global average.

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4); y = np.empty((1, 1, 2, 2))
>>> _ = max_pool2d([x], [y], pool_size=2, strides=2)(); y[0, 0]
array([[ 5.,  7.],
       [13., 15.]])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel
from .conv import _pair, _pool_offsets


@kernel(operands=1, batched=(0,))
def max_pool2d(ins, outs, pool_size, strides=None, padding="valid", dilation=1, **_):
    """The maximum of each window (strides default to the pool size).

    >>> x, y = np.arange(9.0).reshape(1, 1, 3, 3), np.empty((1, 1, 2, 2))
    >>> max_pool2d([x], [y], pool_size=2, strides=1)(); y[0, 0]     # overlapping 2x2 windows
    array([[4., 5.],
           [7., 8.]])
    """
    (x,), (y,) = ins, outs
    first, *rest = _pool_offsets(x, pool_size, strides, y.shape[2:], dilation)

    def run():
        np.copyto(y, first)
        for view in rest:
            np.maximum(y, view, out=y)
    return run


@kernel(operands=3, scratch={"hit": (0, "bool"), "rest": (0, "same"), "part": (0, "same")}, batched=(0, 1, 2))
def max_pool2d_grad(ins, outs, pool_size, strides=None, padding="valid", dilation=1, *, hit, rest,
                    part, **_):
    """Each window's gradient to its first maximum (row-major); checked here
    against central differences of the forward, on distinct values.

    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.normal(size=(1, 2, 4, 4)), rng.normal(size=(1, 2, 2, 2))
    >>> y, dx = np.empty((1, 2, 2, 2)), np.empty((1, 2, 4, 4))
    >>> max_pool2d([x], [y], pool_size=2)()
    >>> max_pool2d_grad([dy, x, y], [dx], pool_size=2, hit=np.empty(dy.shape, bool), rest=np.empty_like(dy),
    ...                 part=np.empty_like(dy))()
    >>> def loss(x):
    ...     out = np.empty_like(y); max_pool2d([x], [out], pool_size=2)(); return (dy * out).sum()
    >>> steps = np.eye(x.size).reshape(-1, *x.shape) * 1e-6
    >>> np.allclose(dx.ravel(), [(loss(x + e) - loss(x - e)) / 2e-6 for e in steps])
    True
    >>> x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]]); y = np.full((1, 1, 1, 1), 5.0); dy = np.full_like(y, 7.0)
    >>> dx = np.empty_like(x); max_pool2d_grad([dy, x, y], [dx], pool_size=2, hit=np.empty(dy.shape, bool),
    ...                                         rest=np.empty_like(dy), part=np.empty_like(dy))()
    >>> dx[0, 0]                            # a tie: the first maximum takes it all
    array([[0., 7.],
           [0., 0.]])
    """
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
# The routed forward makes twelve passes over a chunk, each short on small chunks:
# 2 MB chunks measured 7-14% faster than 512 KB ones on the CNN's pool shapes, and
# fewer, longer calls hand the GIL around less when the kernel pool splits it.
ROUTED_CHUNK_BYTES = 1 << 21


def _batch_chunks(x, arrays, chunk_bytes=None):
    """``arrays`` cut into batch chunks of about ``chunk_bytes`` (CHUNK_BYTES) of
    ``x`` each: the several passes of a kernel over one chunk then stay in L2
    (measured 20% faster than whole-batch passes on the CNN benchmark's first
    pooling gradient)."""
    n = x.shape[0]
    step = max(1, min(n, (chunk_bytes or CHUNK_BYTES) // max(1, x[0].nbytes)))
    return [[a[i:i + step] for a in arrays] for i in range(0, n, step)]


@kernel(operands=1, batched=(0,))
def max_pool_blocks(ins, outs, pooled_hw=None):
    """Max pooling of an image in tile order (N, P, C, OH * OW) (compiler/blocked.py):
    the maximum over the P blocks, each one contiguous run per image, so every
    operation runs on unit strides in long loops.

    >>> x = np.array([3.0, 0, 1, 5, 3, 2, 0, 5]).reshape(1, 4, 1, 2)     # N=1, P=4 blocks, C=1, M=2
    >>> y = np.empty((1, 1, 1, 2)); max_pool_blocks([x], [y])(); y.ravel()
    array([3., 5.])
    """
    (x,), (y,) = ins, outs
    n, p, c, m = x.shape
    flat = y.reshape(n, c, m)
    blocks = [x[:, k] for k in range(p)]

    def run():
        np.maximum(blocks[0], blocks[1], out=flat)
        for block in blocks[2:]:
            np.maximum(flat, block, out=flat)
    return run


@kernel(operands=3, scratch={"hit": (0, "bool"), "rest": (0, "same")}, batched=(0, 1, 2))
def max_pool_blocks_grad(ins, outs, pooled_hw=None, *, hit, rest):
    """Each window's gradient to its first maximum, blocks in window order
    (row-major): block k takes what the blocks before it did not.

    >>> x = np.array([3.0, 0, 1, 5, 3, 2, 0, 5]).reshape(1, 4, 1, 2)     # ties: 3 in blocks 0 and 2
    >>> y, dy, dx = np.array([[[[3.0, 5.0]]]]), np.array([[[[10.0, 20.0]]]]), np.empty((1, 4, 1, 2))
    >>> max_pool_blocks_grad([dy, x, y], [dx], hit=np.empty(dy.shape, bool), rest=np.empty_like(dy))()
    >>> dx[0, :, 0]                         # block 0 takes 10, block 1 takes 20
    array([[10.,  0.],
           [ 0., 20.],
           [ 0.,  0.],
           [ 0.,  0.]])
    """
    (dy, x, y), (dx,) = ins, outs
    n, p, c, m = x.shape
    flat = [a.reshape(n, c, m) for a in (dy, y, hit, rest)]
    chunks = [(dyc, yc, hitc, restc, [xc[:, k] for k in range(p)], [dxc[:, k] for k in range(p)])
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


# Routed max pooling: in a training program the forward also keeps, for every
# window offset k, a mask ``routes[:, k]`` of the windows whose first maximum is
# at k (compiler/ops/pool.py, ``route_max_pools``); the gradient then only
# scatters dy by them, and the pool's input need not live until the backward.
# The forward finds the routes as it takes the maxima: offset k leads when its
# value is greater than the maximum of the offsets before it (strictly: a tie
# keeps the earlier offset), and a window's first maximum is the last offset
# that led. Same maxima, same routes as the comparisons x == y of the unrouted
# gradient, for every input without NaN (a window holding a NaN has a NaN
# maximum, and a loss that the step guard rejects).
#
# A route is a byte of all ones (-1 as int8) or zeros: the gradient is then a
# bitwise AND of dy's bits with the route, widened to dy's width (25% faster
# than a product with a boolean, which NumPy casts to float first), giving dy
# or +0.0 exactly.

def _lead(y, block, lead):
    """One offset of the running maximum: ``lead`` where ``block`` beats ``y``."""
    np.greater(block, y, out=lead)
    np.maximum(y, block, out=y)


def _first_leads(leads, later):
    """Turn the masks of the offsets that led (booleans, in window order) into
    the mask of each window's first maximum, in place; ``later`` is scratch."""
    if len(leads) == 1:
        leads[0].fill(True)
        return
    if len(leads) > 2:
        np.logical_or(leads[-1], leads[-2], out=later)
        np.greater(leads[-2], leads[-1], out=leads[-2])     # led, and no later offset did
        for lead in leads[-3:0:-1]:
            np.greater(lead, later, out=lead)
            np.logical_or(later, lead, out=later)
        np.logical_not(later, out=leads[0])
    else:
        np.logical_not(leads[1], out=leads[0])


def _bits(a):
    """``a``'s bytes as signed integers of its width (float32 -> int32)."""
    return a.view(f"i{a.dtype.itemsize}")


@kernel(operands=1, scratch={"window": ("out", "same"), "later": ("out", "bool")}, batched=(0,))
def max_pool2d_routed(ins, outs, pool_size, strides=None, padding="valid", dilation=1, *, window, later,
                      **_):
    """max_pool2d, and the routes of its gradient (N, window offsets, C, OH, OW).
    Each strided window view is read once, into a contiguous copy: the
    comparisons and maxima then run on unit strides.

    >>> x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])
    >>> y, routes = np.empty((1, 1, 1, 1)), np.empty((1, 4, 1, 1, 1), "int8")   # 4 window offsets
    >>> max_pool2d_routed([x], [y, routes], pool_size=2, window=np.empty_like(y),
    ...                   later=np.empty(y.shape, bool))()
    >>> float(y[0, 0, 0, 0]), routes.ravel().tolist()       # the first of the tied maxima leads
    (5.0, [0, -1, 0, 0])
    """
    (x,), (y, routes) = ins, outs
    first, *rest = _pool_offsets(x, pool_size, strides, y.shape[2:], dilation)
    if routes.shape[1] != len(rest) + 1:
        raise ValueError(f"max_pool2d_routed: the routes hold {routes.shape[1]} window offsets, "
                         f"the window has {len(rest) + 1}")
    leads = [routes[:, k].view(bool) for k in range(len(rest) + 1)]

    def run():
        np.copyto(y, first)
        for view, lead in zip(rest, leads[1:]):
            np.copyto(window, view)
            _lead(y, window, lead)
        _first_leads(leads, later)
        np.negative(routes, out=routes)             # true (1) -> all ones (-1)
    return run


@kernel(operands=2, scratch={"part": (0, "same")}, batched=(0, 1))
def max_pool2d_routed_grad(ins, outs, pool_size, strides=None, padding="valid", dilation=1,
                           input_hw=None, *, part, **_):
    """Each window's gradient to the pixel its route names (max_pool2d_routed).
    The masked gradient goes through the contiguous ``part``: written straight
    into a strided view, its route strided by images, it runs twice as long.

    >>> routes = np.array([0, -1, 0, 0], "int8").reshape(1, 4, 1, 1, 1)    # offset (0, 1) holds the maximum
    >>> dy, dx = np.full((1, 1, 1, 1), 7.0), np.empty((1, 1, 2, 2))
    >>> max_pool2d_routed_grad([dy, routes], [dx], pool_size=2, part=np.empty_like(dy))(); dx[0, 0]
    array([[0., 7.],
           [0., 0.]])
    """
    (dy, routes), (dx,) = ins, outs
    views = _pool_offsets(dx, pool_size, strides, dy.shape[2:], dilation)
    leads = [routes[:, k] for k in range(len(views))]
    dy_bits, part_bits = _bits(dy), _bits(part)
    k, st = _pair(pool_size), _pair(strides or pool_size)
    tiles = (st == k and _pair(dilation) == (1, 1)
             and tuple(dx.shape[2:]) == (dy.shape[2] * k[0], dy.shape[3] * k[1]))

    def run_tiles():                # each pixel in exactly one window: assign
        for lead, view in zip(leads, views):
            np.bitwise_and(dy_bits, lead, out=part_bits)
            np.copyto(view, part)

    def run():                      # pixels in several windows, or in none
        dx.fill(0)
        for lead, view in zip(leads, views):
            np.bitwise_and(dy_bits, lead, out=part_bits)
            np.add(view, part, out=view)
    return run_tiles if tiles else run


@kernel(operands=1, scratch={"later": ("out", "bool")}, batched=(0,))
def max_pool_blocks_routed(ins, outs, pooled_hw=None, *, later):
    """max_pool_blocks, and the routes of its gradient (N, blocks, C, OH, OW).

    >>> x = np.array([3.0, 0, 1, 5, 3, 2, 0, 5]).reshape(1, 4, 1, 2)
    >>> y, routes = np.empty((1, 1, 1, 2)), np.empty((1, 4, 1, 1, 2), "int8")
    >>> max_pool_blocks_routed([x], [y, routes], later=np.empty(y.shape, bool))()
    >>> y.ravel().tolist(), routes.reshape(4, 2).tolist()   # ties go to the first block
    ([3.0, 5.0], [[-1, 0], [0, -1], [0, 0], [0, 0]])
    """
    (x,), (y, routes) = ins, outs
    n, p, c, m = x.shape
    if routes.shape[1] != p:
        raise ValueError(f"max_pool_blocks_routed: the routes hold {routes.shape[1]} window offsets, "
                         f"the input has {p} blocks")
    flat = [a.reshape(n, c, m) for a in (y, later)]
    chunks = [(yc, laterc, rc, [xc[:, k] for k in range(p)], [rc[:, k].view(bool) for k in range(p)])
              for yc, laterc, xc, rc in _batch_chunks(x, [*flat, x, routes.reshape(n, p, c, m)],
                                                      ROUTED_CHUNK_BYTES)]

    def run():
        for yc, laterc, rc, blocks, leads in chunks:
            np.greater(blocks[1], blocks[0], out=leads[1])
            np.maximum(blocks[0], blocks[1], out=yc)
            for block, lead in zip(blocks[2:], leads[2:]):
                _lead(yc, block, lead)
            _first_leads(leads, laterc)
            np.negative(rc, out=rc)                 # true (1) -> all ones (-1)
    return run


@kernel(operands=2, batched=(0, 1))
def max_pool_blocks_routed_grad(ins, outs, pooled_hw=None):
    """Each window's gradient to the block its route names (max_pool_blocks_routed).

    >>> routes = np.array([[-1, 0], [0, -1], [0, 0], [0, 0]], "int8").reshape(1, 4, 1, 1, 2)
    >>> dy, dx = np.array([[[[10.0, 20.0]]]]), np.empty((1, 4, 1, 2))
    >>> max_pool_blocks_routed_grad([dy, routes], [dx])(); dx.reshape(4, 2).tolist()
    [[10.0, 0.0], [0.0, 20.0], [0.0, 0.0], [0.0, 0.0]]
    """
    (dy, routes), (dx,) = ins, outs
    n, p, c, m = dx.shape
    flat, leads, bits = _bits(dy).reshape(n, c, m), routes.reshape(n, p, c, m), _bits(dx)
    blocks = [(leads[:, k], bits[:, k]) for k in range(p)]

    def run():
        for lead, block in blocks:
            np.bitwise_and(flat, lead, out=block)
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


@kernel(operands=1, batched=(0,))
def avg_pool2d(ins, outs, pool_size, strides=None, padding="valid", uncounted=None, dilation=1, **_):
    """The mean of each window; ``uncounted`` (top, bottom, left, right) rows and
    columns of padding are left out of the count.

    >>> x, y = np.arange(16.0).reshape(1, 1, 4, 4), np.empty((1, 1, 2, 2))
    >>> avg_pool2d([x], [y], pool_size=2)(); y[0, 0]       # (0 + 1 + 4 + 5) / 4, ...
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    >>> padded = np.array([[[[0.0, 0.0], [0.0, 6.0]]]])       # one real pixel, padded at top and left
    >>> avg_pool2d([padded], [y[:, :, :1, :1]], pool_size=2, uncounted=(1, 0, 1, 0))()
    >>> float(y[0, 0, 0, 0])
    6.0
    """
    (x,), (y,) = ins, outs
    first, *rest = _pool_offsets(x, pool_size, strides, y.shape[2:], dilation)
    scale = _mean_scale(x.shape[2:], pool_size, strides, y.shape[2:], uncounted, dilation)

    def run():
        np.copyto(y, first)
        for view in rest:
            np.add(y, view, out=y)
        np.multiply(y, scale, out=y)
    return run


@kernel(operands=1, scratch={"share": (0, "same")}, batched=(0,))
def avg_pool2d_grad(ins, outs, pool_size, strides=None, padding="valid", input_hw=None,
                    uncounted=None, dilation=1, *, share, **_):
    """Each window's gradient shared evenly among its pixels (summed where windows
    overlap): the adjoint of avg_pool2d, sum(dy * avg(x)) = sum(dx * x).

    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.normal(size=(1, 1, 4, 4)), rng.normal(size=(1, 1, 3, 3))
    >>> y, dx = np.empty((1, 1, 3, 3)), np.empty((1, 1, 4, 4))
    >>> avg_pool2d([x], [y], pool_size=2, strides=1)()
    >>> avg_pool2d_grad([dy], [dx], pool_size=2, strides=1, share=np.empty_like(dy))()
    >>> bool(np.isclose((dy * y).sum(), (dx * x).sum()))
    True
    >>> one = np.full((1, 1, 1, 1), 4.0)
    >>> avg_pool2d_grad([one], [dx[:, :, :2, :2]], pool_size=2, share=np.empty_like(one))()
    >>> dx[0, 0, :2, :2]
    array([[1., 1.],
           [1., 1.]])
    """
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
    """The mean of each channel's image: (N, C, H, W) -> (N, C).

    >>> x, y = np.arange(8.0).reshape(1, 2, 2, 2), np.empty((1, 2))
    >>> global_avg_pool([x], [y])(); y
    array([[1.5, 5.5]])
    """
    (x,), (y,) = ins, outs
    scale = 1.0 / (x.shape[2] * x.shape[3])

    def run():
        np.sum(x, axis=(2, 3), out=y)
        np.multiply(y, scale, out=y)
    return run


@kernel(operands=1)
def global_avg_pool_grad(ins, outs, input_hw=None):
    """dy / (H * W) to every pixel of its channel.

    >>> dy, dx = np.array([[4.0, 8.0]]), np.empty((1, 2, 2, 2))
    >>> _ = global_avg_pool_grad([dy], [dx])(); dx[0, :, 0, 0], dx[0, :, 1, 1]
    (array([1., 2.]), array([1., 2.]))
    """
    (dy,), (dx,) = ins, outs
    scale = 1.0 / (dx.shape[2] * dx.shape[3])
    return partial(np.multiply, dy[:, :, None, None], scale, out=dx)
