"""Import: ONNX files become graphnn Models that predict as onnxruntime does,
and that can be summarized, plotted, compiled, evaluated and fine-tuned."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="import needs the onnx extra: pip install graphnn[onnx]")
ort = pytest.importorskip("onnxruntime", reason="imported models are checked against onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphnn.onnx as gx  # noqa: E402
from graphnn import GraphError, plot_model  # noqa: E402
from graphnn.onnx import backend  # noqa: E402
from tests.onnx.test_export import MODELS  # noqa: E402


def _onnxruntime(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {proto.graph.input[0].name: x})[0]


def pytorch_style_cnn(seed=0):
    """What torch.onnx writes for conv -> relu -> x.view(x.size(0), -1) -> linear:
    the reshape's target comes from a Shape/Gather/Unsqueeze/Concat subgraph."""
    rng = np.random.default_rng(seed)
    init = lambda name, *shape: numpy_helper.from_array(rng.normal(size=shape).astype(np.float32) * 0.3, name)
    ints = lambda name, values: numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], name="/conv/Conv"),
        helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="/pool/MaxPool"),
        helper.make_node("Shape", ["p"], ["shape"], name="/Shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0, name="/Gather"),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"], name="/Unsqueeze"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], axis=0, name="/Concat"),
        helper.make_node("Reshape", ["p", "target"], ["flat"], name="/Reshape"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1, name="/fc/Gemm"),
    ]
    graph = helper.make_graph(
        nodes, "torch_jit",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 2, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", 5])],
        initializer=[init("conv.weight", 4, 2, 3, 3), init("conv.bias", 4), init("fc.weight", 5, 36),
                     init("fc.bias", 5), ints("zero", 0), ints("axes0", [0]), ints("minus_one", [-1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_shape_subgraphs_fold_and_predictions_match_onnxruntime():
    proto = pytorch_style_cnn()
    model = gx.load(proto)
    assert model.graph["flat"].shape == (None, 36)                      # static, batch symbolic
    assert not any(n in model.graph.nx for n in ("shape", "batch", "target"))   # folded away
    for batch in (1, 7):
        x = np.random.default_rng(batch).normal(size=(batch, 2, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x), _onnxruntime(proto, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["cnn", "inception", "gru", "lstm", "batch_norm", "conv_attributes",
                                  "autoencoder"])
def test_exported_models_load_back_and_predict_the_same(name, tmp_path):
    original = MODELS[name]()
    path = str(tmp_path / "m.onnx")
    gx.export(original, path)
    loaded = gx.load(path)
    shape = original._checked.nodes[original.inputs[0]]["shape"][1:]
    x = np.random.default_rng(3).normal(size=(7, *shape)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), original.predict(x), atol=1e-5, rtol=0)


def test_an_imported_model_is_summarized_plotted_compiled_evaluated_and_fine_tuned(tmp_path):
    model = gx.load(pytorch_style_cnn())
    assert "/conv/Conv" in model.summary() or "c" in model.summary()
    for view in ("graph", "training", "compiled"):
        if view == "training":
            model.compile(loss="softmax_cross_entropy", optimizer="adam")
        assert "digraph" in plot_model(model, view=view).source
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2, 6, 6)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 1].mean(axis=(1, 2)) > 0)
    before = model.evaluate(x, y)["loss"]
    weights = model.get_weights()
    assert {"conv.weight", "conv.bias", "fc.weight", "fc.bias"} <= set(weights)   # trainable
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert model.evaluate(x, y)["loss"] < 0.7 * before
    assert not np.allclose(model.get_weights()["fc.weight"], weights["fc.weight"])


def test_every_unsupported_node_is_reported_at_once():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Cos", ["x"], ["e"], name="my_cos"),
             helper.make_node("Cast", ["x"], ["g"], to=TensorProto.INT64, name="to_int"),
             helper.make_node("MaxPool", ["x"], ["p", "where"], kernel_shape=[2, 2], name="with_indices"),
             helper.make_node("Div", ["k", "k"], ["kk"], name="integer_div"),
             helper.make_node("Sum", ["e", "g", "p"], ["y"], name="total")]
    proto = helper.make_model(helper.make_graph(nodes, "g", [x, k], [y]),
                              opset_imports=[helper.make_opsetid("", 20)])
    with pytest.raises(GraphError) as caught:
        gx.load(proto)
    text = str(caught.value)
    assert caught.value.nodes == ["my_cos", "to_int", "with_indices", "integer_div"]
    assert "(Div): Div on int64: graphnn computes it on float32/float64" in text
    assert "(Cos)" in text and "supported ops:" in text
    assert "(Cast)" in text and "a cast from float32 to int64" in text
    assert "(MaxPool)" in text and "Indices output" in text


