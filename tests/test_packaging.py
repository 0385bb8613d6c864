"""The installed distribution is one name, graphnn, that a user's files cannot shadow."""
import json
import subprocess
import sys
import textwrap

import numpy as np

import graphnn


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_import_works_beside_a_users_compiler_and_runtime_modules(tmp_path):
    # A user's own compiler.py / runtime.py must neither break nor replace ours.
    for name in ("compiler", "runtime"):
        (tmp_path / f"{name}.py").write_text(f"raise RuntimeError('the user\\'s {name}.py was imported')\n")
    result = _run("""
        import graphnn, graphnn.compiler, graphnn.runtime
        g = graphnn.Graph()
        x = g.input("x", (None, 3))
        m = graphnn.Model(g, inputs=x, outputs=g.dense(x, 2))
        print(m.predict([[1.0, 2.0, 3.0]]).shape)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 2)"


def test_nothing_but_graphnn_is_installed_at_top_level():
    from pathlib import Path

    import tomllib
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]
    assert {p.split(".")[0] for p in packages} == {"graphnn"}
    assert graphnn.compiler.__name__ == "graphnn.compiler"


def test_runtime_runs_a_saved_program_with_numpy_alone(tmp_path):
    g = graphnn.Graph()
    x = g.input("x", (None, 4))
    model = graphnn.Model(g, inputs=x, outputs=g.dense(x, 3, activation="relu"), seed=1)
    program = model.program("predict", 2)
    executor_weights = {k: np.asarray(v).tolist() for k, v in model.state_dict().items()}
    (tmp_path / "program.json").write_text(json.dumps(program.to_dict()))
    (tmp_path / "weights.json").write_text(json.dumps(executor_weights))
    feed = np.arange(8, dtype=np.float32).reshape(2, 4)
    expected = model.predict(feed)
    # networkx (and so the builder and compiler) made unimportable: only NumPy may load.
    result = _run("""
        import sys, json
        sys.modules["networkx"] = None
        import numpy as np
        from graphnn.runtime import Executor, Program
        program = Program.from_dict(json.load(open("program.json")))
        weights = {k: np.asarray(v, dtype=np.float32) for k, v in json.load(open("weights.json")).items()}
        out = Executor(program, weights).run({program.inputs[0]: np.arange(8, dtype=np.float32).reshape(2, 4)})
        print(json.dumps(np.asarray(out[program.outputs[0]]).tolist()))
        assert "networkx" not in [m for m in sys.modules if sys.modules[m] is not None]
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.array(json.loads(result.stdout)), expected, rtol=1e-6)
