"""Interrupted saves: an exception at every step of the save path leaves the
previous file byte for byte and no temporary behind; a process killed mid-save
leaves the previous file intact, and its temporary is removed by the next save.
Saved files get the mode the umask gives, like any file the user creates."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import graphnn.archive
from graphnn import load_model

from .common import X, Y, assert_same, small_model, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Boom(Exception):
    pass


def _fail_on_call(monkeypatch, owner, name, nth=1, error=Boom, after=False):
    """Make owner.name raise ``error`` on its nth call (the earlier calls go
    through); ``after``: once the real call has done its work."""
    real, calls = getattr(owner, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth:
            if after:
                real(*args, **kwargs)
            raise error(f"injected into {name}")
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, wrapper)


STEPS = {
    "savez": lambda mp: _fail_on_call(mp, graphnn.archive.np, "savez"),
    "json-meta": lambda mp: _fail_on_call(mp, graphnn.archive.json, "dumps", 1),
    "json-graph": lambda mp: _fail_on_call(mp, graphnn.archive.json, "dumps", 2),
    "json-layers": lambda mp: _fail_on_call(mp, graphnn.archive.json, "dumps", 3),
    "open-temp": lambda mp: _fail_on_call(mp, graphnn.archive.os, "open", error=OSError),
    "fdopen": lambda mp: _fail_on_call(mp, graphnn.archive.os, "fdopen", error=OSError),
    "write-meta": lambda mp: _fail_on_call(mp, zipfile.ZipFile, "writestr", 1),
    "write-graph": lambda mp: _fail_on_call(mp, zipfile.ZipFile, "writestr", 2),
    "write-layers": lambda mp: _fail_on_call(mp, zipfile.ZipFile, "writestr", 3),
    "write-variables": lambda mp: _fail_on_call(mp, zipfile.ZipFile, "writestr", 4),
    "write-interrupted": lambda mp: _fail_on_call(mp, zipfile.ZipFile, "writestr", 4, KeyboardInterrupt),
    "zip-close": lambda mp: _fail_on_call(mp, zipfile.ZipFile, "close", error=OSError, after=True),
    "fsync": lambda mp: _fail_on_call(mp, graphnn.archive.os, "fsync", error=OSError),
    "replace": lambda mp: _fail_on_call(mp, graphnn.archive.os, "replace", error=OSError),
}


@pytest.mark.parametrize("step", sorted(STEPS), ids=str)
def test_exception_at_every_step_of_the_save_path(tmp_path, monkeypatch, step):
    model = small_model()
    path = tmp_path / "m.gnn"
    model.save(path)
    old = path.read_bytes()
    model.fit(X, Y, epochs=1, verbose=0)                # the model moves on
    before = snapshot(model)
    STEPS[step](monkeypatch)
    with pytest.raises((Boom, OSError, KeyboardInterrupt)) as info:
        model.save(path)
    assert "injected" in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == old                     # the previous file, byte for byte
    assert os.listdir(tmp_path) == ["m.gnn"]            # no temporary left behind
    assert_same(model, before)


KILLED_SAVE = """
import os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from tests.reliability.common import small_model
import graphnn.archive
model = small_model()
real = os.fsync
def stall(fd):
    real(fd)
    print("writing", flush=True)
    time.sleep(60)
graphnn.archive.os.fsync = stall
model.fit(np.ones((12, 4), "float32"), np.zeros(12, int), epochs=1, verbose=0)
model.save({path!r})
"""


def test_sigkill_mid_save_keeps_the_old_file_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "m.gnn"
    model = small_model()
    model.save(path)
    old = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE.format(root=ROOT, path=str(path))],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    stale = [n for n in os.listdir(tmp_path) if n != "m.gnn"]
    assert len(stale) == 1 and stale[0].startswith(".m.gnn.graphnn-") and stale[0].endswith(".tmp")
    assert path.read_bytes() == old
    np.testing.assert_array_equal(load_model(path).predict(X), model.predict(X))
    model.save(path)                                    # the next save removes the temporary
    assert os.listdir(tmp_path) == ["m.gnn"]


def test_a_live_saves_temporary_is_left_alone(tmp_path):
    parent = os.getppid()                               # alive, and not this process
    live = tmp_path / f".m.gnn.graphnn-{parent}-abcd.tmp"
    live.write_bytes(b"in progress")
    other = tmp_path / ".other.gnn.graphnn-999999999-abcd.tmp"
    other.write_bytes(b"another target's")
    small_model().save(tmp_path / "m.gnn")
    assert live.exists() and other.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_file_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        small_model(trained=False).save(tmp_path / "m.gnn")
    finally:
        os.umask(old)
    assert (tmp_path / "m.gnn").stat().st_mode & 0o777 == 0o666 & ~umask


def test_saved_meta_is_plain_json(tmp_path):
    small_model().save(tmp_path / "m.gnn")
    with zipfile.ZipFile(tmp_path / "m.gnn") as z:
        assert sorted(z.namelist()) == sorted(graphnn.archive.MEMBERS)
        assert json.loads(z.read("meta.json"))["inputs"] == ["x"]
