"""Split calls in a row share one hand-off (runtime/segments.py): each thread
runs its parts in program order, waiting where another thread's part touches
the same memory, one of them writing; the results are those of the calls one
by one, in whatever order the threads run between the waits."""
import numpy as np
import pytest
from graphnn.runtime import Executor
from graphnn.runtime.kernels import KERNELS, bind
from graphnn.runtime.segments import schedule, segments
from graphnn.runtime.threads import Pool, split_call

from tests.runtime.benchmark_models import benchmark_training_program


@pytest.fixture(scope="module")
def pool():
    p = Pool(2)
    yield p
    p.close()


def test_rows_each_thread_owns_need_no_wait_and_shared_memory_does(pool):
    """relu then relu_grad over the same rows: no wait. A (4, 4) result over
    the (4, 2) input's memory: thread 0's part writes rows thread 1's relu
    reads, so it waits for that part; a call that is not split ends the run."""
    buf = np.arange(-16.0, 16.0)
    x, y, mask = buf[:8].reshape(4, 2), np.empty((4, 2)), np.empty((4, 2), bool)
    relu = split_call(KERNELS["relu"], "relu", [x], [y], {}, pool, min_elements=0)
    grad = split_call(KERNELS["relu_grad"], "relu_grad", [x, y], [np.empty((4, 2)), mask], {}, pool,
                      min_elements=0)
    (merged,) = segments([relu, grad], pool)
    assert merged.calls == [relu, grad] and merged.waits == 0
    over = buf[:16].reshape(4, 4)
    clobber = split_call(KERNELS["relu"], "relu", [np.full((4, 4), -1.0)], [over], {}, pool, min_elements=0)
    (merged,) = segments([relu, clobber], pool)
    assert [need for _, need in merged.plan[0]] == [{}, {1: 1}]      # after thread 1's relu
    assert [need for _, need in merged.plan[1]] == [{}, {}]
    merged()
    np.testing.assert_array_equal(y, [[0, 0]] * 4)                  # x was -16..-9 when relu read it
    np.testing.assert_array_equal(buf[:16], 0)
    whole = bind(KERNELS["relu"], [x], [np.empty((4, 2))], {})
    assert segments([relu, whole, grad], pool) == [relu, whole, grad]


class _Part:
    """A stand-in split call: its parts' tasks and touches given."""

    def __init__(self, tasks, touches):
        self.tasks, self.touches = tasks, touches

    def __call__(self):
        raise AssertionError("a segment runs its calls' parts, not the calls")


def test_an_error_in_a_part_reaches_the_caller_and_nothing_hangs(pool):
    """Thread 1's first part fails while thread 0 waits for it: thread 0 stops
    waiting, the error is raised, and the pool runs the next step."""
    ran = []

    def boom():
        raise ZeroDivisionError("part 1 of the first call")
    first = _Part([lambda: ran.append("0a"), boom], [([], [(0, 8)]), ([], [(8, 16)])])
    second = _Part([lambda: ran.append("0b"), lambda: ran.append("1b")], [([(8, 16)], [(0, 8)]), ([], [(16, 24)])])
    (merged,) = segments([first, second], pool)
    assert merged.plan[0][1][1] == {1: 1}
    with pytest.raises(ZeroDivisionError, match="part 1"):
        merged()
    assert "0b" not in ran
    ok = _Part([lambda: ran.append("ok0"), lambda: ran.append("ok1")], [([], [(0, 8)]), ([], [(8, 16)])])
    (again,) = segments([ok, ok], pool)
    again()
    assert ran.count("ok0") == 2 and ran.count("ok1") == 2


