"""docs/spec.md lists every layer type a spec may name and every op of the op
table, and nothing that is not there."""
from __future__ import annotations

import os
import re
from pathlib import Path

from graphnn.compiler.ops import OPS

from graphnn import Graph  # noqa: F401  (registers every layer method)
from graphnn.layers import LAYER_TYPES
from graphnn.spec_doc import generated

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "spec.md")


def test_the_generated_tables_are_current():
    text = Path(DOC).read_text(encoding="utf-8")
    assert generated() in text, "docs/spec.md is out of date: run python -m graphnn.spec_doc docs/spec.md"


def test_every_layer_type_and_op_is_documented_and_every_documented_one_exists():
    text = Path(DOC).read_text(encoding="utf-8")
    layers = text[text.index("### Layer types"):text.index("### Ops")]
    ops = text[text.index("### Ops"):]
    documented_layers = set(re.findall(r"^\| `(\w+)` \|", layers, flags=re.MULTILINE))
    documented_ops = set(re.findall(r"^\| `(\w+)` \|", ops, flags=re.MULTILINE))
    assert documented_layers == set(LAYER_TYPES)
    assert documented_ops <= set(OPS)
    for name in ("lstm", "gru", "batch_norm", "dropout", "concat", "inception", "sequential"):
        assert name in documented_layers
    user_ops = {n for n, op in OPS.items() if op.kind in ("compute", "loss")}
    assert user_ops <= documented_ops
