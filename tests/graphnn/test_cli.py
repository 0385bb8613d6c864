"""Each CLI command, run as a user would: a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = {"graphnn_spec": 1,
        "layers": [{"type": "input", "name": "pixels", "shape": [None, 64]},
                   {"type": "dense", "name": "hidden", "inputs": ["pixels"], "units": 32,
                    "activation": "relu"},
                   {"type": "dense", "name": "logits", "inputs": ["hidden"], "units": 10}],
        "model": {"loss": "softmax_cross_entropy", "metrics": ["accuracy"]}}


def graphnn(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "graphnn.cli", *map(str, args)], check=False, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "net.yaml").write_text(yaml.safe_dump(SPEC))
    run = graphnn("train", "net.yaml", "--data", "digits", "--epochs", "15", "--out", "model.gnn",
                  "--lr", "3e-3", cwd=folder)
    assert run.returncode == 0, run.stderr
    return folder, run


def test_train_reports_accuracy_and_saves(trained):
    folder, run = trained
    accuracy = float(run.stdout.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.9
    assert (folder / "model.gnn").exists()


def test_evaluate_and_predict_use_the_saved_model(trained):
    folder, _ = trained
    run = graphnn("evaluate", "model.gnn", "--data", "digits", cwd=folder)
    assert run.returncode == 0 and "accuracy:" in run.stdout
    run = graphnn("predict", "model.gnn", "--data", "digits", "--out", "p.npy", cwd=folder)
    assert run.returncode == 0, run.stderr
    assert np.load(folder / "p.npy").shape == (449, 10)


def test_summary_plot_and_inspect(trained):
    folder, _ = trained
    run = graphnn("summary", "net.yaml", cwd=folder)
    assert run.returncode == 0 and "hidden (dense)" in run.stdout and "2,080" in run.stdout
    run = graphnn("plot", "model.gnn", "-o", "net.dot", "--view", "compiled", cwd=folder)
    assert run.returncode == 0 and (folder / "net.dot").read_text().startswith("digraph")
    run = graphnn("inspect", "net.yaml", "--purpose", "train", "--batch-size", "8", cwd=folder)
    assert run.returncode == 0 and "program (batch 8)" in run.stdout and "adam_update" in run.stdout


def test_inspect_passes_prints_the_graph_after_each_pass(tmp_path):
    (tmp_path / "net.yaml").write_text(yaml.safe_dump(SPEC))
    run = graphnn("inspect", "net.yaml", "--purpose", "train", "--batch-size", "8", "--passes",
                  cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    sections = run.stdout.split("== after ")[1:]
    assert [s.split(" ==")[0] for s in sections] == [
        "validate", "infer", "loss", "stabilize", "autodiff", "updates", "fuse", "lower",
        "schedule", "plan"]
    text = dict(s.split(" ==\n", 1) for s in sections)
    assert "%hidden/matmul = matmul(%pixels, %hidden/W) : (N, 32) f32" in text["infer"]
    assert "%loss = softmax_cross_entropy(%logits/bias_add, %target) : () f32" in text["loss"]
    assert "adam_update" not in text["autodiff"] and "adam_update" in text["updates"]
    assert "fused[matmul+bias_add+relu]" not in text["updates"] and "fused[matmul+bias_add+relu]" in text["fuse"]
    assert text["plan"].startswith("# batch 8:")


def test_plot_focus_and_memory_plot(trained):
    pytest.importorskip("matplotlib")
    folder, _ = trained
    run = graphnn("plot", "model.gnn", "-o", "hidden.dot", "--view", "training", "--focus", "hidden",
                  cwd=folder)
    assert run.returncode == 0 and run.stdout.strip() == "wrote hidden.dot"
    assert "(outside)" in (folder / "hidden.dot").read_text()
    run = graphnn("inspect", "model.gnn", "--purpose", "train", "--memory-plot", "memory.png", cwd=folder)
    assert run.returncode == 0 and run.stdout.strip().endswith("wrote memory.png")
    assert (folder / "memory.png").read_bytes()[:4] == b"\x89PNG"


def test_help_lists_every_command(tmp_path):
    run = graphnn("--help", cwd=tmp_path)
    for command in ("train", "evaluate", "predict", "summary", "plot", "inspect", "demo"):
        assert command in run.stdout


@pytest.mark.parametrize("args, words", [
    (["train", "missing.yaml"], "missing.yaml: no such file"),
    (["train", "net.yaml", "--data", "cifar"], "--data 'cifar'"),
    (["evaluate", "broken.gnn"], "broken.gnn: not a graphnn model file"),
    (["summary", "typo.yaml"], "unknown type 'dense2'"),
    (["train", "net.yaml", "--data", "wrong.npz"], "takes (64,)"),
])
def test_bad_input_exits_1_with_one_line(tmp_path, args, words):
    (tmp_path / "net.yaml").write_text(yaml.safe_dump(SPEC))
    (tmp_path / "broken.gnn").write_bytes(b"not a zip")
    (tmp_path / "typo.yaml").write_text("layers:\n  - {type: dense2}\n")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((10, 5)), y=np.zeros(10, int))
    run = graphnn(*args, cwd=tmp_path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphnn: error:") and words in lines[0]
