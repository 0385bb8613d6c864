"""Model: training uses every sample, results are reproducible, predictions match
a NumPy forward pass, and bad input gets a clear error that changes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import Graph, Model, optim


def linear_model(dtype="float64", seed=0):
    g = Graph(dtype=dtype)
    x = g.input("x", (None, 2))
    out = g.dense(x, 1, name="lin")
    return Model(g, inputs=x, outputs=out, seed=seed)


def classifier(seed=0, hidden=8):
    g = Graph()
    x = g.input("x", (None, 4))
    out = g.dense(g.dense(x, hidden, activation="relu", name="h"), 3, name="out")
    model = Model(g, inputs=x, outputs=out, seed=seed)
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(0.01), metrics=["accuracy"])
    return model


def data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


def test_every_sample_is_used_including_the_last_partial_batch():
    model = linear_model()
    model.compile(loss="mse", optimizer=optim.SGD(0.05))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 1))
    w, b = model.get_weights()["lin/W"].copy(), model.get_weights()["lin/b"].copy()
    for lo, hi in [(0, 4), (4, 8), (8, 10)]:          # batches of 4, 4 and the last 2
        err = x[lo:hi] @ w + b - y[lo:hi]
        k = 2.0 / err.size                             # mean over the batch's elements
        w, b = w - 0.05 * k * x[lo:hi].T @ err, b - 0.05 * k * err.sum(0)
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()["lin/W"], w, rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()["lin/b"], b, rtol=1e-12)


def test_same_seeds_give_identical_weights_bit_for_bit():
    x, y = data()
    runs = []
    for _ in range(2):
        model = classifier(seed=7)
        model.fit(x, y, epochs=3, batch_size=16, seed=11, verbose=0)
        runs.append(model.get_weights())
    for k in runs[0]:
        assert np.array_equal(runs[0][k], runs[1][k])
    other = classifier(seed=8)
    other.fit(x, y, epochs=3, batch_size=16, seed=11, verbose=0)
    assert not np.array_equal(other.get_weights()["h/W"], runs[0]["h/W"])


def test_predict_matches_a_numpy_forward_pass():
    model = classifier()
    x, _ = data(37)
    w = model.get_weights()
    h = np.maximum(x @ w["h/W"] + w["h/b"], 0)
    expected = h @ w["out/W"] + w["out/b"]
    np.testing.assert_allclose(model.predict(x, batch_size=16), expected, rtol=1e-5, atol=1e-6)


def test_predict_refuses_an_output_without_a_batch_axis():
    g = Graph()
    x = g.input("x", (None, 2))
    h = g.dense(x, 1, name="lin")
    total = g.op("reduce_sum", [h], name="total")       # (1, 1): one value per batch, not per sample
    model = Model(g, inputs=x, outputs=[h, total])
    with pytest.raises(ValueError, match=r"predict: output 'total' has shape \(1, 1\), no batch axis"):
        model.predict(np.ones((3, 2)), batch_size=2)


def test_evaluate_matches_numpy_loss_and_accuracy():
    model = classifier()
    x, y = data(30)
    logits = model.predict(x).astype(np.float64)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    result = model.evaluate(x, y, batch_size=7)
    assert result["loss"] == pytest.approx(-logp[np.arange(30), y].mean(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))


def test_one_hot_targets_train_like_labels():
    x, y = data()
    a, b = classifier(seed=3), classifier(seed=3)
    a.fit(x, y, epochs=2, batch_size=10, seed=1, verbose=0)
    b.fit(x, np.eye(3, dtype=np.float32)[y], epochs=2, batch_size=10, seed=1, verbose=0)
    np.testing.assert_allclose(a.get_weights()["out/W"], b.get_weights()["out/W"], rtol=1e-4, atol=1e-6)


def test_history_has_loss_metrics_and_validation():
    x, y = data()
    hist = classifier().fit(x, y, epochs=4, batch_size=16, validation_data=(x[:10], y[:10]), verbose=0)
    assert sorted(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(hist.history["loss"]) == 4 and hist.epoch == [0, 1, 2, 3]
    assert hist.history["loss"][-1] < hist.history["loss"][0]


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((5, 3)), np.zeros(5, int), r"input 'x' expects arrays of shape \(N, 4\), got \(5, 3\)"),
    (np.array([["a"] * 4] * 5), np.zeros(5, int), "expected numbers"),
    (np.zeros((5, 4)), np.array([0, 1, 2, 3, 0]), r"label 3 at row 3 is out of range.*0\.\.2"),
    (np.zeros((5, 4)), np.array([0, 1, -1, 0, 0]), "label -1 at row 2"),
    (np.zeros((5, 4)), np.array([0, 1.5, 1, 0, 0]), "non-integral"),
    (np.full((5, 4), np.nan), np.zeros(5, int), "'x' contains NaN"),
    (np.full((5, 4), 1e39), np.zeros(5, int), "'x' contains NaN or inf as float32"),
    (np.zeros((5, 4)), np.zeros(4, int), "different numbers of samples"),
])
def test_bad_input_is_named_and_changes_nothing(x, y, match):
    model = classifier()
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=1, verbose=0)
    for k, v in model.get_weights().items():
        assert np.array_equal(v, before[k])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_names_the_first_bad_node_and_keeps_the_weights():
    model = classifier()
    w = model.get_weights()
    w["h/W"][:] = 3e38                                  # x @ W overflows float32
    model.set_weights(w)
    x, y = data(8)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1.*node 'h/matmul'"):
        model.fit(np.abs(x) + 1, y, epochs=1, batch_size=8, verbose=0)
    for k, v in model.get_weights().items():
        assert np.array_equal(v, w[k]), k                 # the failed step changed nothing


def test_fit_before_compile_and_unknown_loss():
    model = linear_model()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'mse2'"):
        model.compile(loss="mse2")


def test_in_graph_loss_with_its_own_target_input():
    g = Graph()
    x, t = g.input("x", (None, 4)), g.input("labels", (None,), dtype="int64")
    logits = g.dense(x, 3, name="out")
    loss = g.softmax_cross_entropy(logits, t)
    model = Model(g, inputs=x, outputs=logits)
    model.compile(loss=loss, optimizer=optim.Adam(0.05), metrics=["accuracy"])
    xs, ys = data(60)
    hist = model.fit(xs, ys, epochs=20, batch_size=20, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.predict(xs).shape == (60, 3)


def test_sample_weights_scale_each_samples_share_of_loss_and_gradient():
    model = linear_model()
    model.compile(loss="mse", optimizer=optim.SGD(0.1))
    rng = np.random.default_rng(3)
    x, y, w_s = rng.normal(size=(6, 2)), rng.normal(size=(6, 1)), rng.uniform(0, 2, 6)
    w, b = model.get_weights()["lin/W"].copy(), model.get_weights()["lin/b"].copy()
    err = x @ w + b - y
    assert model.evaluate(x, y, sample_weight=w_s)["loss"] == pytest.approx(
        np.sum(w_s[:, None] * err ** 2) / err.size, rel=1e-12)
    model.fit(x, y, epochs=1, batch_size=6, shuffle=False, verbose=0, sample_weight=w_s)
    grad_w = 2.0 / err.size * x.T @ (w_s[:, None] * err)
    np.testing.assert_allclose(model.get_weights()["lin/W"], w - 0.1 * grad_w, rtol=1e-12)
    with pytest.raises(ValueError, match="sample_weight must be one finite weight >= 0"):
        model.fit(x, y, verbose=0, sample_weight=-np.ones(6))
    with pytest.raises(ValueError, match="different numbers of samples"):
        model.fit(x, y, verbose=0, sample_weight=np.ones(5))


def test_a_saved_categorical_cross_entropy_model_reloads_with_that_loss(tmp_path):
    # The saved loss is the op ("cross_entropy", on probabilities); reloading once
    # read it as the alias "cross_entropy" (softmax cross-entropy, on logits).
    from graphnn import load_model
    g = Graph(dtype="float64")
    x = g.input("x", (None, 4))
    out = g.dense(x, 3, activation="softmax", name="out")
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss="categorical_cross_entropy", optimizer="sgd")
    xs, labels = data(12)
    probs = model.predict(xs.astype(np.float64))
    expected = -np.mean(np.log(probs[np.arange(12), labels]))
    assert model.evaluate(xs, labels)["loss"] == pytest.approx(expected, rel=1e-9)
    model.save(str(tmp_path / "m.gnn"))
    assert load_model(str(tmp_path / "m.gnn")).evaluate(xs, labels)["loss"] == pytest.approx(expected, rel=1e-9)


def model_with_its_own_loss_node():
    """lin = x W + b; the graph's own mse(lin, t) node is the loss, t an input."""
    g = Graph(dtype="float64")
    x, t = g.input("x", (None, 2)), g.input("t", (None, 1))
    p = g.dense(x, 1, name="lin")
    err = g.mse(p, t)
    model = Model(g, inputs=[x, t], outputs=p)
    model.compile(loss=err, optimizer=optim.SGD(0.1))
    return model


