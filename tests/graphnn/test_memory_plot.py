"""plot_memory: every rectangle is one storage of the plan, where the Program
puts it (offset, bytes) and when it lives (computed from the instructions by the
independent checker of tests/runtime/checker.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from graphnn import Model, optim, plot_memory
from tests.example_graphs import EXAMPLE_GRAPHS
from tests.runtime.checker import live_ranges, storages


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def rectangles(fig):
    return {p.get_gid(): (round(p.get_x()), round(p.get_width()), round(p.get_y()), round(p.get_height()))
            for p in fig.axes[0].patches if p.get_gid()}


@pytest.mark.parametrize("name", sorted(EXAMPLE_GRAPHS))
@pytest.mark.parametrize("purpose", ["train", "predict"])
def test_rectangles_are_the_plans_storages(name, purpose):
    g, x, out, loss, *_ = EXAMPLE_GRAPHS[name]("float32")
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss=loss, optimizer=optim.Adam(1e-3))
    program = model.program(purpose, 7)
    drawn = rectangles(plot_memory(program))
    by_group, problems = storages(program)
    assert not problems
    ranges = live_ranges(program, by_group)
    expected = []
    for group, members in by_group.items():
        start, end = ranges[group]
        size = max(program.buffers[m].nbytes for m in members)
        expected.append((start, end - start + 1, program.buffers[members[0]].offset, size))
    assert sorted(drawn.values()) == sorted(expected)
    # each rectangle is named after one of its storage's buffers
    names = {m for members in by_group.values() for m in members}
    assert set(drawn) <= names and len(drawn) == len(by_group)


def test_lines_and_file(tmp_path):
    g, x, out, loss, *_ = EXAMPLE_GRAPHS["cnn"]("float32")
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss=loss, optimizer="adam")
    program = model.program("train", 4)
    fig = plot_memory(program, str(tmp_path / "memory.png"))
    assert (tmp_path / "memory.png").read_bytes().startswith(b"\x89PNG")
    levels = {round(line.get_ydata()[0]) for line in fig.axes[0].lines}
    m = program.memory
    assert {m.lower_bound_bytes, m.naive_bytes, m.planned_bytes} <= levels
    # the peak of bytes alive at once, read off the rectangles (each rounded to the
    # planner's 64-byte alignment), is the lower bound the plan reports
    rects = rectangles(fig).values()
    steps = range(-1, len(program.instructions) + 1)
    peak = max(sum(-(-h // 64) * 64 for x0, w, _, h in rects if x0 <= t < x0 + w) for t in steps)
    assert peak == m.lower_bound_bytes
    colours = {p.get_facecolor() for p in fig.axes[0].patches if p.get_gid()}
    assert len(colours) == 4          # input, forward, backward, update
