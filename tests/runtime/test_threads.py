"""The batch-split (threaded) kernels compute exactly what the whole kernels do.

Each kernel is bound twice to the same inputs: once whole on the calling thread,
once cut into batch chunks on a pool; the results must be bitwise equal (every
output element goes through the same operations). Batch sizes are odd and do
not divide evenly among the threads.
"""
import contextlib
import itertools

import numpy as np
import pytest
from graphnn.runtime import Executor
from graphnn.runtime import threads as threading_mod
from graphnn.runtime.kernels import KERNELS, bind
from graphnn.runtime.threads import BATCHED, Pool, chunks, split_call

from tests.runtime.benchmark_models import benchmark_training_program


@pytest.fixture(scope="module")
def pool():
    p = Pool(3)
    yield p
    p.close()


def _scratch(name, ins, out, dtype):
    factory = KERNELS[name]
    return [np.full(shape, 7, dtype=dt) for shape, dt in
            factory.scratch_buffers([a.shape for a in ins], out.shape, dtype)]


def _both(name, ins, out_shape, attrs, pool, dtype="float64", scratch=()):
    """(whole result, split result) of kernel ``name`` on ``ins``; ``scratch``:
    (shape, dtype) of the buffers a fused kernel's parts need."""
    results = []
    for split in (False, True):
        out = np.full(out_shape, np.nan, dtype=dtype)
        outs = [out, *_scratch(name, ins, out, dtype), *(np.ones(s, dt) for s, dt in scratch)]
        if split:
            run = split_call(KERNELS[name], name, ins, outs, attrs, pool, min_elements=0)
            assert getattr(run, "parts", 1) > 1, "the kernel was not split"
        else:
            run = bind(KERNELS[name], ins, outs, attrs)
        run()
        run()                   # twice: a kernel must not rely on what the arena held
        results.append(out)
    return results


def _routed_both(name, x, out_shape, offsets, attrs, pool):
    """(whole, split) of a routed max pool: each its maxima and its routes."""
    results = []
    for split in (False, True):
        y = np.full(out_shape, np.nan, dtype=x.dtype)
        routes = np.ones((out_shape[0], offsets, *out_shape[1:]), np.int8)
        outs = [y, routes, *_scratch(name, [x], y, str(x.dtype))]
        run = (split_call(KERNELS[name], name, [x], outs, attrs, pool, min_elements=0) if split
               else bind(KERNELS[name], [x], outs, attrs))
        assert (getattr(run, "parts", 1) > 1) == split
        run()
        run()
        results.append((y, routes))
    return results


def _pool_case(rng, n, c, h, w, size, stride, dtype):
    x = (np.round(rng.standard_normal((n, c, h, w)) * 2) / 2).astype(dtype)   # ties in windows
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    return x, (n, c, oh, ow)


