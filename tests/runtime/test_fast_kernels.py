"""The faster kernel paths compute what the textbook formulas do (float64), and
allocate nothing per step where the speed work promised so."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from graphnn.runtime.executor import UFUNC_BUFFER
from graphnn.runtime.kernels import KERNELS, bind


def _allocated_bytes(run, calls=5) -> int:
    """Peak bytes allocated over ``calls`` runs, with the executor's ufunc buffer size
    (NumPy's iterator buffers for broadcast operands are the only transient left)."""
    previous = np.setbufsize(UFUNC_BUFFER)
    run()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        np.setbufsize(previous)


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_cross_entropy_and_its_gradient_match_the_formula(reduction, sparse):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(7, 5)) * 30           # large logits: the shift must keep it finite
    labels = np.empty(7, np.int64) if sparse else np.empty((7, 5))
    out, logp, dz, dl = np.empty(()), np.empty((7, 5)), np.empty((7, 5)), np.array(0.5)
    forward = bind(KERNELS["softmax_cross_entropy"], [z, labels], [out, logp], {"reduction": reduction})
    backward = KERNELS["softmax_cross_entropy_grad"]([dl, z, labels], [dz], reduction=reduction)
    k = 1 / 7 if reduction == "mean" else 1.0
    for _ in range(3):                          # labels change between steps, as fed batches do
        classes = rng.integers(0, 5, 7)
        onehot = np.eye(5)[classes]
        labels[...] = classes if sparse else onehot
        forward()
        backward()
        np.testing.assert_allclose(out, -k * (_log_softmax(z) * onehot).sum(), rtol=1e-12)
        np.testing.assert_allclose(logp, _log_softmax(z), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dz, 0.5 * k * (np.exp(_log_softmax(z)) - onehot),
                                   rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_kernels_allocate_nothing_per_step():
    rng = np.random.default_rng(0)
    z, labels = rng.normal(size=(1024, 10)).astype(np.float32), rng.integers(0, 10, 1024)
    out, logp, dz = np.empty((), np.float32), np.empty_like(z), np.empty_like(z)
    forward = bind(KERNELS["softmax_cross_entropy"], [z, labels], [out, logp], {})
    backward = KERNELS["softmax_cross_entropy_grad"]([np.array(1, np.float32), z, labels], [dz])
    # nothing the size of the logits (40 KB), nor of the labels' flat positions (8 KB)
    assert _allocated_bytes(forward) < 8192 and _allocated_bytes(backward) < 8192


def test_sigmoid_keeps_full_relative_precision_and_raises_nothing():
    x = np.concatenate([np.linspace(-30, 30, 601), [-700.0, -100.0, -45.0, 45.0, 700.0, 0.0]])
    y = np.empty_like(x)
    with np.errstate(all="raise"):               # no overflow warning escapes either
        KERNELS["sigmoid"]([x], [y])()
    # independent references: the tanh form where 1 + tanh does not cancel (x >= 0),
    # exp(x) / (1 + exp(x)) for x < 0, and exp(x) itself far left (equal to 1e-19)
    right, left = (x >= 0) & (x <= 30), (x < 0) & (x >= -30)
    np.testing.assert_allclose(y[right], 0.5 * (1 + np.tanh(x[right] / 2)), rtol=1e-14)
    np.testing.assert_allclose(y[left], np.exp(x[left]) / (1 + np.exp(x[left])), rtol=1e-14)
    far_left = x <= -45
    np.testing.assert_allclose(y[far_left], np.exp(x[far_left]), rtol=1e-15)
    assert np.all(y[x >= 45] == 1.0)


def _max_pool_grad_by_loops(dy, x, k, s):
    """Each window's gradient to its first maximum (row-major), window by window."""
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(dy.shape):
        window = x[n, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
        a, b = np.unravel_index(np.argmax(window), window.shape)     # argmax: the first
        dx[n, c, i * s[0] + a, j * s[1] + b] += dy[n, c, i, j]
    return dx


@pytest.mark.parametrize("size, k, s", [((2, 3, 8, 6), (2, 2), (2, 2)),     # tiles: the fast path
                                        ((2, 3, 9, 6), (3, 3), (3, 3)),
                                        ((2, 3, 7, 7), (3, 3), (2, 2)),     # overlapping windows
                                        ((2, 3, 7, 6), (2, 2), (2, 2))])    # a row left over
def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(size, k, s):
    rng = np.random.default_rng(2)
    x = np.maximum(rng.integers(-3, 3, size), 0).astype(np.float64)   # many ties, as after relu
    oh, ow = (size[2] - k[0]) // s[0] + 1, (size[3] - k[1]) // s[1] + 1
    y, dy = np.empty((size[0], size[1], oh, ow)), rng.normal(size=(size[0], size[1], oh, ow))
    KERNELS["max_pool2d"]([x], [y], pool_size=list(k), strides=list(s))()
    dx = np.full_like(x, np.nan)
    scratch = {"hit": np.empty(y.shape, bool), "rest": np.empty_like(y), "part": np.empty_like(y)}
    for _ in range(2):                        # a second step finds no state left by the first
        KERNELS["max_pool2d_grad"]([dy, x, y], [dx], pool_size=list(k), strides=list(s), **scratch)()
        np.testing.assert_allclose(dx, _max_pool_grad_by_loops(dy, x, k, s), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("size, k, s, d", [((2, 3, 8, 6), (2, 2), (2, 2), (1, 1)),     # tiles
                                           ((2, 3, 9, 6), (3, 3), (3, 3), (1, 1)),
                                           ((2, 3, 7, 7), (3, 3), (2, 2), (1, 1)),     # overlapping
                                           ((2, 3, 7, 6), (2, 2), (2, 2), (1, 1)),     # a row left over
                                           ((2, 2, 7, 8), (2, 3), (1, 2), (2, 1)),     # dilated
                                           ((2, 2, 5, 5), (1, 1), (2, 2), (1, 1))])    # one offset
@pytest.mark.parametrize("values", ["relu", "signed zeros and infinities"])
def test_routed_max_pool_keeps_each_windows_first_maximum_for_its_gradient(size, k, s, d, values):
    """max_pool2d_routed writes the maxima and one mask per window offset; its
    gradient, reading only the masks, is the window-by-window routing (first
    maximum of each window: ties after a ReLU, -0.0 against 0.0, infinities,
    windows of -inf as padding makes them)."""
    rng = np.random.default_rng(3)
    if values == "relu":
        x = np.maximum(rng.integers(-3, 3, size), 0).astype(np.float64)
    else:
        x = rng.choice([-np.inf, -1.0, -0.0, 0.0, 1.0, np.inf], size=size)
        x[0, 0] = -np.inf
    span = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    oh, ow = (size[2] - span[0]) // s[0] + 1, (size[3] - span[1]) // s[1] + 1
    n, c = size[:2]
    y, routes = np.full((n, c, oh, ow), np.nan), np.full((n, k[0] * k[1], c, oh, ow), 7, np.int8)
    dy, dx = rng.normal(size=(n, c, oh, ow)), np.full_like(x, np.nan)
    attrs = {"pool_size": list(k), "strides": list(s), "dilation": list(d)}
    scratch = [np.full(shape, 7, dt) for shape, dt in KERNELS["max_pool2d_routed"].scratch_buffers(
        [x.shape], y.shape, "float64")]
    forward = bind(KERNELS["max_pool2d_routed"], [x], [y, routes, *scratch], attrs)
    backward = bind(KERNELS["max_pool2d_routed_grad"], [dy, routes], [dx, np.full_like(dy, 7.0)],
                    {**attrs, "input_hw": list(size[2:])})
    want_y, want_dx = np.empty_like(y), np.zeros_like(x)
    for a, b, i, j in np.ndindex(n, c, oh, ow):
        window = x[a, b, i * s[0]:i * s[0] + span[0]:d[0], j * s[1]:j * s[1] + span[1]:d[1]]
        p, q = np.unravel_index(np.argmax(window), window.shape)        # argmax: the first
        want_y[a, b, i, j] = window.max()
        want_dx[a, b, i * s[0] + p * d[0], j * s[1] + q * d[1]] += dy[a, b, i, j]
    for _ in range(2):                        # a second step finds no state left by the first
        forward()
        backward()
        np.testing.assert_array_equal((routes == -1).sum(axis=1), 1)        # one route per window
        assert np.isin(routes, (0, -1)).all()                              # bytes of all ones or zeros
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-15, atol=1e-15)


def _col2im_by_loops(cols, image_shape, k, s, d, wide):
    """Scatter-add every column entry to its pixel, one entry at a time."""
    n, c, h, w = image_shape
    oh, ow = (h - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w - d[1] * (k[1] - 1) - 1) // s[1] + 1
    grid = cols.reshape(n, c, k[0], k[1], oh, w if wide else ow)
    image = np.zeros(image_shape)
    for a, b, i, j, p, q in np.ndindex(n, c, k[0], k[1], oh, ow):
        image[a, b, p * s[0] + i * d[0], q * s[1] + j * d[1]] += grid[a, b, i, j, p, q]
    return image


@pytest.mark.parametrize("k, s, d, wide", [((3, 3), (1, 1), (1, 1), True),
                                           ((3, 3), (1, 1), (1, 1), False),
                                           ((3, 2), (1, 1), (2, 1), True),
                                           ((3, 3), (2, 2), (1, 1), False),
                                           ((2, 3), (2, 1), (1, 2), False)])
def test_col2im_sums_every_column_entry_into_its_pixel(k, s, d, wide):
    rng = np.random.default_rng(4)
    shape = (2, 3, 7, 8)
    oh, ow = (7 - d[0] * (k[0] - 1) - 1) // s[0] + 1, (8 - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = rng.normal(size=(2, 3 * k[0] * k[1], oh * (8 if wide else ow)))
    if wide:                                  # the positions past OW in each row are zero
        cols.reshape(2, 3, k[0], k[1], oh, 8)[..., ow:] = 0
    image = np.full(shape, np.nan)
    run = KERNELS["col2im"]([cols], [image], kernel_size=list(k), strides=list(s),
                            dilation=list(d), wide=wide)
    for _ in range(2):                        # the second call starts from the first's image
        run()
        np.testing.assert_allclose(image, _col2im_by_loops(cols, shape, k, s, d, wide), rtol=1e-14)


@pytest.fixture(params=[False, True], ids=["whole GEMM", "GEMM by row pieces"])
def gemm_pieces(request, monkeypatch):
    """With pieces, every GEMM of gemm_col2im runs as 3 or 4 row pieces
    (runtime.kernels.conv.row_pieces), as the large ones do."""
    if request.param:
        from graphnn.runtime.kernels import conv
        monkeypatch.setattr(conv, "SMALL_GEMM", 2000)
        monkeypatch.setattr(conv, "MIN_PIECE_ROWS", 1)
        assert len(conv.row_pieces(27, 56, 4)) == 4 and len(conv.row_pieces(27, 42, 4)) == 3
    return request.param


@pytest.mark.parametrize("rows", [1, 2, 5])
@pytest.mark.parametrize("k, s, d, wide", [((3, 3), (1, 1), (1, 1), True), ((2, 3), (2, 1), (1, 2), False)])
def test_gemm_col2im_is_col2im_of_the_product_chunk_by_chunk(rows, k, s, d, wide, gemm_pieces):
    """The batch goes through the columns buffer ``rows`` images at a time (5 images:
    chunks of 1, 2 + 2 + 1, or all at once); every chunk lands in its own images."""
    rng = np.random.default_rng(6)
    n, c, f, h, w = 5, 3, 4, 7, 8
    oh, ow = (h - d[0] * (k[0] - 1) - 1) // s[0] + 1, (w - d[1] * (k[1] - 1) - 1) // s[1] + 1
    weights = rng.normal(size=(f, c * k[0] * k[1]))
    dy = rng.normal(size=(n, f, oh, w if wide else ow))
    if wide:                                  # the positions past OW in each row are zero
        dy[..., ow:] = 0
    dy = dy.reshape(n, f, -1)
    want = _col2im_by_loops(np.matmul(weights.T, dy), (n, c, h, w), k, s, d, wide)
    image = np.full((n, c, h, w), np.nan)
    cols = np.full((rows, c * k[0] * k[1], dy.shape[2]), np.nan)
    run = KERNELS["gemm_col2im"]([weights, dy], [image, cols], kernel_size=list(k), strides=list(s),
                                 dilation=list(d), wide=wide)
    for _ in range(2):
        run()
        np.testing.assert_allclose(image, want, rtol=1e-13)


@pytest.mark.parametrize("rows", [1, 2, 5])
@pytest.mark.parametrize("k, d", [((3, 3), (1, 1)), ((3, 2), (2, 1)), ((1, 1), (1, 1))])
def test_tall_gemm_col2im_adds_whole_images_per_offset(rows, k, d, gemm_pieces):
    """Tall columns: dy padded to every pixel (zero where no window starts) a chunk
    at a time, and the GEMM's rows in (offset, channel) order; the image is still
    the sum of every column entry at its pixel."""
    rng = np.random.default_rng(7)
    n, c, f, h, w = 5, 3, 4, 7, 8
    oh, ow = h - d[0] * (k[0] - 1), w - d[1] * (k[1] - 1)
    weights = rng.normal(size=(f, c * k[0] * k[1]))
    dy = rng.normal(size=(n, f, oh, ow))
    wide = np.zeros((n, f, oh, w))
    wide[..., :ow] = dy
    cols = np.matmul(weights.T, wide.reshape(n, f, -1))       # wide, (channel, offset) order
    want = _col2im_by_loops(cols, (n, c, h, w), k, (1, 1), d, True)
    image = np.full((n, c, h, w), np.nan)
    scratch = [np.full((rows, c * k[0] * k[1], h * w), np.nan), np.full((rows, f, h * w), np.nan)]
    run = KERNELS["gemm_col2im"]([weights, dy.reshape(n, f, -1)], [image, *scratch], kernel_size=list(k),
                                 dilation=list(d), wide=True, tall=True)
    for _ in range(2):
        run()
        np.testing.assert_allclose(image, want, rtol=1e-13)


def test_gemm_col2im_of_the_benchmark_cnn_runs_its_gemm_in_row_pieces():
    """The benchmark CNN's second convolution (16 -> 32 channels, 3x3, 16x16
    padded image): its tall GEMM, (144, 32) @ (32, 256) per image, is above
    OpenBLAS's small-matrix size and runs as two row pieces; the image is still
    the sum of every column entry at its pixel (float64)."""
    from graphnn.runtime.kernels.conv import row_pieces
    assert row_pieces(144, 256, 32) == [(0, 72), (72, 144)]
    rng = np.random.default_rng(8)
    n, c, f, h, w = 3, 16, 32, 16, 16
    weights = rng.normal(size=(f, c * 9))
    dy = rng.normal(size=(n, f, 14, 14))
    wide = np.zeros((n, f, 14, w))
    wide[..., :14] = dy
    want = _col2im_by_loops(np.matmul(weights.T, wide.reshape(n, f, -1)), (n, c, h, w), (3, 3), (1, 1),
                            (1, 1), True)
    image = np.full((n, c, h, w), np.nan)
    scratch = [np.full((2, c * 9, h * w), np.nan), np.full((2, f, h * w), np.nan)]
    run = KERNELS["gemm_col2im"]([weights, dy.reshape(n, f, -1)], [image, *scratch], kernel_size=[3, 3],
                                 wide=True, tall=True)
    for _ in range(2):
        run()
        np.testing.assert_allclose(image, want, rtol=1e-12, atol=1e-12)
