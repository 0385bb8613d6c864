"""graphnn/ imports point one way: no module of the package imports, directly
or through others, a module that imports it back. Every import statement
counts, also those inside functions (a late import is still a dependency)."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[2] / "graphnn"


def _exports() -> dict[str, str]:
    """graphnn/__init__.py's lazy names -> the submodule that defines each."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return {name: (module or name).split(".")[0]
                    for name, module in ast.literal_eval(node.value).items()}
    raise AssertionError("graphnn/__init__.py has no _EXPORTS table")


def import_graph() -> nx.DiGraph:
    """Module -> the graphnn modules it imports (compiler and runtime are outside)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()
                                                        if (p / "__init__.py").exists()}
    exports = _exports()
    g = nx.DiGraph()
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        g.add_node(name)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:                              # from .x import y
                    targets.append(node.module.split(".")[0])
                else:                                        # from . import x
                    for alias in node.names:
                        targets.append(alias.name if alias.name in modules else
                                       exports.get(alias.name, "__init__"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("graphnn."):
                targets.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                targets += [a.name.split(".")[1] for a in node.names if a.name.startswith("graphnn.")]
            for target in targets:
                if target in modules and target not in ("compiler", "runtime", name):
                    g.add_edge(name, target)
    return g


def test_the_finder_sees_imports_inside_functions():
    g = import_graph()
    assert g.has_edge("graph", "layers")      # at the top of graph.py
    assert g.has_edge("model", "archive")     # inside Model.save
    assert g.has_edge("cli", "spec")          # inside a cli function


def test_graphnn_has_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import cycles in graphnn/: " + "; ".join(
        " -> ".join(c + c[:1]) for c in sorted(cycles, key=len))


# The order drawn in docs/architecture.md ("Inside graphnn/"), top to bottom: a
# module imports only modules of its own row or rows below. A module not listed
# (a new one) is held to the cycle test alone until it is placed here.
ROWS = [
    ["cli", "demo"],
    ["io", "spec"],
    ["model", "state"],
    ["graph", "layers", "blocks", "recurrent", "naming", "reuse"],
    ["archive", "viz", "summary", "plots"],
    ["checks", "training", "distributed", "callbacks", "guard", "optim", "schedules",
     "modelfile", "initializers", "regularizers", "datasets", "base", "__init__"],
]


def test_imports_point_down_the_drawn_order():
    row = {m: i for i, members in enumerate(ROWS) for m in members}
    upward = [f"{a} -> {b}" for a, b in import_graph().edges()
              if a in row and b in row and row[b] < row[a]]
    assert not upward, "imports against the order of docs/architecture.md: " + ", ".join(upward)