def _run_greedy(plan, first):
    """Run a segment's plan on this thread: thread ``first`` as far as its waits
    allow, then the other, and so on (the two most lopsided orders)."""
    done = [0] * len(plan)
    order = [first] + [k for k in range(len(plan)) if k != first]
    while any(d < len(steps) for d, steps in zip(done, plan)):
        for k in order:
            moved = False
            while done[k] < len(plan[k]) and all(done[m] >= n for m, n in plan[k][done[k]][1].items()):
                plan[k][done[k]][0]()
                done[k] += 1
                moved = True
            if moved:
                break
        else:
            raise AssertionError("the plan's waits cannot all be met")


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_segments_of_the_benchmark_steps_give_the_same_results_in_any_order(kind):
    """Each segment of the benchmark CNN's and MLP's two-thread steps (their real
    arena plans), run one call at a time and in the two most lopsided orders
    its waits allow: every byte of the arena and the weights ends the same."""
    model, program, shape = benchmark_training_program(kind)
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal(shape).astype("float32"), "target": rng.integers(0, 10, shape[0])}
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=2)
    (step,) = ex.step_calls                      # the whole step: one hand-off
    heads = sum(hasattr(c, "head") for c in ex.calls)   # a GEMM before its split epilogue: two members
    assert len(step.calls) == len(program.instructions) + heads and (kind == "cnn" or heads)
    ex.feed(feeds)
    for call in ex.step_calls:
        if not hasattr(call, "calls"):
            call()
            continue
        before = (ex.arena.copy(), {k: v.copy() for k, v in ex.variables.items()})
        ends = []
        for order in ("one by one", 0, 1):
            ex.arena[...] = before[0]
            for k, v in before[1].items():
                ex.variables[k][...] = v
            if order == "one by one":
                for member in call.calls:
                    for task in member.tasks:
                        task()
            else:
                _run_greedy(call.plan, order)
            ends.append((ex.arena.copy(), {k: v.copy() for k, v in ex.variables.items()}))
        for arena, variables in ends[1:]:
            np.testing.assert_array_equal(arena, ends[0][0])
            for k in variables:
                np.testing.assert_array_equal(variables[k], ends[0][1][k], err_msg=k)
    ex.close()


def test_a_pooled_step_is_one_hand_off_and_whole_calls_run_on_the_calling_thread():
    """The benchmark CNN: its split calls' parts on both threads, every other
    call on the calling thread (thread 0), in program order; without the whole
    calls' extents, the runs of split calls alone are merged."""
    from graphnn.runtime.segments import Whole
    model, program, _ = benchmark_training_program("cnn")
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=2)
    split = [c for c in ex.calls if hasattr(c, "tasks")]
    assert len(split) >= 20
    (step,) = ex.step_calls
    assert len(step.plan[0]) == len(program.instructions) and len(step.plan[1]) == len(split)
    wholes = [m for m in step.calls if isinstance(m, Whole)]
    assert [m.call for m in wholes] == [c for c in ex.calls if not hasattr(c, "tasks")]
    runs = segments(ex.calls, ex.pool)
    assert 3 <= sum(hasattr(c, "plan") for c in runs) < len(runs) < len(ex.calls)
    ex.close()


def test_schedule_waits_only_for_earlier_parts_on_other_threads():
    """Every wait of the plan points to an earlier call of another thread, so
    the lowest unfinished call can always go on: no deadlock."""
    spans = [[([(0, 8)], [(8, 16)]), ([(8, 16)], [(0, 8)])]] * 3
    calls = [_Part([lambda: None, lambda: None], touches) for touches in spans]
    plan = schedule(calls)
    assert [[need for _, need in steps] for steps in plan] == [[{}, {1: 1}, {1: 2}], [{}, {0: 1}, {0: 2}]]
    for k, steps in enumerate(plan):
        for p, (_, need) in enumerate(steps):
            assert all(m != k and n <= p for m, n in need.items())
    _run_greedy(plan, 0)


def test_a_non_finite_loss_stops_a_pooled_step_before_any_update():
    """check_finite runs on the calling thread inside the step's one hand-off:
    when the loss is NaN it raises, the worker stops at its next wait (every
    gradient, hence every update, waits for the loss's gradient), no weight
    changes, and the next step runs as on a fresh Executor."""
    model, program, shape = benchmark_training_program("cnn")
    rng = np.random.default_rng(6)
    good = {"x": rng.standard_normal(shape).astype("float32"), "target": rng.integers(0, 10, shape[0])}
    bad = {"x": good["x"].copy(), "target": good["target"]}
    bad["x"][3, 0, 5, 5] = np.nan
    ex = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=2)
    assert ex.pool is not None
    with pytest.raises(FloatingPointError, match="loss"):
        ex.run(bad)
    for k, v in model.variables.items():
        np.testing.assert_array_equal(ex.variables[k], v, err_msg=k)
    ex.run(good)
    fresh = Executor(program, {k: v.copy() for k, v in model.variables.items()}, threads=2)
    fresh.run(good)
    for k in model.variables:
        np.testing.assert_array_equal(ex.variables[k], fresh.variables[k], err_msg=k)
    ex.close()
    fresh.close()
