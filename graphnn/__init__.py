"""graphnn: declare a network as a graph, compile it, train it with NumPy.

>>> import graphnn
>>> g = graphnn.Graph()
>>> x = g.input("x", (None, 64))
>>> logits = g.dense(g.dense(x, 32, activation="relu"), 10)
>>> model = graphnn.Model(g, inputs=x, outputs=logits)
>>> model.compile(loss="softmax_cross_entropy", optimizer=graphnn.optim.Adam(1e-3))

The names below load on first use (PEP 562), so ``import graphnn.runtime`` (which a saved
Program needs) pulls in NumPy alone, not networkx, the builder or the views.
"""
import importlib

__version__ = "0.1.0"

# public name -> the submodule that defines it (None: the name is that submodule)
_EXPORTS = {
    "Graph": "graph", "Tensor": "graph", "Model": "model", "History": "training",
    "GraphError": "compiler.errors", "ShapeError": "compiler.errors",
    "SpecError": "spec", "load_spec": "spec", "save_spec": "spec", "model_from_spec": "spec",
    "load_model": "io", "plot_model": "viz", "plot_memory": "plots",
    "optim": None, "schedules": None, "regularizers": None, "callbacks": None,
    "datasets": None, "initializers": None, "compiler": None, "runtime": None,
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'graphnn' has no attribute {name!r}")
    module = importlib.import_module(f".{_EXPORTS[name] or name}", __name__)
    value = module if _EXPORTS[name] is None else getattr(module, name)
    globals()[name] = value          # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
