"""Tile order (compiler/blocked.py): which convolutions take it, and that its
kernels compute what window-by-window loops do (float64, ties in the windows).
tests/parity/test_conv_pool_blocks.py compares whole programs with PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.compiler.autodiff import differentiate
from graphnn.compiler.pipeline import build_program, check_graph
from graphnn.runtime.kernels import KERNELS, bind

from graphnn import Graph

# (in channels, filters, kernel, stride, padding, dilation, pool, image, activation):
# every one of them is lowered in tile order (test_these_cases_take_tile_order)
CASES = [(1, 8, 3, 1, "same", 1, 2, (8, 10), "relu"),
         (1, 6, 3, 1, "valid", 1, 3, (11, 8), "relu"),
         (1, 8, 3, 2, 1, 1, 2, (8, 12), "relu"),
         (1, 8, 3, 1, "valid", 2, (2, 1), (10, 7), "relu"),
         (2, 12, (3, 2), 1, "valid", 1, (1, 2), (6, 9), None),
         (1, 5, 2, 1, 0, 1, 2, (7, 9), "relu")]
BLOCK_KERNELS = {"max_pool_blocks", "max_pool_blocks_grad"}
# a training program's pools keep their gradient's routes (compiler/ops/pool.py)
ROUTED_BLOCK_KERNELS = {"max_pool_blocks_routed", "max_pool_blocks_routed_grad"}
IMAGE_KERNELS = {"max_pool2d", "max_pool2d_grad", "max_pool2d_routed", "max_pool2d_routed_grad"}


def conv_pool(case, dtype="float64"):
    """(graph, pool output) of one case."""
    cin, f, k, s, p, d, pool, (h, w), act = case
    g = Graph(dtype=dtype)
    z = g.conv2d(g.input("x", (None, cin, h, w)), f, k, strides=s, padding=p, dilation=d,
                 activation=act, name="c")
    return g, g.max_pool2d(z, pool)


def kernels(g, outputs, loss=None, wrt=()):
    """The kernels of the fused, lowered program computing ``outputs`` (and the
    gradients of ``loss`` with respect to ``wrt``)."""
    checked = check_graph(g.nx, [*outputs, *([loss] if loss else [])])
    outs = list(outputs)
    if loss:
        checked, grads = differentiate(checked, loss, list(wrt))
        outs += list(dict.fromkeys(grads.values()))
    return [i.kernel for i in build_program(checked, outs, 3).instructions]


def _training_kernels(g, y, wrt):
    t = g.input("t", g.nx.nodes[y.name]["shape"])
    loss = g.mse(y, t, reduction="sum", name="loss")
    return kernels(g, [y.name], loss.name, wrt)


@pytest.mark.parametrize("case", CASES)
def test_these_cases_take_tile_order(case):
    g, y = conv_pool(case)
    ks = _training_kernels(g, y, ["c/W", "c/b"])
    assert ROUTED_BLOCK_KERNELS <= set(ks) and not (IMAGE_KERNELS | BLOCK_KERNELS) & set(ks)
    if case[-1] == "relu":                   # the ReLU's gradient moved onto the pooled gradient
        assert ks.count("relu_grad") == 1
    g, y = conv_pool(case)
    assert "max_pool_blocks" in kernels(g, [y.name])                   # inference too


def test_the_input_gradient_keeps_image_order():
    g, y = conv_pool(CASES[0])
    ks = _training_kernels(g, y, ["x", "c/W"])
    assert not (BLOCK_KERNELS | ROUTED_BLOCK_KERNELS) & set(ks) and "max_pool2d_routed_grad" in ks


def test_a_convolution_output_that_is_a_program_output_keeps_image_order():
    g, y = conv_pool(CASES[0])
    assert "max_pool_blocks" not in kernels(g, [y.name, "c/relu"])


def test_another_reader_keeps_image_order():
    g = Graph(dtype="float64")
    c = g.conv2d(g.input("x", (None, 1, 8, 8)), 8, 3, padding="same", activation="relu", name="c")
    out = g.add(g.flatten(g.max_pool2d(c, 2)), g.flatten(g.avg_pool2d(c, 2)))
    assert "max_pool_blocks" not in kernels(g, [out.name])


@pytest.mark.parametrize("pool", [dict(pool_size=2, strides=1), dict(pool_size=2, padding=1),
                                  dict(pool_size=2, dilation=2), dict(pool_size=3)])
def test_pools_that_do_not_tile_keep_image_order(pool):
    g = Graph(dtype="float64")
    c = g.conv2d(g.input("x", (None, 1, 8, 8)), 8, 3, padding="same", activation="relu")
    y = g.max_pool2d(c, **pool)                              # pool 3 leaves 8 % 3 rows over
    assert "max_pool_blocks" not in kernels(g, [y.name])


def test_many_columns_keep_image_order():
    g = Graph(dtype="float64")                               # 4 * 9 columns >= 2 * 8 filters
    y = g.max_pool2d(g.conv2d(g.input("x", (None, 4, 8, 8)), 8, 3, padding="same", activation="relu"), 2)
    assert "max_pool_blocks" not in kernels(g, [y.name])


# max pools of a ReLU's output in image order (not tiling, or many columns): the
# ReLU's gradient moves onto the pooled gradient all the same
RELU_POOLS = [dict(pool_size=3, strides=2, padding=1), dict(pool_size=2, strides=1),
              dict(pool_size=2, ceil_mode=True), dict(pool_size=2, dilation=2), dict(pool_size=2)]


def relu_pool(pool, dtype="float64"):
    """(graph, pool output): a 3-channel convolution (27 columns: image order), ReLU, max pool."""
    g = Graph(dtype=dtype)
    c = g.conv2d(g.input("x", (None, 3, 7, 9)), 4, 3, padding="same", activation="relu", name="c")
    return g, g.max_pool2d(c, **pool)


@pytest.mark.parametrize("pool", RELU_POOLS)
def test_the_relu_gradient_moves_onto_the_pooled_gradient(pool):
    g, y = relu_pool(pool)
    checked = check_graph(g.nx, [y.name])
    t = g.input("t", checked.nodes[y.name]["shape"])
    loss = g.mse(y, t, reduction="sum", name="loss")
    checked = check_graph(g.nx, [y.name, loss.name])
    checked, grads = differentiate(checked, loss.name, ["x", "c/W"])
    program = build_program(checked, [y.name, *grads.values()], 3)
    by_node = {i.node: i for i in program.instructions}
    relu = [i for i in program.instructions if i.kernel == "relu_grad"]
    assert len(relu) == 1 and program.buffers[relu[0].outputs[0]].shape == program.buffers[y.name].shape
    assert any(i.kernel == "max_pool2d_routed_grad" and relu[0].node in i.inputs for i in by_node.values())


# ---------------------------------------------------------------- the kernels

def _tile_order(image, ph, pw, blocks_first=True):
    """(N, C, H, W) -> (N, ph * pw, C, H / ph * W / pw), block (i, j) = pixels
    (ph a + i, pw b + j); ``blocks_first=False``: (N, C, ph * pw, ...), im2col's rows."""
    n, c, h, w = image.shape
    tiles = image.reshape(n, c, h // ph, ph, w // pw, pw).transpose(0, 1, 3, 5, 2, 4).reshape(
        n, c, ph * pw, (h // ph) * (w // pw))
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3)) if blocks_first else tiles