def test_a_graph_loss_node_with_its_target_among_the_inputs_needs_no_y():
    """fit and evaluate with y=None when the loss node reads its target from x;
    the loss and the SGD step against the NumPy formulas."""
    model = model_with_its_own_loss_node()
    w, b = np.array([[0.5], [-1.0]]), np.array([0.25])
    model.set_weights({"lin/W": w, "lin/b": b})
    xs = np.array([[1.0, 2.0], [0.0, 1.0], [2.0, 0.0]])
    ts = np.array([[1.0], [0.0], [2.0]])
    r = xs @ w + b - ts
    assert model.evaluate([xs, ts])["loss"] == pytest.approx(np.mean(r ** 2), rel=1e-12)
    model.fit([xs, ts], epochs=1, batch_size=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()["lin/W"], w - 0.1 * 2 * xs.T @ r / 3, rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()["lin/b"], b - 0.1 * 2 * r.mean(0), rtol=1e-12)


@pytest.mark.parametrize("verb", ["evaluate", "fit"])
def test_sample_weight_without_y_is_refused(verb):
    """With y=None (a loss node fed its target through x) there is no target to
    weigh: sample_weight is refused by name (was silently ignored: the loss came
    out unweighted)."""
    model = model_with_its_own_loss_node()
    before = model.get_weights()
    xs, ts = np.ones((3, 2)), np.zeros((3, 1))
    with pytest.raises(ValueError, match="sample_weight was given without y"):
        getattr(model, verb)([xs, ts], sample_weight=np.array([1.0, 0.0, 0.0]), verbose=0)
    assert all((model.get_weights()[k] == v).all() for k, v in before.items())
