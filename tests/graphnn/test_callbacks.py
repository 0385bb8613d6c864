"""Callbacks and progress output."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from graphnn import Graph, Model, load_model, optim
from graphnn.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    Progress,
)


def regression(seed=0):
    g = Graph(dtype="float64")
    x = g.input("x", (None, 3))
    model = Model(g, inputs=x, outputs=g.dense(x, 1, name="lin"), seed=seed)
    model.compile(loss="mse", optimizer=optim.SGD(0.05))
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(40, 3))
    return model, xs, xs @ np.array([[1.0], [-2.0], [0.5]])


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append("begin")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append("end")


def test_callbacks_see_every_epoch_in_order():
    model, x, y = regression()
    rec = Recorder()
    model.fit(x, y, epochs=2, validation_data=(x, y), verbose=0, callbacks=[rec])
    assert rec.events == ["begin", ("epoch", 0, ["loss", "val_loss"]),
                          ("epoch", 1, ["loss", "val_loss"]), "end"]


def test_early_stopping_stops_and_restores_the_best_weights():
    model, x, y = regression()
    stop = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    # A learning rate far too large makes the loss grow after the first epochs.
    model.learning_rate = 2.0
    hist = model.fit(x, y, epochs=30, validation_data=(x, y), verbose=0, callbacks=[stop])
    losses = hist.history["val_loss"]
    assert len(losses) < 30 and stop.stopped_epoch == len(losses) - 1
    best = int(np.argmin(losses))
    assert len(losses) - 1 - best == 2                   # patience 1: stopped 2 epochs after
    assert model.evaluate(x, y)["loss"] == pytest.approx(losses[best], rel=1e-9)


def test_model_checkpoint_keeps_the_best(tmp_path):
    model, x, y = regression()
    path = tmp_path / "best-{epoch}.gnn"
    model.fit(x, y, epochs=3, validation_data=(x, y), verbose=0,
              callbacks=[ModelCheckpoint(path, save_best_only=True)])
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["best-1.gnn", "best-2.gnn", "best-3.gnn"]   # the loss fell every epoch
    again = load_model(str(tmp_path / "best-3.gnn"))
    assert np.array_equal(again.predict(x), model.predict(x))


def test_learning_rate_scheduler_changes_the_step_size():
    model, x, y = regression()
    w, b = model.get_weights()["lin/W"].copy(), model.get_weights()["lin/b"].copy()
    seen = []
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False,
              callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch),
                         type("Seen", (Callback,), {"on_epoch_end": lambda self, e, logs=None:
                                                   seen.append(self.model.learning_rate)})()])
    assert seen == [0.1, 0.05, 0.025]
    for epoch in range(3):                                  # the same SGD steps by hand
        lr = 0.1 * 0.5 ** epoch
        for lo in range(0, 40, 16):
            xb, yb = x[lo:lo + 16], y[lo:lo + 16]
            err = xb @ w + b - yb
            k = 2.0 / err.size
            w, b = w - lr * k * xb.T @ err, b - lr * k * err.sum(0)
    np.testing.assert_allclose(model.get_weights()["lin/W"], w, rtol=1e-12)


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    model, x, y = regression()
    path = tmp_path / "log.csv"
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss"] and len(rows) == 4
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(hist.history["loss"], rel=1e-5)


def test_progress_prints_one_line_per_epoch_when_not_a_terminal(capsys):
    model, x, y = regression()
    model.fit(x, y, epochs=2, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - loss: ")


def test_progress_draws_a_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    stream = Tty()
    progress = Progress(epochs=1, steps=4, verbose=1, stream=stream)
    progress.on_epoch_begin(0)
    for b in range(4):
        progress.on_batch_end(b, {"loss": 1.0 / (b + 1)})
    progress.on_epoch_end(0, {"loss": 0.25})
    out = stream.getvalue()
    assert "Epoch 1/1" in out and "4/4" in out and out.endswith("Epoch 1/1 - loss: 0.25\n")


def test_a_bad_schedule_or_monitor_is_named():
    model, x, y = regression()
    with pytest.raises(ValueError, match="learning rate -1.0 for epoch 1"):
        model.fit(x, y, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: -1.0)])
    with pytest.raises(KeyError, match="val_loss"):
        model.fit(x, y, verbose=0, callbacks=[EarlyStopping()])