@pytest.mark.parametrize("k, s, d, blocks", [((3, 3), (1, 1), (1, 1), (2, 2)),
                                             ((3, 2), (2, 1), (1, 2), (2, 3)),
                                             ((2, 2), (1, 1), (2, 1), (3, 1))])
def test_im2col_in_tile_order_reads_every_window(k, s, d, blocks):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 13, 14))
    oh, ow = (13 - d[0] * (k[0] - 1) - 1) // s[0] + 1, (14 - d[1] * (k[1] - 1) - 1) // s[1] + 1
    oh, ow = oh - oh % blocks[0], ow - ow % blocks[1]         # whole tiles
    h, w = (oh - 1) * s[0] + d[0] * (k[0] - 1) + 1, (ow - 1) * s[1] + d[1] * (k[1] - 1) + 1
    x = x[:, :, :h, :w].copy()
    want = np.empty((2, 3, k[0], k[1], oh, ow))
    for i, j, a, b in np.ndindex(k[0], k[1], oh, ow):        # window by window
        want[:, :, i, j, a, b] = x[:, :, a * s[0] + i * d[0], b * s[1] + j * d[1]]
    want = _tile_order(want.reshape(2, 3 * k[0] * k[1], oh, ow), *blocks, blocks_first=False).reshape(2, -1, oh * ow)
    cols = np.full((2, 3 * k[0] * k[1], oh * ow), np.nan)
    KERNELS["im2col"]([x], [cols], kernel_size=list(k), strides=list(s), dilation=list(d), blocks=list(blocks))()
    np.testing.assert_array_equal(cols, want)


