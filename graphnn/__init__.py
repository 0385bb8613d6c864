"""graphnn: declare a network as a graph, compile it, train it with NumPy.

>>> import graphnn
>>> g = graphnn.Graph()
>>> x = g.input("x", (None, 64))
>>> logits = g.dense(g.dense(x, 32, activation="relu"), 10)
>>> model = graphnn.Model(g, inputs=x, outputs=logits)
>>> model.compile(loss="softmax_cross_entropy", optimizer=graphnn.optim.Adam(1e-3))
"""
from compiler.errors import GraphError, ShapeError

from . import callbacks, datasets, initializers, optim, regularizers, schedules
from .graph import Graph, Tensor
from .io import load_model
from .model import Model
from .spec import SpecError, load_spec, model_from_spec, save_spec
from .training import History
from .viz import plot_model

__version__ = "0.1.0"
__all__ = ["Graph", "Tensor", "Model", "History", "GraphError", "ShapeError", "SpecError",
           "optim", "schedules", "regularizers", "callbacks", "datasets", "initializers", "load_spec", "save_spec", "model_from_spec",
           "load_model", "plot_model"]