CASES = [(5, 3, 8, 8, 2, 2), (7, 2, 9, 7, 3, 2), (3, 4, 6, 6, 2, 1)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n,c,h,w,size,stride", CASES)
def test_pooling_split_equals_whole(pool, n, c, h, w, size, stride, dtype):
    rng = np.random.default_rng(n * 10 + size)
    x, out_shape = _pool_case(rng, n, c, h, w, size, stride, dtype)
    attrs = {"pool_size": size, "strides": stride}
    whole, split = _both("max_pool2d", [x], out_shape, attrs, pool, dtype)
    np.testing.assert_array_equal(split, whole)
    # the whole kernel against a NumPy formula, so "equal" is not equal garbage
    ref = np.max(np.stack([x[:, :, i:i + stride * (out_shape[2] - 1) + 1:stride,
                             j:j + stride * (out_shape[3] - 1) + 1:stride]
                           for i in range(size) for j in range(size)]), axis=0)
    np.testing.assert_array_equal(whole, ref)
    dy = rng.standard_normal(out_shape).astype(dtype)
    g_whole, g_split = _both("max_pool2d_grad", [dy, x, whole], x.shape, attrs, pool, dtype)
    np.testing.assert_array_equal(g_split, g_whole)
    assert np.isclose(g_whole.sum(dtype=np.float64), dy.sum(dtype=np.float64), rtol=1e-4)
    (r_whole, routes), (r_split, routes_split) = _routed_both("max_pool2d_routed", x, out_shape, size * size,
                                                              attrs, pool)
    np.testing.assert_array_equal(r_whole, whole)
    np.testing.assert_array_equal(r_split, whole)
    np.testing.assert_array_equal(routes_split, routes)
    rg_whole, rg_split = _both("max_pool2d_routed_grad", [dy, routes], x.shape,
                               {**attrs, "input_hw": [h, w]}, pool, dtype)
    np.testing.assert_array_equal(rg_split, g_whole)
    np.testing.assert_array_equal(rg_whole, g_whole)
    a_whole, a_split = _both("avg_pool2d", [x], out_shape, attrs, pool, dtype)
    np.testing.assert_array_equal(a_split, a_whole)
    ga_whole, ga_split = _both("avg_pool2d_grad", [dy], x.shape, attrs, pool, dtype)
    np.testing.assert_array_equal(ga_split, ga_whole)


@pytest.mark.parametrize("n", [5, 7])
def test_tile_order_pooling_split_equals_whole(pool, n):
    rng = np.random.default_rng(n)
    x = np.maximum(np.round(rng.standard_normal((n, 4, 3, 6)) * 2) / 2, 0)    # ties, as after relu
    whole, split = _both("max_pool_blocks", [x], (n, 3, 2, 3), {}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole.reshape(n, 3, 6), x.max(axis=1))
    dy = rng.standard_normal((n, 3, 2, 3))
    g_whole, g_split = _both("max_pool_blocks_grad", [dy, x, whole], x.shape, {}, pool)
    np.testing.assert_array_equal(g_split, g_whole)
    np.testing.assert_allclose(g_whole.sum(axis=1), dy.reshape(n, 3, 6), rtol=1e-15)
    (r_whole, routes), (r_split, routes_split) = _routed_both("max_pool_blocks_routed", x, (n, 3, 2, 3), 4,
                                                              {"pooled_hw": [2, 3]}, pool)
    np.testing.assert_array_equal(r_whole, whole)
    np.testing.assert_array_equal(r_split, whole)
    np.testing.assert_array_equal(routes_split, routes)
    rg_whole, rg_split = _both("max_pool_blocks_routed_grad", [dy, routes], x.shape, {"pooled_hw": [2, 3]}, pool)
    np.testing.assert_array_equal(rg_split, g_whole)
    np.testing.assert_array_equal(rg_whole, g_whole)
    w, cols = rng.standard_normal((3, 5)), rng.standard_normal((n, 5, 24))
    whole, split = _both("matmul_tiles", [w, cols], (n, 4, 3, 6), {"tiles": 4}, pool)
    np.testing.assert_array_equal(split, whole)
    g_whole, g_split = _both("matmul_tiles_grad", [cols, whole], (n, 4, 5, 3), {"tiles": 4}, pool)
    np.testing.assert_array_equal(g_split, g_whole)


@pytest.mark.parametrize("n", [5, 7])
def test_stacked_gemms_split_equal_whole(pool, n):
    """Per-image GEMMs (the convolutions' forward, weight and input gradients) split
    by images; 2-D GEMMs stay whole."""
    rng = np.random.default_rng(n)
    w, cols, dy = rng.standard_normal((4, 6)), rng.standard_normal((n, 6, 9)), rng.standard_normal((n, 4, 9))
    whole, split = _both("matmul", [w, cols], (n, 4, 9), {}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(whole, np.einsum("fk,nkl->nfl", w, cols), rtol=1e-12)
    whole, split = _both("matmul", [cols, dy], (n, 6, 4), {"transpose_b": True}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(whole, np.einsum("nkl,nfl->nkf", cols, dy), rtol=1e-12)
    attrs = {"anchor": {"kernel": "matmul", "attrs": {}}, "epilogue": [{"kernel": "relu", "attrs": {}, "extra": 0}]}
    whole, split = _both("fused", [w, cols], (n, 4, 9), attrs, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(whole, np.maximum(np.einsum("fk,nkl->nfl", w, cols), 0), rtol=1e-12)
    run = split_call(KERNELS["matmul"], "matmul", [dy[0], cols[0].T], [np.empty((4, 6))], {}, pool, min_elements=0)
    assert getattr(run, "parts", 1) == 1            # a small 2-D GEMM (MIN_GEMM_MACS) stays whole


def test_batch_first_transposes_split_and_others_do_not(pool):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 4, 5))
    whole, split = _both("transpose", [x], (7, 5, 4), {"perm": [0, 2, 1]}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole, x.transpose(0, 2, 1))
    square = rng.standard_normal((6, 6))            # rows are not images here
    run = split_call(KERNELS["transpose"], "transpose", [square], [np.empty((6, 6))], {"perm": [1, 0]},
                     pool, min_elements=0)
    assert getattr(run, "parts", 1) == 1


@pytest.mark.parametrize("n, rows", [(5, 2), (7, 3), (6, 6)])
def test_gemm_col2im_split_equals_whole(pool, n, rows):
    """Each thread takes a share of the images and of the columns buffer."""
    rng = np.random.default_rng(n)
    w, dy = rng.standard_normal((4, 3 * 9)), rng.standard_normal((n, 4, 6 * 7))
    attrs = {"kernel_size": 3, "wide": False}
    images = []
    for split in (False, True):
        image, cols = np.full((n, 3, 8, 9), np.nan), np.full((rows, 27, 42), np.nan)
        run = (split_call(KERNELS["gemm_col2im"], "gemm_col2im", [w, dy], [image, cols], attrs, pool,
                          min_elements=0) if split else bind(KERNELS["gemm_col2im"], [w, dy], [image, cols], attrs))
        assert getattr(run, "parts", 1) == (min(3, rows) if split else 1)
        run()
        run()
        images.append(image)
    np.testing.assert_array_equal(images[1], images[0])
    want, _ = _both("col2im", [np.matmul(w.T, dy)], (n, 3, 8, 9), attrs, pool)
    np.testing.assert_allclose(images[0], want, rtol=1e-12)


@pytest.mark.parametrize("n,stride,wide", [(5, 1, False), (7, 2, False), (3, 1, True), (9, 1, True)])
def test_im2col_col2im_split_equals_whole(pool, n, stride, wide):
    rng = np.random.default_rng(n)
    c, h, w, k = 3, 9, 8, 3
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    x = rng.standard_normal((n, c, h, w))
    attrs = {"kernel_size": k, "strides": stride}
    whole, split = _both("im2col", [x], (n, c * k * k, oh * ow), attrs, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole.reshape(n, c, k, k, oh, ow)[:, :, 1, 2],
                                  x[:, :, 1:1 + stride * (oh - 1) + 1:stride, 2:2 + stride * (ow - 1) + 1:stride])
    cols = rng.standard_normal((n, c * k * k, oh * (w if wide else ow)))
    attrs = {"kernel_size": k, "strides": stride, "wide": wide}
    img_whole, img_split = _both("col2im", [cols], (n, c, h, w), attrs, pool)
    np.testing.assert_array_equal(img_split, img_whole)


@pytest.mark.parametrize("n", [5, 7])
def test_relu_and_grad_split_equal_whole(pool, n):
    rng = np.random.default_rng(n)
    x, dy = rng.standard_normal((n, 4, 5, 3)), rng.standard_normal((n, 4, 5, 3))
    whole, split = _both("relu", [x], x.shape, {}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole, np.where(x > 0, x, 0.0))
    g_whole, g_split = _both("relu_grad", [dy, whole], x.shape, {}, pool)
    np.testing.assert_array_equal(g_split, g_whole)


@pytest.mark.parametrize("n", [5, 7])
def test_fused_epilogue_split_equals_whole(pool, n):
    """The GEMM of a fused kernel runs whole; its bias/ReLU epilogue is split."""
    rng = np.random.default_rng(n)
    w, cols, bias = rng.standard_normal((4, 6)), rng.standard_normal((n, 6, 9)), rng.standard_normal(4)
    attrs = {"anchor": {"kernel": "matmul", "attrs": {}},
             "epilogue": [{"kernel": "bias_add", "attrs": {"axis": 1}, "extra": 1},
                          {"kernel": "relu", "attrs": {}, "extra": 0}]}
    whole, split = _both("fused", [w, cols, bias], (n, 4, 9), attrs, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(whole, np.maximum(np.matmul(w, cols) + bias[:, None], 0), rtol=1e-12)
    dy, wt, y = rng.standard_normal((n, 3)), rng.standard_normal((3, 8)), rng.standard_normal((n, 8))
    attrs = {"anchor": {"kernel": "matmul", "attrs": {}},
             "epilogue": [{"kernel": "relu_grad", "attrs": {}, "extra": 1}]}
    g_whole, g_split = _both("fused", [dy, wt, y], (n, 8), attrs, pool, scratch=[((n, 8), "bool")])
    np.testing.assert_array_equal(g_split, g_whole)
    np.testing.assert_allclose(g_whole, (dy @ wt) * (y > 0), rtol=1e-12)
    attrs = {"anchor": {"kernel": "matmul", "attrs": {}},     # bias along axis 0: not split
             "epilogue": [{"kernel": "bias_add", "attrs": {"axis": 0}, "extra": 1}]}
    run = split_call(KERNELS["fused"], "fused", [w, rng.standard_normal((6, 9)), bias],
                     [np.empty((4, 9))], attrs, pool, min_elements=0)
    assert getattr(run, "parts", 1) == 1


@pytest.mark.parametrize("n", [5, 7])
def test_pad_and_crop_split_equal_whole(pool, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 3, 4, 5))
    whole, split = _both("pad2d", [x], (n, 3, 7, 6), {"pads": [1, 2, 0, 1], "value": -np.inf}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole, np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 1)], constant_values=-np.inf))
    whole, split = _both("crop2d", [x], (n, 3, 2, 3), {"pads": [1, 1, 2, 0]}, pool)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(whole, x[:, :, 1:3, 2:5])


