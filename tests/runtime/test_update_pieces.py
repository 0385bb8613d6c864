"""The optimizer kernels work on a large parameter piece by piece (L2-sized,
runtime/kernels/update.py); the result must be each optimizer's formula on the
whole array. References: the formulas written out in NumPy float64 (PyTorch's
forms, docs/conventions.md), three steps on a parameter of several pieces."""
from __future__ import annotations

import numpy as np
import pytest
from graphnn.runtime.kernels.update import (
    CHUNK_BYTES,
    _pieces,
    adadelta_update,
    adagrad_update,
    adam_update,
    rmsprop_update,
    sgd_update,
)

SHAPE = (3 * CHUNK_BYTES // 8 // 40 + 7, 40)       # float64: three pieces and a ragged end
RNG = np.random.default_rng(0)


def _grads(steps=3):
    return [RNG.normal(size=SHAPE) for _ in range(steps)]


def _zeros():
    return np.zeros(SHAPE)


def test_the_parameter_is_several_pieces():
    p = np.zeros(SHAPE)
    pieces = _pieces(p, p)
    assert len(pieces) == 4 and sum(len(a) for a, _ in pieces) == p.size
    assert all(np.shares_memory(a, p) for a, _ in pieces)


def test_a_strided_parameter_is_one_piece():
    p = np.zeros((10, 8))[:, ::2]
    assert _pieces(p, p) == [(p, p)]


@pytest.mark.parametrize("momentum,nesterov,decay", [(0.0, False, 0.0), (0.9, False, 0.0),
                                                      (0.9, True, 0.01), (0.5, False, 0.1)])
def test_sgd(momentum, nesterov, decay):
    p0, lr = RNG.normal(size=SHAPE), 0.05
    p, v, ref_p, ref_v = p0.copy(), _zeros(), p0.copy(), _zeros()
    ins = [p, None, np.array(lr)] + ([v] if momentum else [])
    for g in _grads():
        ins[1] = g
        sgd_update(ins, [p], momentum=momentum, nesterov=nesterov, weight_decay=decay,
                   step=np.empty(SHAPE))()
        d = g + decay * ref_p
        if momentum:
            ref_v = momentum * ref_v + d
            d = d + momentum * ref_v if nesterov else ref_v
        ref_p = ref_p - lr * d
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_adam(decay):
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    p0 = RNG.normal(size=SHAPE)
    p, m, v, t = p0.copy(), _zeros(), _zeros(), np.zeros(())
    ref_p, ref_m, ref_v = p0.copy(), _zeros(), _zeros()
    for k, g in enumerate(_grads(), start=1):
        adam_update([p, g, np.array(lr), m, v, t], [p, m, v, t], beta1=b1, beta2=b2, eps=eps,
                    weight_decay=decay, s=np.empty(SHAPE))()
        ref_p = ref_p * (1 - lr * decay)
        ref_m = b1 * ref_m + (1 - b1) * g
        ref_v = b2 * ref_v + (1 - b2) * g * g
        ref_p = ref_p - lr * (ref_m / (1 - b1 ** k)) / (np.sqrt(ref_v / (1 - b2 ** k)) + eps)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m, ref_m, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(v, ref_v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.9, True), (0.5, False), (0.0, True)])
def test_rmsprop(momentum, centered):
    rho, eps, lr = 0.9, 1e-8, 0.01
    p0 = RNG.normal(size=SHAPE)
    p, v, a, b = p0.copy(), _zeros(), _zeros(), _zeros()
    ref_p, ref_v, ref_a, ref_b = p0.copy(), _zeros(), _zeros(), _zeros()
    for g in _grads():
        ins = [p, g, np.array(lr), v] + ([a] if centered else []) + ([b] if momentum else [])
        rmsprop_update(ins, [p], rho=rho, eps=eps, momentum=momentum, centered=centered,
                       s=np.empty(SHAPE))()
        ref_v = rho * ref_v + (1 - rho) * g * g
        avg = ref_v
        if centered:
            ref_a = rho * ref_a + (1 - rho) * g
            avg = ref_v - ref_a ** 2
        d = g / (np.sqrt(avg) + eps)
        if momentum:
            ref_b = momentum * ref_b + d
            d = ref_b
        ref_p = ref_p - lr * d
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)


def test_adagrad():
    eps, lr = 1e-8, 0.1
    p0 = RNG.normal(size=SHAPE)
    p, acc, ref_p, ref_acc = p0.copy(), _zeros(), p0.copy(), _zeros()
    for g in _grads():
        adagrad_update([p, g, np.array(lr), acc], [p, acc], eps=eps, s=np.empty(SHAPE))()
        ref_acc = ref_acc + g * g
        ref_p = ref_p - lr * g / (np.sqrt(ref_acc) + eps)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)


def test_adadelta():
    rho, eps, lr = 0.9, 1e-6, 1.0
    p0 = RNG.normal(size=SHAPE)
    p, eg2, edx2 = p0.copy(), _zeros(), _zeros()
    ref_p, ref_eg2, ref_edx2 = p0.copy(), _zeros(), _zeros()
    for g in _grads():
        adadelta_update([p, g, np.array(lr), eg2, edx2], [p, eg2, edx2], rho=rho, eps=eps,
                        s=np.empty(SHAPE), d=np.empty(SHAPE))()
        ref_eg2 = rho * ref_eg2 + (1 - rho) * g * g
        d = np.sqrt(ref_edx2 + eps) / np.sqrt(ref_eg2 + eps) * g
        ref_edx2 = rho * ref_edx2 + (1 - rho) * d * d
        ref_p = ref_p - lr * d
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-14)
