"""The parity module's summary: how many comparisons ran and the worst relative
error among them, printed at the end of the run (``make parity``)."""
from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from .harness import RECORD, TOL
    if not RECORD:
        return
    case, worst = max(RECORD, key=lambda r: r[1])
    terminalreporter.write_line(
        f"parity with PyTorch: {len(RECORD)} cases compared in float64, worst relative error "
        f"{worst:.2e} ({case}); tolerance {TOL:g}")
