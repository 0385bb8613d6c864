"""Bad arguments to every public verb: fit, evaluate, predict, compile,
summary, plot_model, save and load_model. Each case asserts the exception
type, that the message names the argument at fault, and that the model's
weights, optimizer state and step count are exactly as before the call."""
from __future__ import annotations

import numpy as np
import pytest

from graphnn import load_model
from graphnn.viz import plot_model

from .common import X, Y, rejected, small_model

ONE_HOT = np.eye(3)[Y]


class NotACallback:
    pass


FIT = {
    "epochs-negative": (dict(epochs=-1), ValueError, ["epochs", "-1"]),
    "epochs-zero": (dict(epochs=0), ValueError, ["epochs", "0"]),
    "epochs-float": (dict(epochs=2.0), ValueError, ["epochs"]),
    "epochs-bool": (dict(epochs=True), ValueError, ["epochs"]),
    "batch-size-zero": (dict(batch_size=0), ValueError, ["batch_size"]),
    "batch-size-negative": (dict(batch_size=-4), ValueError, ["batch_size"]),
    "batch-size-string": (dict(batch_size="32"), ValueError, ["batch_size"]),
    "verbose": (dict(verbose=3), ValueError, ["verbose"]),
    "shuffle": (dict(shuffle="yes"), ValueError, ["shuffle"]),
    "seed-negative": (dict(seed=-1), ValueError, ["seed"]),
    "callbacks-not-list": (dict(callbacks=NotACallback()), ValueError, ["callbacks"]),
    "callbacks-item": (dict(callbacks=[NotACallback()]), ValueError, ["callbacks[0]"]),
    "x-empty": (dict(x=X[:0], y=Y[:0]), ValueError, ["x", "no samples"]),
    "x-wrong-width": (dict(x=X[:, :3]), ValueError, ["'x'", "(N, 4)"]),
    "x-strings": (dict(x=np.full((12, 4), "a")), ValueError, ["'x'", "numbers"]),
    "x-ragged": (dict(x=[[1.0, 2.0], [3.0]]), ValueError, ["'x'"]),
    "x-nan": (dict(x=np.where(np.eye(12, 4) > 0, np.nan, X)), ValueError, ["'x'", "NaN", "row 0"]),
    "x-dict-wrong-name": (dict(x={"pixels": X}), ValueError, ["pixels", "'x'"]),
    "y-missing": (dict(y=None), ValueError, ["y", "missing"]),
    "y-fewer-rows": (dict(y=Y[:7]), ValueError, ["different numbers of samples"]),
    "y-label-range": (dict(y=Y + 3), ValueError, ["y", "label", "0..2"]),
    "y-negative-label": (dict(y=-Y - 1), ValueError, ["y", "label"]),
    "y-fractional-labels": (dict(y=Y + 0.5), ValueError, ["y", "integers"]),
    "y-column": (dict(y=Y[:, None]), ValueError, ["y", "(N, 3)"]),
    "sample-weight-negative": (dict(sample_weight=-np.ones(12)), ValueError, ["sample_weight"]),
    "sample-weight-nan": (dict(sample_weight=np.full(12, np.nan)), ValueError, ["sample_weight"]),
    "sample-weight-2d": (dict(sample_weight=np.ones((12, 1))), ValueError, ["sample_weight"]),
    "sample-weight-short": (dict(sample_weight=np.ones(5)), ValueError, ["sample_weight"]),
    "validation-not-tuple": (dict(validation_data=X), ValueError, ["validation_data"]),
    "validation-one-item": (dict(validation_data=(X,)), ValueError, ["validation_data"]),
    "validation-shape": (dict(validation_data=(X[:, :2], Y)), ValueError, ["validation_data", "'x'"]),
    "validation-labels": (dict(validation_data=(X, Y + 7)), ValueError, ["validation_data", "label"]),
    "validation-empty": (dict(validation_data=(X[:0], Y[:0])), ValueError, ["validation_data", "no samples"]),
    "validation-weights": (dict(validation_data=(X, Y, -np.ones(12))), ValueError,
                           ["validation_data", "sample_weight"]),
}


@pytest.mark.parametrize("case", sorted(FIT), ids=str)
def test_fit_rejects_before_any_weight_changes(case):
    model = small_model()
    kwargs, error, names = FIT[case]
    args = {"x": X, "y": Y, "verbose": 0, **kwargs}
    with rejected(model, error, *names) as info:
        model.fit(**args)
    assert "'target'" not in str(info.value)       # an input the user never made


EVALUATE = {
    "batch-size-zero": (dict(batch_size=0), ValueError, ["batch_size"]),
    "batch-size-negative": (dict(batch_size=-1), ValueError, ["batch_size"]),
    "verbose": (dict(verbose="loud"), ValueError, ["verbose"]),
    "x-empty": (dict(x=X[:0], y=Y[:0]), ValueError, ["x", "no samples"]),
    "y-missing": (dict(y=None), ValueError, ["y"]),
    "y-label-range": (dict(y=Y * 10), ValueError, ["y", "label"]),
    "y-one-hot-width": (dict(y=ONE_HOT[:, :2]), ValueError, ["y", "(N, 3)"]),
    "sample-weight-shape": (dict(sample_weight=np.ones((2, 6))), ValueError, ["sample_weight"]),
}


@pytest.mark.parametrize("case", sorted(EVALUATE), ids=str)
def test_evaluate_rejects_bad_arguments(case):
    model = small_model()
    kwargs, error, names = EVALUATE[case]
    with rejected(model, error, *names) as info:
        model.evaluate(**{"x": X, "y": Y, **kwargs})
    assert "'target'" not in str(info.value)


