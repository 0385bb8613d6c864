"""Export: every example model written as ONNX passes onnx.checker's full check,
and onnxruntime (an independent implementation) predicts what model.predict
does, within 1e-5, at batch sizes 1 and 7."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="export needs the onnx extra: pip install graphnn[onnx]")
ort = pytest.importorskip("onnxruntime", reason="the agreement checks run the export in onnxruntime")

from graphnn import Graph, Model  # noqa: E402
from graphnn.onnx import export  # noqa: E402
from tests.example_graphs import EXAMPLE_GRAPHS  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _from_graphs(name):
    g, x, out, *_ = EXAMPLE_GRAPHS[name]("float32")
    return Model(g, x, out)


def _batch_norm():
    """Convolution + batch norm (folded at inference) and dense + batch norm on
    features, with running statistics far from their initial 0 and 1."""
    g = Graph()
    x = g.input("img", (None, 2, 8, 8))
    h = g.batch_norm(g.conv2d(x, 4, 3, padding="same", name="conv"), name="bn_conv")
    h = g.relu(g.batch_norm(g.max_pool2d(g.relu(h), 2), name="bn_pooled"))     # not foldable
    h = g.batch_norm(g.dense(g.flatten(h), 6, name="fc"), name="bn_fc")
    model = Model(g, x, g.dense(h, 3, name="logits"))
    rng = np.random.default_rng(5)
    for name, value in model.variables.items():
        if "running_mean" in name or "beta" in name:
            value[...] = rng.normal(size=value.shape)
        elif "running_var" in name or "gamma" in name:
            value[...] = rng.uniform(0.5, 2.0, size=value.shape)
    return model


def _attributes():
    """The convolution and pooling attributes ONNX has: groups, depthwise,
    dilation, asymmetric padding, ceil_mode, count_include_pad."""
    g = Graph()
    x = g.input("img", (None, 4, 9, 9))
    h = g.conv2d(x, 6, 3, groups=2, dilation=2, padding=(1, 0, 2, 1), name="grouped")
    h = g.depthwise_conv2d(h, 3, padding="same", name="depthwise")
    h = g.max_pool2d(h, 2, ceil_mode=True, dilation=(1, 2))
    h = g.avg_pool2d(h, 3, strides=2, padding=1, count_include_pad=False)
    h = g.conv_transpose2d(h, 4, 3, strides=2, groups=2, name="up")
    return Model(g, x, g.flatten(h))


MODELS = {
    "mlp": lambda: _from_graphs("mlp"),
    "cnn": lambda: _example("mnist_cnn").build(),
    "inception": lambda: _example("mnist_inception").build(),
    "lstm": lambda: _example("mnist_lstm").build("lstm", units=12),
    "gru": lambda: _example("mnist_lstm").build("gru", units=12),
    "autoencoder": lambda: _example("mnist_autoencoder").build(),
    "batch_norm": _batch_norm,
    "recurrent_stack": lambda: _from_graphs("recurrent"),
    "vae": lambda: _from_graphs("vae"),
    "conv_attributes": _attributes,
}


def agreement(model, proto, batch, seed=0):
    """max |onnxruntime - model.predict| on random inputs of one batch size."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    shape = model._checked.nodes[model.inputs[0]]["shape"][1:]
    x = np.random.default_rng(seed).normal(size=(batch, *shape)).astype(np.float32)
    (got,) = session.run(None, {model.inputs[0]: x})
    return float(np.max(np.abs(got - model.predict(x))))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_passes_the_checker_and_agrees_with_onnxruntime(name, tmp_path):
    model = MODELS[name]()
    path = str(tmp_path / f"{name}.onnx")
    proto = export(model, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    for batch in (1, 7):
        assert agreement(model, proto, batch) <= 1e-5


def test_names_batch_symbol_and_initializers_follow_the_graph():
    model = MODELS["cnn"]()
    proto = export(model)
    nodes = {n.name for n in proto.graph.node}
    assert {"conv1/conv", "logits/matmul"} <= nodes
    inits = {t.name for t in proto.graph.initializer}
    assert {name for name in model.get_weights()} <= inits           # weights keep their names
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "N" and not dim.HasField("dim_value")
    w = next(t for t in proto.graph.initializer if t.name == "conv1/W")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(w), model.variables["conv1/W"])


def test_batch_norm_exports_in_inference_form():
    """A batch norm after a convolution or dense layer is folded into its weights
    (W * gamma / sqrt(running_var + eps)); one after pooling is a BatchNormalization
    reading the running statistics. Nothing reads the batch's statistics."""
    model = MODELS["batch_norm"]()
    proto = export(model)
    v = model.variables
    norms = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert [(n.name, list(n.input[1:])) for n in norms] == [
        ("bn_pooled/normalize", [f"bn_pooled/{k}" for k in ("gamma", "beta", "running_mean", "running_var")])]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(inits["bn_pooled/running_var"], v["bn_pooled/running_var"])
    for layer, weight, shape in (("bn_conv", "conv/W", (-1, 1, 1, 1)), ("bn_fc", "fc/W", (1, -1))):
        scale = v[f"{layer}/gamma"] / np.sqrt(v[f"{layer}/running_var"] + 1e-3)     # eps: the layer's default
        np.testing.assert_allclose(inits[f"{layer}/normalize/folded_W"], v[weight] * scale.reshape(shape),
                                   rtol=1e-6)
    assert not any(n.op_type.startswith("Reduce") for n in proto.graph.node)


def test_an_op_without_an_onnx_form_is_named():
    g = Graph()
    x = g.input("x", (None, 4))
    y = g.batch_norm(x, axis=-1)
    model = Model(g, x, g.op("l2_penalty", [g.dense(y, 2, name="fc")], scale=0.1))
    with pytest.raises(ValueError, match="l2_penalty"):
        export(model)


if __name__ == "__main__":        # the agreement figures of docs/onnx.md: python -m tests.onnx.test_export
    for name in sorted(MODELS):
        model = MODELS[name]()
        proto = export(model)
        print(f"{name:16s} batch 1: {agreement(model, proto, 1):.1e}  batch 7: "
              f"{agreement(model, proto, 7):.1e}  ({len(proto.graph.node)} ONNX nodes)")


def test_a_trained_cnn_with_routed_pools_exports_max_pool():
    """Training programs run routed max pools (a second output, the routes:
    compiler/ops/pool.py); export writes the inference graph, where each is
    still one MaxPool, and agrees with onnxruntime after a training step."""
    model = MODELS["cnn"]()
    model.compile(loss="softmax_cross_entropy", optimizer="sgd")
    shape = model._checked.nodes[model.inputs[0]]["shape"][1:]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, *shape)).astype(np.float32), rng.integers(0, 10, 8)
    kernels = [i.kernel for i in model.program("train", 8).instructions]
    assert "max_pool2d_routed_grad" in kernels or "max_pool_blocks_routed_grad" in kernels
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    proto = export(model)
    pools = sum(d["op"] == "max_pool2d" for _, d in model._checked.nodes(data=True))
    assert pools > 0 and [n.op_type for n in proto.graph.node].count("MaxPool") == pools
    assert agreement(model, proto, 7) <= 1e-5