def test_graphnn_without_onnx_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)          # import onnx now fails
    with pytest.raises(ImportError, match=r"pip install graphnn\[onnx\]"):
        gx.load("model.onnx")


def test_a_linear_resize_runs_as_the_map_onnxruntime_computes():
    """Bilinear upsampling by 1.5 (no whole factor): imported as a fixed pixel map."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 9])
    scales = numpy_helper.from_array(np.array([1, 1, 1.5, 1.5], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    proto = helper.make_model(helper.make_graph([node], "g", [x], [y], initializer=[scales]),
                              opset_imports=[helper.make_opsetid("", 19)])
    model = gx.load(proto)
    data = np.random.default_rng(0).normal(size=(3, 2, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(model.predict(data), _onnxruntime(proto, data), atol=1e-5, rtol=0)


def test_symbolic_dimensions_are_named_with_the_rule_that_refuses_them():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T"])
    proto = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    with pytest.raises(GraphError, match=r"dimension 1 is symbolic \(T\); only the first \(the batch\) may be"):
        gx.load(proto)
    with pytest.raises(GraphError, match=r"dimension 0 is symbolic \(N\); with batch_symbolic=False every "
                                         r"dimension must be fixed"):
        gx.load(proto, batch_symbolic=False)


def _onnx_lstm(peepholes=False, output="Y", steps=4, seed=0):
    """One ONNX LSTM node (time first, as onnxruntime runs it, between transposes
    from and to batch first; fixed shapes, as the batch moves) with initializer
    weights and a bias."""
    rng = np.random.default_rng(seed)
    features, hidden = 3, 5
    init = lambda name, *shape: numpy_helper.from_array(rng.normal(size=shape).astype(np.float32) * 0.5, name)
    inputs = ["xt", "W", "R", "B", "", "", ""] + (["P"] if peepholes else [])
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", inputs, ["Y", "Y_h"] if output == "Y" else ["", "Y_h"],
                              hidden_size=hidden, name="rnn"),
             helper.make_node("Transpose", [output], ["out"], perm=[2, 0, 1, 3] if output == "Y" else [1, 0, 2])]
    shape = [3, steps, 1, hidden] if output == "Y" else [3, 1, hidden]
    inits = [init("W", 1, 4 * hidden, features), init("R", 1, 4 * hidden, hidden), init("B", 1, 8 * hidden)]
    graph = helper.make_graph(
        nodes, "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, steps, features])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        initializer=inits + ([init("P", 1, 3 * hidden)] if peepholes else []))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("output, steps", [("Y", 4), ("Y_h", 4), ("Y", 1)])
def test_an_onnx_lstm_becomes_one_scan_and_predicts_as_onnxruntime(output, steps):
    """Forward, zero initial states, a bias, no peepholes: graphnn's own LSTM (the
    weights reordered into its gate order, one lstm_scan); with peepholes, the
    ops unrolled step by step. Both predict what onnxruntime does."""
    for peepholes in (False, True):
        proto = _onnx_lstm(peepholes, output, steps)
        model = gx.load(proto, batch_symbolic=False)
        ops = {d["op"] for _, d in model.graph.nx.nodes(data=True)}
        assert ("lstm_scan" in ops) != peepholes
        x = np.random.default_rng(1).normal(size=(3, steps, 3)).astype(np.float32)
        (got,) = backend.prepare(proto).run([x])             # fixed shapes: run as the backend does
        np.testing.assert_allclose(got, _onnxruntime(proto, x), atol=1e-5, rtol=0)


def test_an_imported_scan_is_drawn_with_its_loop():
    """An imported LSTM's nodes are named after the ONNX node's output, not a
    graphnn layer: the views still draw its scan with the step count (was a
    KeyError in the compiled and training views)."""
    model = gx.load(_onnx_lstm(steps=4), batch_symbolic=False)
    assert re.search(r'(\w+) -> \1 \[label="x 4 steps"', plot_model(model, view="compiled").source)
    model.compile(loss="mse", optimizer="sgd")
    assert re.search(r'(\w+) -> \1 \[label="x 4 steps back"', plot_model(model, view="training").source)


def test_a_model_imported_with_fixed_shapes_predicts():
    """batch_symbolic=False keeps every dimension as written: no input has a batch
    axis to split, so an output without one is no sign of a per-batch value, and
    predict runs it (was refused: 'no batch axis ... would depend on batch_size')."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])
    proto = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    data = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(gx.load(proto, batch_symbolic=False).predict(data), np.maximum(data, 0))
