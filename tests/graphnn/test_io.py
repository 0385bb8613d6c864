"""Save and load: identical predictions, identical resumed training, atomic
writes, and clear errors for broken files."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

import graphnn.io
from graphnn import Graph, Model, load_model, optim
from tests.example_graphs import EXAMPLE_GRAPHS, data


def trained_model(name="cnn", optimizer=lambda: optim.Adam(0.01)):
    g, x, out, loss, shape, classes = EXAMPLE_GRAPHS[name]("float32")
    model = Model(g, inputs=x, outputs=out, seed=3)
    model.compile(loss=loss, optimizer=optimizer(), metrics=["accuracy"])
    xs, ys = data(shape, classes, out.shape, 40)
    model.fit(xs, ys, epochs=1, batch_size=16, verbose=0)
    return model, xs, ys


@pytest.mark.parametrize("name", sorted(EXAMPLE_GRAPHS))
def test_loaded_model_predicts_identically(tmp_path, name):
    model, xs, _ = trained_model(name)
    model.save(tmp_path / "m.gnn")
    again = load_model(str(tmp_path / "m.gnn"))
    assert np.array_equal(again.predict(xs), model.predict(xs))


@pytest.mark.parametrize("optimizer", [lambda: optim.Adam(0.01),
                                       lambda: optim.SGD(0.05, momentum=0.9, nesterov=True)],
                         ids=["adam", "sgd"])
def test_resumed_training_is_identical(tmp_path, optimizer):
    model, xs, ys = trained_model("mlp", optimizer)
    model.save(tmp_path / "m.gnn")
    resumed = load_model(str(tmp_path / "m.gnn"))
    model.fit(xs, ys, epochs=2, batch_size=16, verbose=0)
    resumed.fit(xs, ys, epochs=2, batch_size=16, verbose=0)
    for k, v in model.state_dict().items():
        assert np.array_equal(v, resumed.state_dict()[k]), k


def test_a_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    model, xs, ys = trained_model("mlp")
    path = tmp_path / "m.gnn"
    model.save(path)
    before = path.read_bytes()
    model.fit(xs, ys, epochs=1, verbose=0)                # the weights change

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(graphnn.io.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert load_model(str(path)).predict(xs).shape == (40, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["m.gnn"]   # no temporary left behind


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[: len(b) // 2], "not a graphnn model file or truncated"),
    (lambda b: b"garbage" * 10, "not a graphnn model file"),
    (lambda b: b"", "not a graphnn model file"),
])
def test_broken_files_are_named(tmp_path, damage, match):
    model, *_ = trained_model("mlp")
    path = tmp_path / "m.gnn"
    model.save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=match) as info:
        load_model(str(path))
    assert "m.gnn" in str(info.value)


def test_newer_format_and_mismatched_weights_are_refused(tmp_path):
    model, *_ = trained_model("mlp")
    path = tmp_path / "m.gnn"
    model.save(path)
    parts = {}
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    import io as _io
    import json
    meta = json.loads(parts["meta.json"])
    newer = dict(parts, **{"meta.json": json.dumps({**meta, "version": 99}).encode()})
    buf = _io.BytesIO()
    np.savez(buf, **{"dense/W": np.zeros((2, 2), np.float32)})
    wrong = dict(parts, **{"variables.npz": buf.getvalue()})
    for name, content, match in (("newer.gnn", newer, "newer graphnn"),
                                 ("wrong.gnn", wrong, r"dense/W.* has shape \(2, 2\)")):
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            for member, blob in content.items():
                z.writestr(member, blob)
        with pytest.raises((ValueError, KeyError), match=match):
            load_model(str(tmp_path / name))


def test_state_dict_reports_missing_and_unexpected_keys():
    model, *_ = trained_model("mlp")
    state = model.state_dict()
    state["extra"] = np.zeros(1)
    del state["dense/W"]
    with pytest.raises(KeyError, match=r"missing \['dense/W'\].*unexpected \['extra'\]"):
        model.load_state_dict(state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["dense/W"] and unexpected == ["extra"]
    with pytest.raises(ValueError, match="'dense/b' has shape"):
        model.load_state_dict({"dense/b": np.zeros(99)}, strict=False)


def test_saved_file_holds_no_pickle(tmp_path):
    model, *_ = trained_model("mlp")
    model.save(tmp_path / "m.gnn")
    with zipfile.ZipFile(tmp_path / "m.gnn") as z:
        assert sorted(z.namelist()) == ["graph.json", "layers.json", "meta.json", "variables.npz"]
        with np.load(__import__("io").BytesIO(z.read("variables.npz")), allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)


def test_untrained_uncompiled_model_round_trips(tmp_path):
    g = Graph()
    x = g.input("x", (None, 3))
    model = Model(g, inputs=x, outputs=g.dense(x, 2))
    model.save(tmp_path / "m.gnn")
    again = load_model(str(tmp_path / "m.gnn"))
    assert again.compile_config() is None
    assert np.array_equal(again.predict(np.ones((2, 3))), model.predict(np.ones((2, 3))))
