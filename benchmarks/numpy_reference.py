"""Plain layer-by-layer NumPy training steps, the way one writes them by hand:
each layer a forward and a backward function, arrays allocated as they come.

The convolution uses the usual im2col (strided view + one copy + GEMM) and a
col2im over kernel offsets, and 2x2 max pooling by reshaping: a fair baseline,
not a naive one.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _glorot(rng, fan_in, fan_out, shape):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


class SGDMomentum:
    def __init__(self, params, lr=0.01, momentum=0.9):
        self.params, self.lr, self.mu = params, lr, momentum
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        for p, g, v in zip(self.params, grads, self.v):
            v *= self.mu
            v += g
            p -= self.lr * v


def softmax_ce(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


class MLP:
    def __init__(self, sizes=(784, 512, 256, 10), seed=0):
        rng = np.random.default_rng(seed)
        self.W = [_glorot(rng, a, b, (a, b)) for a, b in itertools.pairwise(sizes)]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.opt = SGDMomentum(self.W + self.b)

    def step(self, x, y):
        acts = [x]
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(self.W) - 1 else z)
        loss, d = softmax_ce(acts[-1], y)
        gw, gb = [], []
        for i in reversed(range(len(self.W))):
            gw.insert(0, acts[i].T @ d)
            gb.insert(0, d.sum(axis=0))
            if i:
                d = (d @ self.W[i].T) * (acts[i] > 0)
        self.opt.step(gw + gb)
        return loss


def conv_forward(x, w, b):
    """'same' 3x3 convolution, stride 1, of (N, C, H, W) with w (F, C, 3, 3)."""
    n, c, h, wd = x.shape
    f = w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(xp, (3, 3), axis=(2, 3))          # (N, C, H, W, 3, 3)
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * 9)
    out = cols @ w.reshape(f, -1).T + b                              # (N*H*W, F)
    return out.reshape(n, h, wd, f).transpose(0, 3, 1, 2), cols


def conv_backward(dout, cols, x_shape, w):
    n, c, h, wd = x_shape
    f = w.shape[0]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, f)
    dw = (d2.T @ cols).reshape(w.shape)
    db = d2.sum(axis=0)
    dcols = (d2 @ w.reshape(f, -1)).reshape(n, h, wd, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, wd + 2), dout.dtype)
    for i in range(3):
        for j in range(3):
            dxp[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1], dw, db


def pool_forward(x):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = blocks.max(axis=(3, 5))
    mask = blocks == out[:, :, :, None, :, None]
    return out, mask


def pool_backward(dout, mask):
    d = mask * dout[:, :, :, None, :, None]
    n, c, h2, _, w2, _ = d.shape
    return d.reshape(n, c, h2 * 2, w2 * 2)


class CNN:
    """conv16-pool-conv32-pool-dense128-dense10 on (N, 1, 28, 28)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.params = [_glorot(rng, 9, 144, (16, 1, 3, 3)), np.zeros(16, np.float32),
                       _glorot(rng, 144, 288, (32, 16, 3, 3)), np.zeros(32, np.float32),
                       _glorot(rng, 1568, 128, (1568, 128)), np.zeros(128, np.float32),
                       _glorot(rng, 128, 10, (128, 10)), np.zeros(10, np.float32)]
        self.opt = SGDMomentum(self.params)

    def step(self, x, y):
        w1, b1, w2, b2, w3, b3, w4, b4 = self.params
        z1, cols1 = conv_forward(x, w1, b1)
        a1 = np.maximum(z1, 0)
        p1, m1 = pool_forward(a1)
        z2, cols2 = conv_forward(p1, w2, b2)
        a2 = np.maximum(z2, 0)
        p2, m2 = pool_forward(a2)
        flat = p2.reshape(len(x), -1)
        a3 = np.maximum(flat @ w3 + b3, 0)
        logits = a3 @ w4 + b4
        loss, d = softmax_ce(logits, y)
        gw4, gb4 = a3.T @ d, d.sum(0)
        d3 = (d @ w4.T) * (a3 > 0)
        gw3, gb3 = flat.T @ d3, d3.sum(0)
        dp2 = (d3 @ w3.T).reshape(p2.shape)
        da2 = pool_backward(dp2, m2) * (a2 > 0)
        dp1, gw2, gb2 = conv_backward(da2, cols2, p1.shape, w2)
        da1 = pool_backward(dp1, m1) * (a1 > 0)
        _, gw1, gb1 = conv_backward(da1, cols1, x.shape, w1)
        self.opt.step([gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4])
        return loss