@pytest.mark.parametrize("size, tile", [((2, 3, 8, 6), (2, 2)), ((2, 3, 9, 6), (3, 3)),
                                        ((3, 2, 6, 4), (2, 1)), ((1, 2, 4, 9), (1, 3))])
@pytest.mark.parametrize("chunk_bytes", [None, 1], ids=["whole", "image-by-image"])
def test_max_pool_blocks_and_gradient_match_window_loops(size, tile, chunk_bytes, monkeypatch):
    rng = np.random.default_rng(2)
    x = np.maximum(rng.integers(-3, 3, size), 0).astype(np.float64)   # many ties, as after relu
    n, c, h, w = size
    oh, ow = h // tile[0], w // tile[1]
    want_y, want_dx = np.empty((n, c, oh, ow)), np.zeros_like(x)
    dy = rng.normal(size=(n, c, oh, ow))
    for a, b, i, j in np.ndindex(n, c, oh, ow):
        window = x[a, b, i * tile[0]:(i + 1) * tile[0], j * tile[1]:(j + 1) * tile[1]]
        want_y[a, b, i, j] = window.max()
        p, q = np.unravel_index(np.argmax(window), window.shape)        # argmax: the first
        want_dx[a, b, i * tile[0] + p, j * tile[1] + q] = dy[a, b, i, j]
    xt = _tile_order(x, *tile)
    y = np.full((n, c, oh, ow), np.nan)
    bind(KERNELS["max_pool_blocks"], [xt], [y], {"pooled_hw": [oh, ow]})()
    np.testing.assert_array_equal(y, want_y)
    dx = np.full_like(xt, np.nan)
    scratch = [np.full(s, 7, dt) for s, dt in KERNELS["max_pool_blocks_grad"].scratch_buffers(
        [dy.shape, xt.shape, y.shape], xt.shape, "float64")]
    run = bind(KERNELS["max_pool_blocks_grad"], [dy, xt, y], [dx, *scratch], {"pooled_hw": [oh, ow]})
    for _ in range(2):                        # a second step finds no state left by the first
        run()
        np.testing.assert_array_equal(dx, _tile_order(want_dx, *tile))
    # the training program's pair: the forward keeps each window's route, the gradient reads it
    if chunk_bytes is not None:              # cut into batch chunks of one image each
        from graphnn.runtime.kernels import pool as pool_kernels
        monkeypatch.setattr(pool_kernels, "ROUTED_CHUNK_BYTES", chunk_bytes)
    y, routes = np.full((n, c, oh, ow), np.nan), np.ones((n, xt.shape[1], c, oh, ow), np.int8)
    forward = bind(KERNELS["max_pool_blocks_routed"], [xt], [y, routes, np.ones(y.shape, bool)],
                   {"pooled_hw": [oh, ow]})
    backward = bind(KERNELS["max_pool_blocks_routed_grad"], [dy, routes], [dx], {"pooled_hw": [oh, ow]})
    for _ in range(2):
        dx.fill(np.nan)
        forward()
        backward()
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal((routes == -1).sum(axis=1), 1)
        assert np.isin(routes, (0, -1)).all()
        np.testing.assert_array_equal(dx, _tile_order(want_dx, *tile))


