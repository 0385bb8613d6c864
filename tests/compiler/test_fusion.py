"""Fusion: fused programs compute what unfused ones do, in fewer kernels."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim
from tests.example_graphs import EXAMPLE_GRAPHS, data


def trained(name, fuse, optimizer):
    g, x, out, loss, shape, classes = EXAMPLE_GRAPHS[name]("float64")
    model = Model(g, inputs=x, outputs=out, seed=1)
    model.compile(loss=loss, optimizer=optimizer(), fuse=fuse)
    xs, ys = data(shape, classes, out.shape, 13)
    hist = model.fit(xs, ys, epochs=2, batch_size=5, seed=2, verbose=0)
    return model, hist, model.predict(xs)


@pytest.mark.parametrize("name", sorted(EXAMPLE_GRAPHS))
@pytest.mark.parametrize("optimizer", [lambda: optim.SGD(0.05, momentum=0.9, nesterov=True),
                                       lambda: optim.Adam(0.01)], ids=["sgd", "adam"])
def test_fused_equals_unfused_in_float64(name, optimizer):
    fused, hist_f, pred_f = trained(name, True, optimizer)
    plain, hist_p, pred_p = trained(name, False, optimizer)
    np.testing.assert_allclose(hist_f.history["loss"], hist_p.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(pred_f, pred_p, rtol=1e-11, atol=1e-13)
    for k, v in fused.get_weights().items():
        np.testing.assert_allclose(v, plain.get_weights()[k], rtol=1e-11, atol=1e-13)


def kernels(model, purpose="train", batch=4, fuse=None):
    return [i.kernel for i in model.program(purpose, batch, fuse=fuse).instructions]


def test_dense_layer_is_one_kernel_forward_and_backward_fuses_the_activation():
    g = Graph()
    x = g.input("x", (None, 5))
    h = g.dense(x, 4, activation="relu", name="h")
    model = Model(g, inputs=x, outputs=g.dense(h, 2, name="out"))
    model.compile(loss="mse", optimizer="sgd")
    program = model.program("predict", 4)
    assert [(i.kernel, i.node) for i in program.instructions] == [("fused", "h/relu"),
                                                                  ("fused", "out/bias_add")]
    anchor = program.instructions[0].attrs
    assert anchor["anchor"]["kernel"] == "matmul"
    assert [p["kernel"] for p in anchor["epilogue"]] == ["bias_add", "relu"]
    train = model.program("train", 4).instructions
    backward = [i for i in train if i.node == "h/relu/grad_relu_grad"]
    assert len(backward) == 1 and backward[0].kernel == "fused"
    assert backward[0].attrs["anchor"]["kernel"] == "matmul"          # dx of the next layer...
    assert [p["kernel"] for p in backward[0].attrs["epilogue"]] == ["relu_grad"]   # ...times relu'
    assert "relu" not in kernels(model, fuse=True) and "relu" in kernels(model, fuse=False)


def test_convolution_bias_and_activation_become_one_gemm():
    g = Graph()
    x = g.input("img", (None, 2, 6, 6))
    y = g.conv2d(x, 3, 3, padding="same", activation="tanh", name="c")
    model = Model(g, inputs=x, outputs=y)
    ks = kernels(model, "predict")
    # the bias is the weights' last column and the columns' last row is ones:
    # [W | b] @ [cols; 1] (the concat copies F * (K + 1) numbers), then tanh in place
    assert ks == ["pad2d", "im2col", "concat", "fused"]
    program = model.program("predict", 4)
    fused = program.instructions[-1].attrs
    assert fused["anchor"]["kernel"] == "matmul"
    assert [p["kernel"] for p in fused["epilogue"]] == ["tanh"]
    assert program.instructions[1].attrs["bias_row"] is True


def test_softmax_then_cross_entropy_is_stable_at_huge_logits():
    g = Graph(dtype="float64")
    z = g.input("z", (None, 3))
    labels = g.input("labels", (None,), dtype="int64")
    loss = g.cross_entropy(g.softmax(z), labels)
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]])
    y = np.array([1, 2])
    m = logits.max(1, keepdims=True)
    exact = -np.mean((logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True)))[[0, 1], y])
    from graphnn.compiler import compile_graph
    from graphnn.runtime import Executor
    fused = compile_graph(g.nx, [loss.name], 2)
    assert [i.kernel for i in fused.instructions] == ["softmax_cross_entropy"]
    got = float(Executor(fused).run({"z": logits, "labels": y})[loss.name])
    assert got == pytest.approx(exact, rel=1e-12)                 # 1.5e4, exactly
    plain = compile_graph(g.nx, [loss.name], 2, fuse=False)        # a correctness rewrite:
    assert [i.kernel for i in plain.instructions] == ["softmax_cross_entropy"]   # fusion off too
    unfused = float(Executor(plain).run({"z": logits, "labels": y})[loss.name])
    assert unfused == pytest.approx(exact, rel=1e-12)     # the pair would saturate at -log(1e-7)


def test_softmax_kept_when_it_is_also_an_output():
    g = Graph()
    x = g.input("x", (None, 4))
    probs = g.softmax(g.dense(x, 3), name="probs")
    model = Model(g, inputs=x, outputs=probs)
    model.compile(loss="categorical_cross_entropy", optimizer="sgd")
    ks = kernels(model)
    assert "softmax_cross_entropy" in ks and "softmax" in ks and "cross_entropy" not in ks
