"""Data-parallel training under ``mpiexec -n 2``, against one process with the same
global batch: the same weights (1e-5 relative) after several epochs, for the digits
MLP and CNN, SGD with momentum and Adam, with uneven shares and a last batch smaller
than the number of ranks. These skip where mpi4py or mpiexec is missing
(``pip install 'graphnn[mpi]'``); tests/distributed/test_allreduce_pass.py needs neither.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="needs mpi4py and MPICH: pip install 'graphnn[mpi]'")

from tests.distributed.job import EPOCHS, build, callbacks, data, sample_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH: pip install mpich")
BATCH = 25
TOLERANCE = 1e-5


def mpiexec(ranks: int, *args, cwd=ROOT, timeout=300):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([MPIEXEC, "-n", str(ranks), *map(str, args)], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def largest_relative_difference(got: dict, want: dict) -> float:
    """max over weights of max|got - want| / max|want|."""
    assert set(got) == set(want)
    return max(float(np.abs(got[k] - want[k]).max() / np.abs(want[k]).max()) for k in want)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_two_ranks_train_the_weights_one_process_trains(kind, optimizer, tmp_path):
    out = tmp_path / "weights.npz"
    run = mpiexec(2, sys.executable, "-m", "tests.distributed.job", kind, optimizer, BATCH, out)
    assert run.returncode == 0, run.stderr
    reference = build(kind, optimizer)
    x, y = data(kind)
    history = reference.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    with np.load(out) as f:
        got = {k: f[k] for k in f.files if k != "loss"}
        losses = f["loss"]
    assert largest_relative_difference(got, reference.get_weights()) <= TOLERANCE
    np.testing.assert_allclose(losses, history.history["loss"], rtol=TOLERANCE)
    # and training did something: the weight matrices moved away from their initial values
    initial = build(kind, optimizer).get_weights()
    matrices = [k for k in initial if k.endswith("/W")]
    assert largest_relative_difference({k: got[k] for k in matrices},
                                       {k: initial[k] for k in matrices}) > 0.1


def test_sample_weights_give_the_single_process_weights(tmp_path):
    out = tmp_path / "weights.npz"
    run = mpiexec(2, sys.executable, "-m", "tests.distributed.job", "cnn", "sgd", BATCH, out,
                  "--weighted")
    assert run.returncode == 0, run.stderr
    reference = build("cnn", "sgd")
    x, y = data("cnn")
    reference.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, sample_weight=sample_weights(len(x)))
    with np.load(out) as f:
        got = {k: f[k] for k in f.files if k != "loss"}
    assert largest_relative_difference(got, reference.get_weights()) <= TOLERANCE


def test_callbacks_on_rank_0_steer_every_rank(tmp_path):
    """A learning-rate schedule and early stopping run on rank 0 only; the other
    rank follows, so the weights are still those of one process with the same
    callbacks, and both ranks stop after epoch 2 (else one would hang)."""
    out = tmp_path / "weights.npz"
    run = mpiexec(2, sys.executable, "-m", "tests.distributed.job", "mlp", "sgd", BATCH, out,
                  "--callbacks", timeout=120)
    assert run.returncode == 0, run.stderr
    reference = build("mlp", "sgd")
    history = reference.fit(*data("mlp"), epochs=EPOCHS, batch_size=BATCH, verbose=0,
                            callbacks=callbacks())
    assert len(history.epoch) == 2 < EPOCHS
    with np.load(out) as f:
        assert len(f["loss"]) == 2
        got = {k: f[k] for k in f.files if k != "loss"}
    assert largest_relative_difference(got, reference.get_weights()) <= TOLERANCE


def test_in_float64_every_weight_agrees_to_rounding(tmp_path):
    """In float64 the two runs differ only by summation order: each weight, not
    just each tensor, agrees to 1e-9 relative."""
    out = tmp_path / "weights.npz"
    run = mpiexec(2, sys.executable, "-m", "tests.distributed.job", "cnn", "adam", BATCH, out,
                  "--dtype", "float64")
    assert run.returncode == 0, run.stderr
    reference = build("cnn", "adam", "float64")
    reference.fit(*data("cnn", "float64"), epochs=EPOCHS, batch_size=BATCH, verbose=0)
    with np.load(out) as f:
        for name, want in reference.get_weights().items():
            np.testing.assert_allclose(f[name], want, rtol=1e-9, atol=1e-12, err_msg=name)


def test_a_failing_rank_stops_every_rank_and_names_itself(tmp_path):
    run = mpiexec(2, sys.executable, "-m", "tests.distributed.job", "mlp", "adam", BATCH,
                  tmp_path / "w.npz", "--fail-rank", "1", timeout=120)
    assert run.returncode != 0
    assert "rank 1 of 2 failed" in run.stderr
    assert "contains NaN or inf" in run.stderr
    assert not (tmp_path / "w.npz").exists()


def test_cli_under_mpiexec_trains_what_one_process_trains_and_reports_once(tmp_path):
    import yaml

    from graphnn import load_model
    spec = {"graphnn_spec": 1,
            "layers": [{"type": "input", "name": "pixels", "shape": [None, 64]},
                       {"type": "dense", "name": "hidden", "inputs": ["pixels"], "units": 16,
                        "activation": "relu"},
                       {"type": "dense", "name": "logits", "inputs": ["hidden"], "units": 10}],
            "model": {"loss": "softmax_cross_entropy", "metrics": ["accuracy"]}}
    (tmp_path / "net.yaml").write_text(yaml.safe_dump(spec))
    args = ["train", "net.yaml", "--data", "digits", "--epochs", "3", "--batch-size", "31",
            "--verbose", "2"]
    two = mpiexec(2, sys.executable, "-m", "graphnn.cli", *args, "--out", "two.gnn", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    one = subprocess.run([sys.executable, "-m", "graphnn.cli", *args, "--out", "one.gnn"], check=False,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT},
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    assert two.stdout.count("test accuracy") == 1 and two.stdout.count("Epoch 3/3") == 1
    got = load_model(str(tmp_path / "two.gnn")).get_weights()
    want = load_model(str(tmp_path / "one.gnn")).get_weights()
    assert largest_relative_difference(got, want) <= TOLERANCE
