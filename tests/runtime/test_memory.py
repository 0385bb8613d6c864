"""Memory: plans close to the lower bound, never overlapping, and steps that
allocate nothing sizeable once running."""
from __future__ import annotations

import importlib.util
import os
import tracemalloc

import numpy as np
import pytest
from graphnn.runtime import Executor

from graphnn import Model, optim
from tests.example_graphs import EXAMPLE_GRAPHS, data
from tests.runtime.checker import lower_bound_bytes, misaligned, overlapping_buffers, planned_bytes

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "graphs.py")


def bench_graphs():
    spec = importlib.util.spec_from_file_location("bench_graphs", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_model(name, dtype="float32"):
    g, x, out, loss, shape, classes = EXAMPLE_GRAPHS[name](dtype)
    model = Model(g, inputs=x, outputs=out)
    model.compile(loss=loss, optimizer=optim.Adam(1e-3))
    return model, shape, classes, out


def all_programs():
    for name in sorted(EXAMPLE_GRAPHS):
        model, *_ = example_model(name)
        for purpose in ("train", "eval", "predict"):
            for batch in (1, 7, 32):
                for fuse in (True, False):
                    yield f"{name}-{purpose}-{batch}-{'fused' if fuse else 'unfused'}", \
                        model.program(purpose, batch, fuse=fuse)
    bench = bench_graphs()
    for fn in (bench.mlp, bench.cnn, bench.lstm, bench.gru):
        model, shape = bench.compiled(fn)
        for purpose in ("train", "predict"):
            yield f"bench-{fn.__name__}-{purpose}", model.program(purpose, shape[0])


def example_programs():
    """The programs of the examples/ scripts: the target's own scope."""
    import sys
    folder = os.path.join(os.path.dirname(BENCH), "..", "examples")
    sys.path.insert(0, folder)
    try:
        def load(name):
            spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{name}.py"))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        models = {"mnist_cnn": load("mnist_cnn").build(), "mnist_vae": load("mnist_vae").build_vae(),
                  "mnist_autoencoder": load("mnist_autoencoder").build()}
        for cell in ("lstm", "gru"):
            models[f"mnist_{cell}"] = load("mnist_lstm").build(cell)
    finally:
        sys.path.remove(folder)
    for name, model in models.items():           # compiled as the example scripts compile them
        model.compile(loss="mse" if "auto" in name else "binary_cross_entropy" if "vae" in name
                      else "softmax_cross_entropy",
                      optimizer=optim.Adam(2e-3, clip_norm=5.0) if name in ("mnist_lstm", "mnist_gru")
                      else optim.Adam(1e-3))
        for batch in (8, 64):
            yield f"{name}-train-{batch}", model.program("train", batch)
        yield f"{name}-predict", model.program("predict", 64)


PROGRAMS = dict(all_programs())
EXAMPLES = dict(example_programs())


@pytest.mark.parametrize("name", sorted(PROGRAMS) + sorted(EXAMPLES))
def test_plan_is_sound_and_within_5_percent_of_the_lower_bound(name):
    program = PROGRAMS.get(name) or EXAMPLES[name]
    assert overlapping_buffers(program) == [] and misaligned(program) == []
    bound = lower_bound_bytes(program)          # the checker's own, from the instructions
    m = program.memory
    assert bound <= m.planned_bytes <= 1.05 * bound
    assert m.planned_bytes == planned_bytes(program) and program.arena_bytes <= m.planned_bytes
    # the compiler computes the same peak from its schedule: they must agree
    assert m.lower_bound_bytes == bound


def test_the_checkers_lower_bound_on_a_program_worked_by_hand():
    from graphnn.runtime.program import Buffer, Instruction, MemoryReport, Program
    f32 = "float32"
    buffers = {"x": Buffer("x", (16,), f32, offset=0),          # 64 B, fed: alive throughout
               "a": Buffer("a", (40,), f32, offset=64),         # 160 B -> 192
               "a2": Buffer("a2", (40,), f32, offset=64),       # written in place of a
               "s": Buffer("s", (1,), f32, offset=256),         # 4 B scratch -> 64
               "v": Buffer("v", (2, 20), f32, offset=64, view_of="a2"),
               "b": Buffer("b", (8,), f32, offset=320),         # 32 B -> 64
               "y": Buffer("y", (4,), f32, offset=0)}           # 16 B -> 64, an output
    instructions = [Instruction("k", ["x"], ["a", "s"], {}, "a"),            # x a s   = 320
                    Instruction("k", ["a"], ["a2"], {}, "a2", ["a"]),         # x a      = 256
                    Instruction("k", ["v"], ["b"], {}, "b"),                 # x a b    = 320
                    Instruction("k", ["b"], ["y"], {}, "y")]                 # x b y    = 192
    buffers["y"].offset = 384
    program = Program(buffers, instructions, ["x"], ["y"], 1, MemoryReport(0, 0, 448))
    assert overlapping_buffers(program) == [] and lower_bound_bytes(program) == 320
    assert planned_bytes(program) == 448        # y at 384, 64 B
    buffers["b"].offset = 128                   # b placed over the live a: caught
    assert overlapping_buffers(program) != []


def steady_state_peak(step, steps=3) -> int:
    """Bytes allocated at the peak of ``steps`` calls, above what was there before."""
    step()
    tracemalloc.start()
    try:
        step()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(steps):
            step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_a_training_step_allocates_no_array_buffers(which):
    bench = bench_graphs()
    model, shape = bench.compiled(getattr(bench, which))
    ex = Executor(model.program("train", shape[0]), {k: v.copy() for k, v in model.variables.items()})
    rng = np.random.default_rng(0)
    ex.feed({"x": rng.random(shape, dtype=np.float32), "target": rng.integers(0, 10, shape[0])})
    assert steady_state_peak(ex.step) < 64 * 1024


def test_fit_allocates_no_array_buffers_in_its_steady_state():
    model, shape, classes, out = example_model("cnn")
    x, y = data(shape, classes, out.shape, 64)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)     # compiles and binds everything
    assert steady_state_peak(lambda: model.fit(x, y, epochs=1, batch_size=16, verbose=0), 2) < 64 * 1024