PREDICT = {
    "batch-size-zero": (dict(batch_size=0), ["batch_size"]),
    "batch-size-negative": (dict(batch_size=-2), ["batch_size"]),
    "batch-size-float": (dict(batch_size=2.5), ["batch_size"]),
    "x-empty": (dict(x=X[:0]), ["x", "no samples"]),
    "x-1d": (dict(x=X[0]), ["'x'", "(N, 4)"]),
    "x-inf": (dict(x=np.full((2, 4), np.inf)), ["'x'", "inf"]),
}


@pytest.mark.parametrize("case", sorted(PREDICT), ids=str)
def test_predict_rejects_bad_arguments(case):
    model = small_model()
    kwargs, names = PREDICT[case]
    with rejected(model, ValueError, *names):
        model.predict(**{"x": X, **kwargs})


COMPILE = {
    "loss-unknown": (dict(loss="msee"), ["msee"]),
    "loss-number": (dict(loss=5), ["loss", "5"]),
    "optimizer-unknown": (dict(optimizer="adamm"), ["optimizer", "adamm"]),
    "optimizer-number": (dict(optimizer=3), ["optimizer"]),
    "metrics-unknown": (dict(metrics=["acc"]), ["metric", "acc"]),
    "metrics-number": (dict(metrics=7), ["metrics"]),
    "fuse-string": (dict(fuse="yes"), ["fuse"]),
}


@pytest.mark.parametrize("case", sorted(COMPILE), ids=str)
def test_compile_rejects_and_keeps_the_old_compilation(case):
    model = small_model()
    kwargs, names = COMPILE[case]
    config = model.compile_config()
    with rejected(model, ValueError, *names):
        model.compile(**{"loss": "softmax_cross_entropy", **kwargs})
    assert model.compile_config() == config
    model.fit(X, Y, epochs=1, verbose=0)            # still trains as compiled


VIEWS = {
    "summary-batch-size": (lambda m: m.summary(batch_size=0), ValueError, ["batch_size"]),
    "summary-print-fn": (lambda m: m.summary(print_fn="print"), ValueError, ["print_fn"]),
    "summary-memory": (lambda m: m.summary(memory="yes"), ValueError, ["memory"]),
    "plot-view": (lambda m: plot_model(m, view="3d"), ValueError, ["view", "3d"]),
    "plot-rankdir": (lambda m: plot_model(m, rankdir="XY"), ValueError, ["rankdir", "XY"]),
    "plot-batch-size": (lambda m: plot_model(m, view="compiled", batch_size=-1), ValueError, ["batch_size"]),
    "plot-to-file": (lambda m: plot_model(m, to_file=42), TypeError, ["to_file"]),
    "plot-not-a-model": (lambda m: plot_model("model"), TypeError, ["Model or a Graph"]),
}


@pytest.mark.parametrize("case", sorted(VIEWS), ids=str)
def test_summary_and_plot_reject_bad_arguments(case):
    model = small_model()
    call, error, names = VIEWS[case]
    with rejected(model, error, *names):
        call(model)


def test_save_to_a_path_that_is_no_path(tmp_path):
    model = small_model()
    with rejected(model, TypeError, "path", "int"):
        model.save(42)
    with rejected(model, FileNotFoundError, "no folder", "missing"):
        model.save(tmp_path / "missing" / "m.gnn")
    with rejected(model, IsADirectoryError, str(tmp_path)):
        model.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, error, name", [
    (42, TypeError, "path"), (None, TypeError, "path"),
    ("no/such/m.gnn", FileNotFoundError, "no/such/m.gnn"),
], ids=["int", "none", "missing"])
def test_load_model_path_argument(path, error, name):
    with pytest.raises(error, match=name):
        load_model(path)


WEIGHTS = {
    "unknown-name": (lambda m: m.set_weights({"hidden/W": np.zeros((4, 5)), "ghost": 1.0}), KeyError, ["ghost"]),
    "second-has-wrong-shape": (lambda m: m.set_weights({"hidden/W": np.zeros((4, 5)), "logits/W": np.zeros(3)}),
                               ValueError, ["logits/W", "(5, 3)"]),
    "nan": (lambda m: m.set_weights({"hidden/b": np.full(5, np.nan)}), ValueError, ["hidden/b", "NaN"]),
    "complex": (lambda m: m.set_weights({"hidden/b": np.ones(5, complex)}), ValueError, ["hidden/b", "complex"]),
    "not-a-dict": (lambda m: m.set_weights([np.zeros((4, 5))]), TypeError, ["dict"]),
    "state-missing-key": (lambda m: m.load_state_dict({"hidden/W": np.zeros((4, 5))}), KeyError, ["missing"]),
    "state-inf": (lambda m: m.load_state_dict({**m.state_dict(), "logits/b": np.full(3, np.inf)}),
                  ValueError, ["logits/b", "inf"]),
    "state-wrong-shape": (lambda m: m.load_state_dict({**m.state_dict(), "logits/b": np.zeros(4)}),
                          ValueError, ["logits/b", "(4,)"]),
}


@pytest.mark.parametrize("case", sorted(WEIGHTS), ids=str)
def test_weights_are_checked_before_any_is_written(case):
    model = small_model()
    call, error, names = WEIGHTS[case]
    with rejected(model, error, *names):
        call(model)
