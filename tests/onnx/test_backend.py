"""graphnn.onnx.backend as onnx.backend.base.Backend promises it: prepare once,
run many times (inputs as a list or by name), run_model, supports_device."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the backend needs the onnx extra: pip install graphnn[onnx]")

from onnx import TensorProto, helper, numpy_helper

from graphnn.onnx import backend


def _model():
    """y = relu(x @ w + b), z = softmax(y); shape inputs fed at run time too (Reshape)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b")
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node("Relu", ["h"], ["y"]),
             helper.make_node("Reshape", ["y", "shape"], ["flat"]),
             helper.make_node("Softmax", ["flat"], ["z"], axis=-1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
                     helper.make_tensor_value_info("shape", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [6])], initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), w, b


def test_prepare_once_run_many_times_and_run_model_agree_with_numpy():
    model, w, b = _model()
    w, b = numpy_helper.to_array(w), numpy_helper.to_array(b)
    rep = backend.prepare(model, "CPU")
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(2, 4)).astype(np.float32)
        y = np.maximum(x @ w + b, 0)
        z = np.exp(y.ravel() - y.max()) / np.exp(y.ravel() - y.max()).sum()
        got_y, got_z = rep.run([x, np.array([6])])
        np.testing.assert_allclose(got_y, y, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got_z, z, rtol=1e-6, atol=1e-7)
        by_name = rep.run({"x": x, "shape": np.array([6])})
        np.testing.assert_array_equal(by_name[1], got_z)
    assert np.array_equal(backend.run_model(model, [x, np.array([6])])[0], got_y)


def test_supports_the_cpu_only():
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")


@pytest.mark.parametrize("starts, ends, steps", [([0, 3], [5, -1], [2, 1]), ([-1, 4], [-9, 0], [-1, -2]),
                                                 ([1, 100], [4, -100], [3, -3])])
def test_slices_with_any_step_agree_with_numpy(starts, ends, steps):
    """Steps other than 1 gather the rows NumPy's x[start:end:step] picks."""
    x = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    expected = x[starts[0]:ends[0]:steps[0], starts[1]:ends[1]:steps[1]]
    consts = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(np.array(v, np.int64)))
              for n, v in (("s", starts), ("e", ends), ("a", [0, 1]), ("k", steps))]
    graph = helper.make_graph(consts + [helper.make_node("Slice", ["x", "s", "e", "a", "k"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(expected.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (got,) = backend.run_model(model, [x])
    np.testing.assert_array_equal(got, expected)