def test_lowering_without_the_outputs_keeps_image_order_and_the_relu_gradient():
    """lower(g) alone does not know what the program returns: no tile order, no move."""
    from graphnn.compiler.fuse import fuse_epilogues
    from graphnn.compiler.lower import lower
    g, y = conv_pool(CASES[0])
    t = g.input("t", (None, 8, 4, 5))
    loss = g.mse(y, t, reduction="sum", name="loss")
    checked, grads = differentiate(check_graph(g.nx, [y.name, loss.name]), loss.name, ["c/W"])
    lowered = lower(fuse_epilogues(checked, [y.name, *grads.values()]))
    ops = [d["op"] for _, d in lowered.nodes(data=True)]
    assert not {"max_pool_blocks", "max_pool_blocks_routed"} & set(ops) and "max_pool2d_routed_grad" in ops


@pytest.mark.parametrize("pool", RELU_POOLS)
def test_the_relu_moves_after_the_max_pool(pool):
    """relu(max_pool(z)) in place of max_pool(relu(z)): the convolution's GEMM has no
    epilogue left, and the ReLU runs on the pooled image (PyTorch parity:
    tests/parity/test_conv_pool_blocks.py)."""
    for training in (False, True):
        g, y = relu_pool(pool)
        if training:
            t = g.input("t", check_graph(g.nx, [y.name]).nodes[y.name]["shape"])
            loss = g.mse(y, t, reduction="sum", name="loss")
            checked, grads = differentiate(check_graph(g.nx, [y.name, loss.name]), loss.name, ["x", "c/W"])
            program = build_program(checked, [y.name, *grads.values()], 3)
        else:
            program = build_program(check_graph(g.nx, [y.name]), [y.name], 3)
        gemm = next(i for i in program.instructions if i.node == "c/relu/gemm")
        assert gemm.kernel == "matmul"
        relu = next(i for i in program.instructions if i.kernel == "relu")
        assert relu.node == y.name and program.buffers[relu.inputs[0]].shape == program.buffers[y.name].shape


def test_the_relu_stays_when_another_op_reads_the_convolution():
    g = Graph(dtype="float64")
    c = g.conv2d(g.input("x", (None, 3, 8, 8)), 4, 3, padding="same", activation="relu", name="c")
    out = g.add(g.flatten(g.max_pool2d(c, 2)), g.flatten(g.avg_pool2d(c, 2)))
    program = build_program(check_graph(g.nx, [out.name]), [out.name], 3)
    gemm = next(i for i in program.instructions if i.node == "c/relu/gemm")
    assert gemm.kernel == "fused" and [p["kernel"] for p in gemm.attrs["epilogue"]] == ["relu"]


@pytest.mark.parametrize("tiles", [2, 4])
def test_tile_order_gemms_match_einsum(tiles):
    """matmul_tiles: w times each tile offset's columns, (N, P, F, M); its weight
    gradient: cols @ dy^T per image and offset, (N, P, K, F)."""
    rng = np.random.default_rng(tiles)
    n, f, k, m = 3, 4, 5, 6
    w, cols = rng.normal(size=(f, k)), rng.normal(size=(n, k, tiles * m))
    y = np.full((n, tiles, f, m), np.nan)
    bind(KERNELS["matmul_tiles"], [w, cols], [y], {"tiles": tiles})()
    blocks = cols.reshape(n, k, tiles, m)
    np.testing.assert_allclose(y, np.einsum("fk,nkpm->npfm", w, blocks), rtol=1e-13)
    dy = rng.normal(size=(n, tiles, f, m))
    g = np.full((n, tiles, k, f), np.nan)
    bind(KERNELS["matmul_tiles_grad"], [cols, dy], [g], {"tiles": tiles})()
    np.testing.assert_allclose(g, np.einsum("nkpm,npfm->npkf", blocks, dy), rtol=1e-13)
