"""The ONNX verbs of the command line: export, and summary/plot/inspect of .onnx files."""
from __future__ import annotations

import sys

import pytest
import yaml

from graphnn.cli import main
from tests.graphnn.test_cli import SPEC, graphnn


def test_without_the_extra_an_onnx_verb_says_how_to_install(tmp_path, monkeypatch, capsys):
    (tmp_path / "net.yaml").write_text(yaml.safe_dump(SPEC))
    monkeypatch.setitem(sys.modules, "onnx", None)            # as if onnx were not installed
    assert main(["export", str(tmp_path / "net.yaml"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "pip install graphnn[onnx]" in capsys.readouterr().err
    (tmp_path / "m.onnx").write_bytes(b"")
    assert main(["summary", str(tmp_path / "m.onnx")]) == 1
    assert "pip install graphnn[onnx]" in capsys.readouterr().err


def test_export_then_summary_plot_and_inspect_read_the_onnx_file(tmp_path):
    onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install graphnn[onnx]")
    (tmp_path / "net.yaml").write_text(yaml.safe_dump(SPEC))
    run = graphnn("export", "net.yaml", "-o", "net.onnx", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    proto = onnx.load(str(tmp_path / "net.onnx"))
    assert [n.name for n in proto.graph.node] == ["hidden/matmul", "hidden/bias_add", "hidden/relu",
                                                  "logits/matmul", "logits/bias_add"]
    run = graphnn("summary", "net.onnx", cwd=tmp_path)
    assert run.returncode == 0 and "Total params: 2,410" in run.stdout   # 64*32 + 32 + 32*10 + 10
    for view in ("graph", "compiled"):
        run = graphnn("plot", "net.onnx", "-o", f"{view}.dot", "--view", view, cwd=tmp_path)
        assert run.returncode == 0 and (tmp_path / f"{view}.dot").read_text().startswith("digraph")
    run = graphnn("inspect", "net.onnx", "--batch-size", "4", cwd=tmp_path)
    assert run.returncode == 0 and "program (batch 4)" in run.stdout
