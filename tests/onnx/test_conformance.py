"""ONNX's own node tests, run by ONNX's runner (onnx.backend.test.BackendTest)
against graphnn.onnx.backend: the external judge of import and execution.

Only the test-case modules of the ops graphnn has are loaded (loading all of
ONNX's cases takes several seconds and tests nothing of ours). Every test they
define runs, except those in EXCLUDED, the one list of what graphnn does not
do, each with its reason; the list may only shrink.

Run it alone: .venv/bin/python -m pytest -q tests/onnx/test_conformance.py
"""
from __future__ import annotations

import importlib

import pytest

pytest.importorskip("onnx", reason="the conformance tests need the onnx extra: pip install graphnn[onnx]")

import onnx.backend.test
from onnx.backend.test import runner

from graphnn.onnx import backend

# The ONNX test-case modules (onnx/backend/test/case/node/<module>.py) of the ops graphnn has.
CASE_MODULES = (
    "gemm", "matmul", "conv", "convtranspose", "maxpool", "averagepool", "globalaveragepool",
    "batch_normalization", "relu", "leakyrelu", "elu", "tanh", "sigmoid", "softplus", "softmax",
    "logsoftmax", "gelu", "add", "mul", "sub", "concat", "slice", "transpose", "reshape", "flatten",
    "lstm", "gru", "dropout", "resize", "upsample", "gather", "softmax_cross_entropy_loss",
    "negativeloglikelihoodloss",
)

# pattern (matched against the test name) -> why graphnn does not pass it
EXCLUDED = {
    r"^test_maxpool_2d_uint8": "integer pooling: graphnn pools floats",
    r"^test_(averagepool|maxpool)_3d|^test_convtranspose_3d": "3-D pooling and convolution: graphnn's are 1-D and 2-D",
    r"^test_maxpool_with_argmax": "MaxPool's Indices output: graphnn returns values only",

    r"^test_training_dropout(?!_zero_ratio)": "random dropout in training mode (ONNX's expected "
        "values come from NumPy's own random draws)",
    r"^test_slice_start_out_of_bounds": "an empty slice: graphnn's dimensions are positive",
    r"^test_reshape_allowzero_reordered": "a zero-sized dimension: graphnn's shapes are positive",
}


def _load_our_cases(data_dir=None, kind=None):
    """Stands in for the runner's loader: the node cases of CASE_MODULES only."""
    if kind != "node":
        return []
    for module in CASE_MODULES:
        importlib.import_module(f"onnx.backend.test.case.node.{module}")
    from onnx.backend.test.case.node import _NodeTestCases
    return list(_NodeTestCases)


def _backend_test():
    real = runner.load_model_tests
    runner.load_model_tests = _load_our_cases
    try:
        test = onnx.backend.test.BackendTest(backend, __name__)
    finally:
        runner.load_model_tests = real
    for pattern in EXCLUDED:
        test.exclude(pattern)
    return test


def _cpu_test_cases():
    """The runner's test classes without the "_cuda" twin it makes of every test: on a
    backend without that device it would only report 396 skips."""
    cases = _backend_test().test_cases          # a property that builds new classes each time
    for cls in cases.values():
        for name in [n for n in vars(cls) if n.startswith("test_") and n.endswith("_cuda")]:
            delattr(cls, name)
    return cases


globals().update(_cpu_test_cases())


def per_op_counts():
    """{op type: [passed, failed, excluded]} over every loaded test, and the seconds taken."""
    import collections
    import re
    import time
    import unittest
    start = time.perf_counter()
    cases = {c.name: c for c in _load_our_cases(kind="node")}
    suite = unittest.TestSuite()
    for cls in _backend_test().test_cases.values():
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(cls))
    result = unittest.TestResult()
    suite.run(result)
    failed = {t.id().split(".")[-1] for t, _ in result.failures + result.errors}
    skipped = {t.id().split(".")[-1] for t, _ in result.skipped}
    counts = collections.defaultdict(lambda: [0, 0, 0])
    for name, case in cases.items():
        base = cases.get(re.sub(r"_expanded(_ver\d+)?$", "", name), case)     # an expansion counts for its op
        op = "+".join(sorted({n.op_type for n in base.model.graph.node}))
        counts[op][2 if name + "_cpu" in skipped else 1 if name + "_cpu" in failed else 0] += 1
    return dict(counts), time.perf_counter() - start


if __name__ == "__main__":       # the table of docs/onnx.md: python -m tests.onnx.test_conformance
    counts, seconds = per_op_counts()
    print(f"{'op':28s} pass fail excluded")
    for op, (p, f, e) in sorted(counts.items()):
        print(f"{op:28s} {p:4d} {f:4d} {e:8d}")
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    print(f"{'total':28s} {totals[0]:4d} {totals[1]:4d} {totals[2]:8d}   ({seconds:.1f} s)")
