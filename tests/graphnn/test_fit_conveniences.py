"""fit's conveniences: validation_split, initial_epoch (resumed across processes,
bit for bit, against an uninterrupted run), evaluate(return_dict=False), and a
progress bar that fits 80 columns and shows the validation metrics."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from graphnn import Graph, Model, callbacks, optim

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

BUILD = textwrap.dedent("""
    import numpy as np
    from graphnn import Graph, Model, datasets, load_model, optim, schedules
    x, y = datasets.digits()
    x, y = x.reshape(len(x), -1)[:600], y[:600]
    def build():
        g = Graph()
        pixels = g.input("pixels", (None, 64))
        h = g.dense(pixels, 32, activation="relu", name="hidden")
        m = Model(g, inputs=pixels, outputs=g.dense(h, 10, name="logits"), seed=7)
        m.compile(loss="softmax_cross_entropy", metrics=["accuracy"],
                  optimizer=optim.Adam(schedules.ExponentialDecay(3e-3, 0.9, 10)))
        return m
    def fit(m, **kw):
        return m.fit(x, y, batch_size=48, validation_split=0.25, verbose=0, **kw)
""")


def python(code, cwd):
    run = subprocess.run([sys.executable, "-c", BUILD + textwrap.dedent(code)], check=False, cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_resuming_in_another_process_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    python("""
        m = build(); h = fit(m, epochs=4)
        np.savez("straight.npz", **m.state_dict())
        np.save("straight_val.npy", np.array(h.history["val_loss"]))
    """, tmp_path)
    python("""
        m = build(); h = fit(m, epochs=2)
        assert m.epoch == 2
        m.save("half.gnn")
        np.savez("half.npz", **m.state_dict())
    """, tmp_path)
    python("""
        m = load_model("half.gnn")
        assert m.epoch == 2
        h = fit(m, epochs=4, initial_epoch=m.epoch)
        assert h.epoch == [2, 3] and m.epoch == 4
        np.savez("resumed.npz", **m.state_dict())
        np.save("resumed_val.npy", np.array(h.history["val_loss"]))
    """, tmp_path)
    straight, resumed = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    half = np.load(tmp_path / "half.npz")
    assert sorted(straight.files) == sorted(resumed.files)
    assert any("adam_m" in k for k in straight.files)          # optimizer state compared too
    for k in straight.files:
        assert np.array_equal(straight[k], resumed[k]), k
    assert not np.array_equal(half["hidden/W"], straight["hidden/W"])   # the last epochs did train
    np.testing.assert_array_equal(np.load(tmp_path / "straight_val.npy")[2:],
                                  np.load(tmp_path / "resumed_val.npy"))


def classifier(seed=3):
    g = Graph()
    x = g.input("x", (None, 4))
    m = Model(g, inputs=x, outputs=g.dense(g.dense(x, 8, activation="tanh"), 3), seed=seed)
    m.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(1e-2), metrics=["accuracy"])
    return m


def data(n=50):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > x[:, 1]).astype(np.int64) + (x[:, 2] > 1)


def test_validation_split_holds_out_the_last_samples():
    x, y = data()
    split = classifier()
    hist = split.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
    explicit = classifier()
    same = explicit.fit(x[:40], y[:40], epochs=3, batch_size=8, validation_data=(x[40:], y[40:]),
                        verbose=0)
    for k, w in split.get_weights().items():
        assert np.array_equal(w, explicit.get_weights()[k]), k
    assert hist.history == same.history
    assert hist.history["val_loss"][-1] == pytest.approx(split.evaluate(x[40:], y[40:])["loss"], rel=1e-6)


def test_evaluate_as_a_list_or_a_dict():
    x, y = data()
    m = classifier()
    result = m.evaluate(x, y)
    assert m.evaluate(x, y, return_dict=False) == [result["loss"], result["accuracy"]]
    g = Graph()
    i = g.input("x", (None, 4))
    plain = Model(g, inputs=i, outputs=g.dense(i, 1))
    plain.compile(loss="mse", optimizer="sgd")
    t = x[:, :1]
    assert plain.evaluate(x, t, return_dict=False) == plain.evaluate(x, t)["loss"]


@pytest.mark.parametrize("kwargs, words", [
    ({"validation_split": 1.5}, "validation_split must be a fraction in"),
    ({"validation_split": 0.001}, "leaves 50 to train on and 0 to validate on"),
    ({"validation_split": 0.2, "validation_data": "x"}, "not both"),
    ({"initial_epoch": 3}, "initial_epoch must be an int from 0 to epochs - 1 = 2"),
    ({"initial_epoch": -1}, "initial_epoch must be"),
])
def test_bad_conveniences_are_named(kwargs, words):
    x, y = data()
    m = classifier()
    before = m.get_weights()
    with pytest.raises(ValueError, match=re.escape(words)):
        m.fit(x, y, epochs=3, verbose=0, **kwargs)
    assert all(np.array_equal(v, m.get_weights()[k]) for k, v in before.items())


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_fits_80_columns_and_ends_with_the_validation_metrics(monkeypatch):
    monkeypatch.setattr(callbacks.shutil, "get_terminal_size", lambda *a: os.terminal_size((80, 24)))
    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    x, y = data(400)
    classifier().fit(x, y, epochs=12, batch_size=4, validation_split=0.25, verbose=1)
    out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", screen.getvalue())
    segments = [s for s in re.split(r"[\r\n]", out) if s.strip()]
    assert segments and max(len(s) for s in segments) <= 80
    ends = [s for s in out.split("\n") if s.strip()]
    ends = [s.split("\r")[-1] for s in ends]
    epoch_lines = [s for s in ends if s.startswith("Epoch ")]
    assert len(epoch_lines) == 12 and epoch_lines[-1].startswith("Epoch 12/12 - loss: ")
    assert all("val_loss: " in s and "val_acc: " in s for s in epoch_lines)
    assert any("%|" in s for s in segments)                      # a bar was drawn
