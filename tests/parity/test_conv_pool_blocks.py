"""A convolution read only by a tiling max pool is lowered in tile order
(compiler/blocked.py): its forward, the pool, the pool's and the ReLU's
gradients and the weight gradient then run on other layouts and other kernels.
Here they are compared with PyTorch in float64, on cases that take that path
(tests/compiler/test_blocked.py checks which cases do), with many ties in the
pooling windows (ReLU zeros, and inputs rounded to halves)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")
F = torch.nn.functional

import numpy as np  # noqa: E402

from tests.compiler.test_blocked import CASES, RELU_POOLS, conv_pool, relu_pool  # noqa: E402
from tests.parity.harness import check_against_torch, rng_for  # noqa: E402


def _case_id(case):
    return "-".join(str(v).replace(" ", "") for v in case)


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@pytest.mark.parametrize("wrt", [("w", "b"), ("x", "w", "b"), ("b",)], ids=["params", "params-and-input", "bias"])
def test_conv_relu_max_pool_in_tile_order(case, wrt):
    cin, f, k, s, p, d, pool, (h, w_), act = case
    rng = rng_for(f"blocks {case}")
    kh, kw = (k, k) if isinstance(k, int) else k
    x = np.round(rng.normal(size=(3, cin, h, w_)) * 2) / 2
    w, b = np.round(rng.normal(size=(f, cin, kh, kw)) * 2) / 2, np.round(rng.normal(size=f) * 2) / 2

    def torch_fn(x, w, b):              # stride 1 wherever the cases pad "same"
        z = F.conv2d(x, w, b, s, p, d)
        return F.max_pool2d(F.relu(z) if act == "relu" else z, pool)

    g, y = conv_pool(case)
    check_against_torch(f"conv {case} + max pool, tile order, d/d{wrt}", g, y, torch_fn,
                        {"x": x, "w": w, "b": b}, wrt=wrt, rng=rng, graph_names={"w": "c/W", "b": "c/b"})


@pytest.mark.parametrize("pool", RELU_POOLS, ids=[str(sorted(p.items())).replace(" ", "") for p in RELU_POOLS])
def test_relu_then_max_pool_in_image_order(pool):
    """The ReLU's gradient taken on the pooled gradient (overlapping, padded,
    ceil-mode and dilated windows): the same as PyTorch's."""
    rng = rng_for(f"relu pool {sorted(pool.items())}")
    x = np.round(rng.normal(size=(3, 3, 7, 9)) * 2) / 2
    w, b = np.round(rng.normal(size=(4, 3, 3, 3)) * 2) / 2, np.round(rng.normal(size=4) * 2) / 2

    def torch_fn(x, w, b):
        return F.max_pool2d(F.relu(F.conv2d(x, w, b, 1, "same")), pool["pool_size"], pool.get("strides"),
                            pool.get("padding", 0), pool.get("dilation", 1), pool.get("ceil_mode", False))

    g, y = relu_pool(pool)
    check_against_torch(f"conv + relu + max pool {pool}", g, y, torch_fn, {"x": x, "w": w, "b": b},
                        wrt=("x", "w", "b"), rng=rng, graph_names={"w": "c/W", "b": "c/b"})