# The dense layers of the benchmark CNN, then MLP: (M, K, N) of the forward GEMM.
CNN_DENSE = [(64, 1568, 128), (64, 128, 10)]
DENSE_SHAPES = [*CNN_DENSE, (128, 784, 512), (128, 512, 256), (128, 256, 10), (7, 33, 5)]


# Against the whole on two BLAS threads only the CNN's shapes: OpenBLAS on two threads
# computes the MLP's (128, 784) @ (784, 512) in another order than on one, split or not,
# and a default pool never meets the MLP (docstring below).
GEMM_CASES = [(*shape, 1) for shape in DENSE_SHAPES] + [(*shape, 2) for shape in CNN_DENSE]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n,blas_threads", GEMM_CASES)
def test_2d_gemms_split_equal_whole(monkeypatch, m, k, n, dtype, blas_threads):
    """A dense layer's three GEMMs (forward with its bias and ReLU, input and
    weight gradients, the latter two with a transposed operand) cut along the
    result's longer side give the whole GEMM's bits, with BLAS on one thread
    (as under a pool). Against the whole on two BLAS threads (the one-thread
    Executor at two threads) for the CNN's shapes, the ones a default pool
    meets: OpenBLAS on two threads computes the MLP's (128, 784) @ (784, 512)
    in another order than on one, split or not."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(threading_mod, "MIN_GEMM_MACS", 0)
    rng = np.random.default_rng(m + k + n)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (n,)))
    dy, y = rng.standard_normal((m, n)).astype(dtype), rng.standard_normal((m, k)).astype(dtype)
    fwd = {"anchor": {"kernel": "matmul", "attrs": {}},
           "epilogue": [{"kernel": "bias_add", "attrs": {"axis": -1}, "extra": 1},
                        {"kernel": "relu", "attrs": {}, "extra": 0}]}
    back = {"anchor": {"kernel": "matmul", "attrs": {"transpose_b": True}},
            "epilogue": [{"kernel": "relu_grad", "attrs": {}, "extra": 1}]}
    cases = [("fused", [x, w, b], (m, n), fwd, [], np.maximum(x.astype("f8") @ w + b, 0)),
             ("matmul", [dy, w], (m, k), {"transpose_b": True}, [], dy.astype("f8") @ w.T),
             ("matmul", [x, dy], (k, n), {"transpose_a": True}, [], x.T.astype("f8") @ dy),
             ("fused", [dy, w, y], (m, k), back, [((m, k), "bool")], (dy.astype("f8") @ w.T) * (y > 0))]
    p = Pool(2)
    try:
        for name, ins, shape, attrs, scratch, want in cases:
            with threadpoolctl.threadpool_limits(blas_threads):
                whole = np.full(shape, np.nan, dtype)
                bind(KERNELS[name], ins, [whole, *(np.ones(s, t) for s, t in scratch)], attrs)()
            split = np.full(shape, np.nan, dtype)
            run = split_call(KERNELS[name], name, ins, [split, *(np.ones(s, t) for s, t in scratch)], attrs, p)
            assert getattr(run, "parts", 1) == 2, name
            with threadpoolctl.threadpool_limits(1):
                run()
            np.testing.assert_array_equal(split, whole, err_msg=f"{name} {attrs}")
            if want is not None:
                np.testing.assert_allclose(whole, want, rtol=1e-4 if dtype == "float32" else 1e-12,
                                           atol=1e-4 if dtype == "float32" else 1e-12)
    finally:
        p.close()


def test_2d_gemm_split_cuts_the_longer_side_and_small_ones_stay_whole(pool):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((40, 600)), rng.standard_normal((600, 200))
    for (x, y), attrs, shape in [((a, b), {}, (40, 200)), ((b, a), {"transpose_a": True, "transpose_b": True},
                                                            (200, 40))]:
        out = np.empty(shape)
        run = split_call(KERNELS["matmul"], "matmul", [x, y], [out], attrs, pool)
        assert run.parts == 3
        run()
        np.testing.assert_allclose(out, (x.T if attrs else x) @ (y.T if attrs else y), rtol=1e-12)
    small = split_call(KERNELS["matmul"], "matmul", [a[:, :100], b[:100, :50]], [np.empty((40, 50))], {}, pool)
    assert getattr(small, "parts", 1) == 1


UPDATES = [("sgd_update", 1, {"momentum": 0.9}), ("sgd_update", 1, {"momentum": 0.9, "nesterov": True,
                                                                   "weight_decay": 0.01}),
           ("sgd_update", 0, {}), ("rmsprop_update", 2, {"momentum": 0.5, "centered": True}),
           ("adagrad_update", 1, {}), ("adadelta_update", 2, {})]


@pytest.mark.parametrize("name,slots,attrs", UPDATES)
def test_large_updates_split_equal_whole(monkeypatch, pool, name, slots, attrs):
    """Element-wise updates of a large parameter, one flat range per thread."""
    monkeypatch.setattr(threading_mod, "MIN_UPDATE_ELEMENTS", 1000)
    rng = np.random.default_rng(len(name) + slots)
    shape = (101, 37)
    # slots of squares, and rmsprop's v above its centred mean squared
    start = [(np.abs(rng.standard_normal(shape)) + (i == 1)).astype("float32") * (0.2 if i == 2 else 1)
             for i in range(1 + slots)]
    g, lr = rng.standard_normal(shape).astype("float32"), np.array(0.05, "float32")
    factory = KERNELS[name]
    results = []
    for split in (False, True):
        p, *state = (a.copy() for a in start)
        scratch = [np.full(shape, 7, "float32") for _ in factory.scratch]
        if name == "rmsprop_update":                # v, then the centred mean, then the momentum
            ins, outs = [p, g, lr, *state, np.zeros(shape, "float32")], [p, *state]
            outs.append(ins[-1])
        else:
            ins, outs = [p, g, lr, *state], [p, *state]
        args = (factory, name, ins, [*outs, *scratch], attrs, pool)
        run = split_call(*args) if split else bind(factory, ins, [*outs, *scratch], attrs)
        assert getattr(run, "parts", 1) == (3 if split else 1)
        run()
        run()
        results.append([p, *state])
    for whole, cut in zip(*results):
        np.testing.assert_array_equal(cut, whole)
    if name == "sgd_update" and not attrs:          # against the formula
        np.testing.assert_allclose(results[0][0], start[0] - 2 * 0.05 * g, rtol=1e-6)


def test_small_updates_and_adam_run_whole(pool):
    p, g, lr = np.ones(100, "float32"), np.ones(100, "float32"), np.array(0.1, "float32")
    run = split_call(KERNELS["sgd_update"], "sgd_update", [p, g, lr], [p, np.empty(100, "float32")], {}, pool)
    assert getattr(run, "parts", 1) == 1
    big = np.ones(1 << 17, "float32")
    args = [big, big.copy(), lr, big.copy(), big.copy(), np.zeros((), "float32")]
    run = split_call(KERNELS["adam_update"], "adam_update", args, [big, args[3], args[4], big.copy()], {}, pool)
    assert getattr(run, "parts", 1) == 1             # its step counter is shared


@pytest.mark.parametrize("kind", ["cnn", "mlp", "lstm"])
def test_benchmark_training_steps_equal_at_one_and_two_threads(kind):
    """The benchmark CNN, MLP and LSTM at their own sizes (float32, SGD with
    momentum): every split of the two-thread pool, the dense GEMMs' too, leaves
    the weights of three steps bit for bit those of the one-thread run. (The MLP's
    and LSTM's one-thread runs hold BLAS to one thread too: see
    test_2d_gemms_split_equal_whole. The LSTM's scan runs whole on the calling
    thread either way: runtime/kernels/lstm_scan.py says why.)"""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    model, program, shape = benchmark_training_program(kind)
    rng = np.random.default_rng(4)
    feeds = {"x": rng.standard_normal(shape).astype("float32"), "target": rng.integers(0, 10, shape[0])}
    finals = []
    for n in (1, 2):
        ex = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=n)
        if n == 2 and kind != "lstm":
            split = {i.node for i, call in zip(program.instructions, ex.calls) if getattr(call, "parts", 1) > 1}
            dense = "dense/matmul/grad_matmul_1" if kind == "cnn" else "dense_1/matmul/grad_matmul_1"
            assert dense in split and "dense/W/update" in split
        with threadpoolctl.threadpool_limits(1) if kind != "cnn" else contextlib.nullcontext():
            for _ in range(3):
                ex.run(feeds)
        finals.append(ex.variables)
        ex.close()
    for name in finals[0]:
        np.testing.assert_array_equal(finals[1][name], finals[0][name], err_msg=name)


def test_every_batched_kernel_is_tested():
    assert set(BATCHED) == {"im2col", "col2im", "max_pool2d", "max_pool2d_grad", "avg_pool2d",
                            "max_pool_blocks", "max_pool_blocks_grad", "matmul_tiles", "matmul_tiles_grad",
                            "avg_pool2d_grad", "relu", "relu_grad", "max_pool2d_routed",
                            "max_pool2d_routed_grad", "max_pool_blocks_routed", "max_pool_blocks_routed_grad",
                            "pad2d", "crop2d"}


def test_chunks_cover_the_batch():
    for n in range(1, 12):
        for parts in range(1, 5):
            cs = chunks(n, parts)
            assert cs[0][0] == 0 and cs[-1][1] == n
            assert all(a < b for a, b in cs) and all(b == a2 for (_, b), (a2, _) in itertools.pairwise(cs))
            sizes = [b - a for a, b in cs]
            assert max(sizes) - min(sizes) <= 1


def test_small_or_odd_arrays_run_whole(pool):
    x, y = np.ones((1, 3)), np.empty((1, 3))
    run = split_call(KERNELS["relu"], "relu", [x], [y], {}, pool, min_elements=0)
    assert run.__dict__.get("parts", 1) == 1               # a batch of one is not split
    x, y = np.ones((4, 3)), np.empty((4, 3))
    assert split_call(KERNELS["relu"], "relu", [x], [y], {}, pool).__dict__.get("parts", 1) == 1   # small
    t = np.ones((3, 4)).T                           # not C-contiguous: rows are not blocks
    assert split_call(KERNELS["relu"], "relu", [t], [np.empty((4, 3))], {}, pool,
                      min_elements=0).__dict__.get("parts", 1) == 1


def test_worker_errors_reach_the_caller():
    p = Pool(2)

    def boom():
        raise ZeroDivisionError("in a worker")
    with pytest.raises(ZeroDivisionError, match="in a worker"):
        p.run_all([lambda: None, boom])
    p.run_all([lambda: None, lambda: None])          # still usable
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.run_all([lambda: None, lambda: None])


def test_bad_thread_counts_are_refused():
    from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    prog = Program(buffers={"x": Buffer("x", (2,), "float64", offset=0),
                            "y": Buffer("y", (2,), "float64", offset=64)},
                   instructions=[Instruction("relu", ["x"], ["y"])],
                   inputs=["x"], outputs=["y"], batch_size=2, memory=MemoryReport(32, 32, 80))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            Executor(prog, threads=bad)
    assert Executor(prog, threads=1).pool is None


def test_cnn_training_steps_equal_at_one_and_three_threads(monkeypatch):
    """A whole CNN training program (conv, pool, ReLU and their gradients, SGD),
    odd batch, every splittable kernel split: weights after two steps equal."""
    from graphnn import Graph, Model, optim
    monkeypatch.setattr(threading_mod, "MIN_ELEMENTS", 0)
    g = Graph()
    x = g.input("x", (None, 1, 12, 12))
    h = g.conv2d(x, 8, 3, padding="same", activation="relu")     # tile order (9 columns, 8 filters)
    h = g.max_pool2d(h, 2)
    h = g.conv2d(h, 6, 3, activation="relu")
    h = g.max_pool2d(h, 2, strides=1)                            # image order
    h = g.flatten(h)
    out = g.dense(h, 3)
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1, momentum=0.9))
    batch = 7
    program = model.program("train", batch)
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((batch, 1, 12, 12)), "target": rng.integers(0, 3, batch)}
    finals = []
    for n in (1, 3):
        ex = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=n)
        split = {i.kernel for i, call in zip(program.instructions, ex.calls) if getattr(call, "parts", 1) > 1}
        assert (not split) == (n == 1)
        if n == 3:              # the convolutions' GEMMs, tile-order pooling and gemm_col2im split too
            assert {"matmul", "matmul_tiles", "matmul_tiles_grad", "gemm_col2im", "max_pool_blocks_routed",
                    "max_pool_blocks_routed_grad", "max_pool2d_routed", "max_pool2d_routed_grad"} <= split
        assert (ex.pool is None) == (n == 1)
        for _ in range(2):
            ex.run(feeds)
        finals.append(ex.variables)
        if n == 3:
            kernels = {i.kernel for i in program.instructions}
            assert {"im2col", "gemm_col2im", "max_pool2d_routed", "max_pool2d_routed_grad",
                    "max_pool_blocks_routed"} <= kernels
            ex.close()
    for name in finals[0]:
        np.testing.assert_array_equal(finals[1][name], finals[0][name], err_msg=name)
    assert any(not np.array_equal(finals[0][k], model.variables[k]) for k in finals[0])


def _small_program(conv: bool):
    from graphnn import Graph, Model, optim
    g = Graph()
    if conv:
        x = g.input("x", (None, 1, 8, 8))
        h = g.flatten(g.max_pool2d(g.conv2d(x, 4, 3, padding="same", activation="relu"), 2))
    else:
        x = g.input("x", (None, 6))
        h = g.dense(x, 5, activation="tanh")
    model = Model(g, inputs=x, outputs=g.dense(h, 2))
    model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1))
    return model.program("train", 4), model.program("predict", 4)


def test_the_default_pool_is_for_convolution_programs_only(monkeypatch):
    monkeypatch.setattr(threading_mod, "default_threads", lambda: 3)
    for program in _small_program(conv=True):
        assert threading_mod.pool_size(program) == 3
        ex = Executor(program)
        assert ex.threads == 3 and ex.pool is not None
        ex.close()
    for program in _small_program(conv=False):
        assert threading_mod.pool_size(program) == 1
        assert Executor(program).pool is None
    assert Executor(_small_program(conv=True)[0], threads=1).pool is None      # asked for: whole


def test_without_threadpoolctl_no_default_pool(monkeypatch):
    """The pool holds BLAS to one thread through threadpoolctl; without it, the
    two would compete for the cores, so the default stays whole."""
    import sys
    monkeypatch.setattr(threading_mod, "default_threads", lambda: 3)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)         # import fails
    assert threading_mod.pool_size(_small_program(conv=True)[0]) == 1


def test_a_guarded_step_on_a_pooled_executor_equals_one_thread(monkeypatch):
    """Model.fit steps through StepGuard.run, which runs Executor.step (BLAS on
    one thread while pooled): weights after two fits equal the one-thread run."""
    from graphnn import Graph, Model, optim
    monkeypatch.setattr(threading_mod, "MIN_ELEMENTS", 0)
    results = []
    for n in (1, 2):
        monkeypatch.setattr(threading_mod, "default_threads", lambda n=n: n)
        g = Graph()
        x = g.input("x", (None, 1, 8, 8))
        h = g.flatten(g.max_pool2d(g.conv2d(x, 4, 3, padding="same", activation="relu"), 2))
        model = Model(g, inputs=x, outputs=g.dense(h, 3), seed=0)
        model.compile(loss="softmax_cross_entropy", optimizer=optim.SGD(0.1, momentum=0.9))
        rng = np.random.default_rng(0)
        model.fit(rng.standard_normal((10, 1, 8, 8)).astype("float32"), rng.integers(0, 3, 10),
                  epochs=2, batch_size=5, verbose=0)
        assert all((e.pool is not None) == (n == 2) for e in model._executors.values()
                   if any(i.kernel == "im2col" for i in e.program.instructions))
        results.append(model.state_dict())
    for k in results[0]:
        np.testing.assert_array_equal(results[1][k], results[0][k], err_msg=k)
