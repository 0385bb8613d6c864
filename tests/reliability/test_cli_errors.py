"""Bad input to every CLI command: a non-zero exit status and one clear line
naming the thing at fault, never a traceback; output into a closed pipe is
not an error message."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from graphnn.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = {"graphnn_spec": 1,
        "layers": [{"type": "input", "name": "pixels", "shape": [None, 64]},
                   {"type": "dense", "name": "logits", "inputs": ["pixels"], "units": 10}],
        "model": {"loss": "softmax_cross_entropy"}}
NO_LOSS = {**SPEC, "model": {}}
BAD_UNITS = {**SPEC, "layers": [SPEC["layers"][0], {**SPEC["layers"][1], "units": 0}]}


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(yaml.safe_dump(SPEC))
    (tmp_path / "noloss.yaml").write_text(yaml.safe_dump(NO_LOSS))
    (tmp_path / "badunits.yaml").write_text(yaml.safe_dump(BAD_UNITS))
    np.savez(tmp_path / "uneven.npz", x=np.zeros((10, 64)), y=np.zeros(7, int))
    np.savez(tmp_path / "noy.npz", x=np.zeros((10, 64)))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 64)), y=np.zeros(0, int))
    np.savez(tmp_path / "objects.npz", x=np.array([object()] * 4), y=np.zeros(4, int))
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    (tmp_path / "broken.gnn").write_bytes(b"PK\x03\x04 truncated")
    return tmp_path


CASES = {
    "train-epochs-negative": (["train", "net.yaml", "--epochs", "-1"], ["--epochs", "-1"]),
    "train-epochs-zero": (["train", "net.yaml", "--epochs", "0"], ["--epochs"]),
    "train-batch-size-zero": (["train", "net.yaml", "--batch-size", "0"], ["--batch-size"]),
    "train-lr-negative": (["train", "net.yaml", "--lr", "-0.1"], ["--lr"]),
    "train-lr-nan": (["train", "net.yaml", "--lr", "nan"], ["--lr"]),
    "train-optimizer": (["train", "net.yaml", "--optimizer", "adamm"], ["--optimizer", "adamm"]),
    "train-verbose": (["train", "net.yaml", "--verbose", "7"], ["--verbose"]),
    "train-missing-spec": (["train", "nope.yaml"], ["nope.yaml", "no such file"]),
    "train-bad-spec": (["train", "badunits.yaml"], ["badunits.yaml", "dense 'logits'", "units"]),
    "train-data-uneven": (["train", "net.yaml", "--data", "uneven.npz"], ["uneven.npz", "10", "7"]),
    "train-data-no-y": (["train", "net.yaml", "--data", "noy.npz"], ["noy.npz", "'y'"]),
    "train-data-empty": (["train", "net.yaml", "--data", "empty.npz"], ["empty.npz", "no samples"]),
    "train-data-objects": (["train", "net.yaml", "--data", "objects.npz"], ["objects.npz"]),
    "train-data-garbage": (["train", "net.yaml", "--data", "garbage.npz"], ["garbage.npz"]),
    "train-data-missing": (["train", "net.yaml", "--data", "nothere.npz"], ["nothere.npz", "no such file"]),
    "train-data-kind": (["train", "net.yaml", "--data", "cifar"], ["--data", "cifar"]),
    "evaluate-missing": (["evaluate", "nope.gnn"], ["nope.gnn"]),
    "evaluate-broken": (["evaluate", "broken.gnn"], ["broken.gnn"]),
    "evaluate-uncompiled": (["evaluate", "noloss.yaml"], ["noloss.yaml", "never compiled"]),
    "predict-broken": (["predict", "broken.gnn"], ["broken.gnn"]),
    "summary-batch-size-zero": (["summary", "net.yaml", "--batch-size", "0"], ["--batch-size"]),
    "summary-bad-spec": (["summary", "badunits.yaml"], ["units"]),
    "plot-view": (["plot", "net.yaml", "--view", "3d"], ["--view"]),
    "plot-batch-size": (["plot", "net.yaml", "--batch-size", "-3"], ["--batch-size"]),
    "inspect-batch-size": (["inspect", "net.yaml", "--batch-size", "-5"], ["--batch-size", "-5"]),
    "inspect-train-without-loss": (["inspect", "noloss.yaml", "--purpose", "train"], ["noloss.yaml", "loss"]),
    "demo-epochs": (["demo", "--epochs", "0"], ["--epochs"]),
    "unknown-command": (["frobnicate"], ["frobnicate"]),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_cli_error_is_one_clear_line(folder, capsys, case):
    argv, names = CASES[case]
    before = sorted(os.listdir(folder))
    try:
        status = main([*argv, *(["--out", "out.gnn"] if argv[0] == "train" else [])])
    except SystemExit as e:                          # argparse's own usage errors
        status = e.code
    out, err = capsys.readouterr()
    assert status not in (0, None)
    assert "Traceback" not in err and "Traceback" not in out
    line = [l for l in err.splitlines() if "error:" in l]
    assert len(line) == 1, err
    for name in names:
        assert name in line[0], f"{name!r} not in {line[0]}"
    assert sorted(os.listdir(folder)) == before          # nothing written, out.gnn included


def test_closed_pipe_is_not_an_error(folder):
    env = {**os.environ, "PYTHONPATH": ROOT}
    run = subprocess.run(f"{sys.executable} -m graphnn.cli inspect net.yaml --purpose train | head -1",
                         shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.stdout.startswith("program (batch 32)")
    assert "Broken pipe" not in run.stderr and "Traceback" not in run.stderr


def test_no_traceback_from_a_subprocess(folder):
    env = {**os.environ, "PYTHONPATH": ROOT}
    run = subprocess.run([sys.executable, "-m", "graphnn.cli", "train", "net.yaml", "--data", "uneven.npz"],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [("graphnn: error: --data uneven.npz: x has 10 "
                                                "samples but y has 7")]
