"""graphnn as an ONNX backend (``onnx.backend.base.Backend``), so that ONNX's
own test runner (``onnx.backend.test.BackendTest``) can judge it.

``prepare`` imports the model with every input dimension as written (the
conformance tests feed fixed shapes), and the returned ``GraphnnRep`` compiles
the inference program once and runs it for each set of inputs.

>>> import numpy as np
>>> from onnx import helper, TensorProto
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
>>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
>>> model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
>>> prepare(model).run([np.array([[-1, 0, 2]] * 2, dtype=np.float32)])[0][0]
array([0., 0., 2.], dtype=float32)
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from ..compiler.pipeline import build_program, inference_graph
from ..runtime import Executor
from .importer import load_model

# Inputs that graphnn needs as constants (its shapes are static): when a model
# feeds them at run time, the backend freezes the values it is given.
SHAPE_INPUTS = {"Reshape": (1,), "Slice": (1, 2, 3, 4), "Resize": (1, 2, 3), "Upsample": (1,),
                "Unsqueeze": (1,), "Squeeze": (1,), "Dropout": (1, 2), "LSTM": (4,), "GRU": (4,)}


def _example_fed_reshape() -> onnx.ModelProto:
    """For the examples: an ONNX model y = Reshape(x, s) whose shape s (int64, 2) is a graph
    input, fed at run time; x is float (2, 3), y float (3, 2)."""
    make = onnx.helper.make_tensor_value_info
    x = make("x", onnx.TensorProto.FLOAT, [2, 3])
    s = make("s", onnx.TensorProto.INT64, [2])
    y = make("y", onnx.TensorProto.FLOAT, [3, 2])
    reshape = onnx.helper.make_node("Reshape", ["x", "s"], ["y"])
    return onnx.helper.make_model(onnx.helper.make_graph([reshape], "g", [x, s], [y]))


def shape_inputs(proto) -> list[str]:
    """Graph inputs that feed a shape-like operand (see SHAPE_INPUTS).

    >>> proto = _example_fed_reshape()    # y = Reshape(x, s): x (2, 3), the shape s fed
    >>> shape_inputs(proto)
    ['s']
    """
    fed = {v.name for v in proto.graph.input} - {t.name for t in proto.graph.initializer}
    names = []
    for node in proto.graph.node:
        for port in SHAPE_INPUTS.get(node.op_type, ()):
            if port < len(node.input) and node.input[port] in fed and node.input[port] not in names:
                names.append(node.input[port])
    return names


def output_dtypes(proto) -> list:
    """The NumPy dtype each graph output declares (None where it declares none).

    >>> proto = _example_fed_reshape()    # y = Reshape(x, s): x (2, 3), the shape s fed
    >>> output_dtypes(proto)
    [dtype('float32')]
    """
    return [onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
            if v.type.tensor_type.elem_type else None for v in proto.graph.output]


def freeze(proto, values: dict):
    """A copy of ``proto`` in which the named inputs are initializers holding ``values``.

    >>> proto = _example_fed_reshape()    # y = Reshape(x, s): x (2, 3), the shape s fed
    >>> frozen = freeze(proto, {"s": np.array([3, 2])})
    >>> [v.name for v in frozen.graph.input], [t.name for t in frozen.graph.initializer]
    (['x'], ['s'])
    >>> [v.name for v in proto.graph.input]          # the original is untouched
    ['x', 's']
    """
    frozen = onnx.ModelProto()
    frozen.CopyFrom(proto)
    kept = [v for v in frozen.graph.input if v.name not in values]
    del frozen.graph.input[:]
    frozen.graph.input.extend(kept)
    frozen.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in values.items())
    return frozen


class GraphnnRep(BackendRep):
    """A prepared model: compiled once per batch size, then run.

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, x, g.relu(x))
    >>> rep = GraphnnRep(m)
    >>> rep.run({"x": np.array([[-1.0, 0.0, 2.0]])}), rep.input_names
    ((array([[0., 0., 2.]], dtype=float32),), ['x'])
    """

    def __init__(self, model, input_names=None, output_dtypes=None):
        self.model = model
        self.output_dtypes = output_dtypes     # the ONNX graph's (a mask comes back as bool)
        self.input_names = list(input_names or model.inputs)     # the ONNX graph's, in order
        self._graph = inference_graph(model._checked, model.outputs)
        self._executors: dict = {}

    def _executor(self, batch: int) -> Executor:
        if batch not in self._executors:
            program = build_program(self._graph, self.model.outputs, batch)
            self._executors[batch] = Executor(program, self.model.variables)
        return self._executors[batch]

    def run(self, inputs, **kwargs):
        """Outputs (a tuple, in the model's output order) for inputs given as a
        list (in input order) or a dict by name.

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 3)); m = Model(g, x, g.relu(x))
        >>> rep = GraphnnRep(m)
        >>> rep.run([np.array([[-1.0, 0.0, 2.0], [3.0, -3.0, 0.5]])])[0]     # a batch of 2
        array([[0. , 0. , 2. ],
               [3. , 0. , 0.5]], dtype=float32)
        """
        names = self.model.inputs
        if not isinstance(inputs, dict):
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            inputs = dict(zip(self.input_names, inputs))
        feeds = {k: np.asarray(v) for k, v in inputs.items() if k in names}   # unused ones dropped
        batch = 1
        for n in names:
            if self.model._checked.nodes[n]["shape"][:1] == (None,):
                batch = len(feeds[n])
                break
        results = self._executor(batch).run(feeds)
        outs = [np.array(results[o]) for o in self.model.outputs]
        if self.output_dtypes:
            outs = [v.astype(d) if d is not None and v.dtype != d else v
                    for v, d in zip(outs, self.output_dtypes)]
        return tuple(outs)


class FrozenShapesRep(BackendRep):
    """For models that feed shape-like inputs: imported when the first inputs
    arrive, with those inputs frozen to their values (re-imported if they change).

    >>> proto = _example_fed_reshape()    # y = Reshape(x, s): x (2, 3), the shape s fed
    >>> rep = FrozenShapesRep(proto, ["s"]); rep.input_names
    ['x', 's']
    >>> rep.run([np.arange(6, dtype=np.float32).reshape(2, 3), np.array([3, 2])])[0].shape
    (3, 2)
    >>> rep.run([np.arange(6, dtype=np.float32).reshape(2, 3), np.array([6, 1])])[0].shape
    (6, 1)
    """

    def __init__(self, proto, frozen: list[str]):
        self.proto, self.frozen = proto, frozen
        initializers = {t.name for t in proto.graph.initializer}
        self.input_names = [v.name for v in proto.graph.input if v.name not in initializers]
        self._reps: dict = {}

    def run(self, inputs, **kwargs):
        """Outputs for these inputs (a list in input order, or a dict), the shape
        inputs frozen to the values given.

        >>> proto = _example_fed_reshape()    # y = Reshape(x, s): x (2, 3), the shape s fed
        >>> FrozenShapesRep(proto, ["s"]).run({"x": np.ones((2, 3), np.float32), "s": np.array([1, 6])})
        (array([[1., 1., 1., 1., 1., 1.]], dtype=float32),)
        """
        if not isinstance(inputs, dict):
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            inputs = dict(zip(self.input_names, inputs))
        values = {k: np.asarray(inputs[k]) for k in self.frozen}
        key = tuple((k, v.dtype.str, v.shape, v.tobytes()) for k, v in values.items())
        if key not in self._reps:
            model = load_model(freeze(self.proto, values), batch_symbolic=False)
            self._reps[key] = GraphnnRep(model, output_dtypes=output_dtypes(self.proto))
        return self._reps[key].run({k: v for k, v in inputs.items() if k not in values})


class GraphnnBackend(Backend):
    """Runs ONNX models with graphnn's compiler and NumPy runtime, on the CPU.

    >>> proto = _example_fed_reshape()    # y = Reshape(x, s): x (2, 3), the shape s fed
    >>> type(GraphnnBackend.prepare(proto)).__name__       # a fed shape: frozen when run
    'FrozenShapesRep'
    """

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> GraphnnRep:
        """Import the model with every dimension as written and return its runner
        (a FrozenShapesRep if it feeds shape-like inputs).

        >>> from onnx import helper, TensorProto
        >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
        >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
        >>> neg = helper.make_node("Neg", ["x"], ["y"])
        >>> proto = helper.make_model(helper.make_graph([neg], "g", [x], [y]))
        >>> rep = GraphnnBackend.prepare(proto); type(rep).__name__, rep.model.graph["y"].shape
        ('GraphnnRep', (1, 2))
        """
        super().prepare(model, device, **kwargs)
        frozen = shape_inputs(model)
        if frozen:
            return FrozenShapesRep(model, frozen)
        initializers = {t.name for t in model.graph.initializer}
        names = [v.name for v in model.graph.input if v.name not in initializers]
        return GraphnnRep(load_model(model, batch_symbolic=False), names, output_dtypes(model))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        """``prepare`` and run once.

        >>> from onnx import helper, TensorProto
        >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
        >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
        >>> neg = helper.make_node("Neg", ["x"], ["y"])
        >>> proto = helper.make_model(helper.make_graph([neg], "g", [x], [y]))
        >>> GraphnnBackend.run_model(proto, [np.array([[1.0, -2.0]], np.float32)])
        (array([[-1.,  2.]], dtype=float32),)
        """
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """The CPU only.

        >>> GraphnnBackend.supports_device("CPU"), GraphnnBackend.supports_device("CUDA:0")
        (True, False)
        """
        return device.upper().startswith("CPU")


prepare = GraphnnBackend.prepare
run_model = GraphnnBackend.run_model
run_node = GraphnnBackend.run_node
supports_device = GraphnnBackend.supports_device
