"""The ``graphnn`` command line.

    graphnn demo                                    train a small CNN on the embedded digits
    graphnn train SPEC --data digits --epochs 10 --out model.gnn
    mpiexec -n 4 graphnn train SPEC ...             the same, data-parallel over 4 processes
    graphnn evaluate MODEL --data digits
    graphnn predict MODEL --data digits [--out predictions.npy]
    graphnn summary SPEC|MODEL
    graphnn plot SPEC|MODEL -o net.svg [--view graph|training|compiled]
    graphnn inspect SPEC|MODEL [--purpose train|predict] [--batch-size 32] [--allreduce] [--passes]
                               [--memory-plot FILE]
    graphnn export MODEL -o model.onnx [--opset 21]

Wherever a MODEL or SPEC is read, an ONNX file (.onnx) works too (with the
onnx extra: pip install graphnn[onnx]).

``--data`` is ``digits`` (embedded), ``mnist:FOLDER`` (the IDX files; the first
5,000 test images train, the last 5,000 test) or ``FILE.npz`` (arrays x and y,
and optionally x_test and y_test). Bad input exits with status 1 and one line.

>>> main(["--version"])
graphnn 0.1.0
0
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .optim import OPTIMIZERS


class UsageError(ValueError):
    """A command-line mistake: reported in one line, exit status 1.

    >>> import contextlib
    >>> with contextlib.redirect_stderr(sys.stdout):
    ...     main(["train", "no-such-spec.yaml"])
    graphnn: error: no-such-spec.yaml: no such file
    1
    """


# ----------------------------------------------------------------- data

def load_data(source: str, seed: int = 0):
    """((x_train, y_train), (x_test, y_test)) from a --data argument: the
    embedded digits split 3:1 (seeded), MNIST's split, or an .npz (split 3:1
    unless it holds x_test and y_test).

    >>> (x, y), (x_test, y_test) = load_data("digits")
    >>> x.shape, x_test.shape
    ((1348, 8, 8), (449, 8, 8))
    >>> load_data("cifar")
    Traceback (most recent call last):
    ...
    graphnn.cli.UsageError: --data 'cifar': expected digits, mnist:FOLDER or FILE.npz
    """
    from . import datasets
    if source == "digits":
        x, y = datasets.digits()
        return datasets.split(x, y, 0.25, seed)
    if source.startswith("mnist:"):
        return datasets.mnist_split(source[len("mnist:"):] or None)
    if source.endswith(".npz"):
        if not os.path.exists(source):
            raise UsageError(f"--data {source}: no such file")
        try:
            with np.load(source, allow_pickle=False) as f:
                if "x" not in f.files or "y" not in f.files:
                    raise UsageError(f"--data {source}: expected arrays 'x' and 'y', found {f.files}")
                arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test") if k in f.files}
        except UsageError:
            raise
        except Exception as e:  # noqa: BLE001 - not an npz, damaged, or pickled objects
            raise UsageError(f"--data {source}: not a readable .npz of arrays ({e})") from None
        for a, b in (("x", "y"), ("x_test", "y_test")):
            if a in arrays and b in arrays and (arrays[a].ndim == 0 or arrays[b].ndim == 0
                                                or len(arrays[a]) != len(arrays[b])):
                raise UsageError(f"--data {source}: {a} has {len(np.atleast_1d(arrays[a]))} samples "
                                 f"but {b} has {len(np.atleast_1d(arrays[b]))}")
        if len(arrays["x"]) == 0:
            raise UsageError(f"--data {source}: x holds no samples")
        if "x_test" in arrays and "y_test" in arrays:
            return (arrays["x"], arrays["y"]), (arrays["x_test"], arrays["y_test"])
        return datasets.split(arrays["x"], arrays["y"], 0.25, seed)
    raise UsageError(f"--data {source!r}: expected digits, mnist:FOLDER or FILE.npz")


def fit_to_input(x: np.ndarray, shape: tuple, name: str) -> np.ndarray:
    """Reshape samples to the model input's per-sample shape (same element count).

    >>> fit_to_input(np.zeros((3, 8, 8)), (None, 64), "x").shape      # images to a dense input
    (3, 64)
    >>> fit_to_input(np.zeros((3, 8, 8)), (None, 60), "x")
    Traceback (most recent call last):
    ...
    graphnn.cli.UsageError: the data's samples have shape (8, 8), but input 'x' takes (60,)
    """
    want = tuple(shape[1:])
    if x.shape[1:] == want:
        return x
    if int(np.prod(x.shape[1:])) != int(np.prod(want)):
        raise UsageError(f"the data's samples have shape {x.shape[1:]}, but input {name!r} "
                         f"takes {want}")
    return x.reshape(len(x), *want)


# ----------------------------------------------------------------- models

def _example_files(folder: str, trained: bool = False) -> tuple[str, str, str]:
    """For the examples: in folder, a spec of one dense layer (softmax cross-entropy) and an
    .npz of 40 one-hot samples of 4 classes; with trained, the spec trained on it and saved
    (as in cmd_train's example). Returns the paths (spec, data, saved model)."""
    spec, data, saved = (os.path.join(folder, f) for f in ("s.yaml", "d.npz", "m.gnn"))
    with open(spec, "w") as f:
        f.write("layers:\n  - {type: input, name: x, shape: [null, 4]}\n"
                "  - {type: dense, name: out, inputs: x, units: 4}\n"
                "model: {loss: softmax_cross_entropy}\n")
    np.savez(data, x=np.eye(4)[np.arange(40) % 4], y=np.arange(40) % 4)   # x: y one-hot
    if trained:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(["train", spec, "--data", data, "--epochs", "20", "--optimizer", "sgd",
                           "--lr", "1", "--verbose", "0", "--out", saved])
        if status != 0:
            raise RuntimeError(f"training the example model failed (status {status})")
    return spec, data, saved


def open_model(path: str):
    """A Model from a saved .gnn file, an ONNX file or a spec (YAML/JSON), by suffix.

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, data, saved = _example_files(d.name)   # a dense layer's spec; 4 one-hot classes
    >>> m = open_model(spec); m.inputs, m.outputs, m.optimizer     # the spec's loss: compiled
    (['x'], ['out/bias_add'], Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08))
    >>> m.save(saved); open_model(saved).outputs
    ['out/bias_add']
    >>> d.cleanup()
    """
    from .io import load_model
    from .spec import model_from_spec
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if path.endswith(".gnn"):
        return load_model(path)
    if path.endswith(".onnx"):
        from .onnx import load
        return load(path)
    return model_from_spec(path)


def _input_shape(model):
    return model._checked.nodes[model.inputs[0]]["shape"]


def cmd_train(args):
    """``graphnn train``: compile the spec's model (its loss, or --loss), train it
    on --data with the test part as validation, print the test loss and accuracy,
    and save it to --out. Here a dense layer learns 4 one-hot classes:

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, data, saved = _example_files(d.name)   # a dense layer's spec; 4 one-hot classes
    >>> main(["train", spec, "--data", data, "--epochs", "20", "--optimizer", "sgd", "--lr", "1",
    ...       "--verbose", "0", "--out", saved])                # doctest: +ELLIPSIS
    test loss: ... - test accuracy: 1.0000
    saved .../m.gnn
    0
    >>> d.cleanup()
    """
    from . import optim
    model = open_model(args.spec)
    (x, y), (xt, yt) = load_data(args.data, args.seed)
    x = fit_to_input(x, _input_shape(model), model.inputs[0])
    xt = fit_to_input(xt, _input_shape(model), model.inputs[0])
    loss = model.compile_config()["loss"][1] if model.compile_config() else args.loss
    model.compile(loss=model.graph[loss] if loss in model.graph.nx else loss,
                  optimizer=optim.OPTIMIZERS[args.optimizer](lr=args.lr), metrics=["accuracy"])
    root = _fit(model, x, y, epochs=args.epochs, batch_size=args.batch_size,
                validation_data=(xt, yt), seed=args.seed, verbose=args.verbose)
    result = model.evaluate(xt, yt)
    if not root:
        return
    print(" - ".join(f"test {k}: {v:.4f}" for k, v in result.items()))
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")


def _fit(model, x, y, **kwargs) -> bool:
    """Train, data-parallel over the ranks when mpiexec started several (the global
    batch is --batch-size); return whether this process is the one that reports."""
    from . import distributed
    if distributed.launched_ranks() == 1:
        model.fit(x, y, **kwargs)
        return True
    model.fit(x, y, distributed=True, **kwargs)
    return distributed.Ranks().root


def cmd_evaluate(args):
    """``graphnn evaluate``: a compiled model's loss and metrics on the test part of --data.

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, data, saved = _example_files(d.name, trained=True)   # saved: cmd_train's model
    >>> main(["evaluate", saved, "--data", data])               # doctest: +ELLIPSIS
    loss: ... - accuracy: 1.0000
    0
    >>> d.cleanup()
    """
    model = open_model(args.model)
    if model.compile_config() is None:
        raise UsageError(f"{args.model}: the model was never compiled; train it first")
    _, (xt, yt) = load_data(args.data, args.seed)
    result = model.evaluate(fit_to_input(xt, _input_shape(model), model.inputs[0]), yt)
    print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))


def cmd_predict(args):
    """``graphnn predict``: the model's outputs on the test part of --data: the
    first 20 classes printed, all outputs saved as .npy with --out.

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, data, saved = _example_files(d.name, trained=True)   # saved: cmd_train's model
    >>> main(["predict", saved, "--data", data])
    first predictions: 3 3 0 0 3 2 3 2 2 1
    0
    >>> (_, _), (x_test, y_test) = load_data(data); y_test.tolist()     # the labels: all right
    [3, 3, 0, 0, 3, 2, 3, 2, 2, 1]
    >>> d.cleanup()
    """
    model = open_model(args.model)
    _, (xt, _) = load_data(args.data, args.seed)
    out = model.predict(fit_to_input(xt, _input_shape(model), model.inputs[0]))
    if args.out:
        np.save(args.out, out)
        print(f"saved {out.shape} predictions to {args.out}")
    classes = out.argmax(axis=1) if out.ndim == 2 and out.shape[1] > 1 else out.ravel()
    print("first predictions:", " ".join(str(c) for c in classes[:20]))


def cmd_summary(args):
    """``graphnn summary``: ``Model.summary``'s table (at --batch-size, --expand for
    the layers inside blocks).

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, _, _ = _example_files(d.name)          # a dense layer's spec
    >>> main(["summary", spec, "--batch-size", "4"])             # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
    ===...
    Layer (type)  Output shape  Param #  Trainable  FLOPs  Kept for bwd  Weights  Opt. state  Connected to
    ===...
    x (input)     (N, 4)        0                   0      0             0        0
    out (dense)   (N, 4)        20       yes        36     64 B          80 B     ...        x
    ===...
    Total params: 20 (trainable 20, non-trainable 0)
    ...
    0
    >>> d.cleanup()
    """
    print(open_model(args.spec).summary(batch_size=args.batch_size, expand_nested=args.expand))


def cmd_plot(args):
    """``graphnn plot``: draw the model with graphviz (``graphnn.viz.plot_model``)
    into -o, the format from its suffix.

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, _, _ = _example_files(d.name)          # a dense layer's spec
    >>> main(["plot", spec, "-o", os.path.join(d.name, "net.dot")])     # doctest: +ELLIPSIS
    wrote .../net.dot
    0
    >>> text = open(os.path.join(d.name, "net.dot")).read()   # .svg, .png, ... need graphviz's dot
    >>> text.startswith("digraph"), "out" in text
    (True, True)
    >>> d.cleanup()
    """
    from .viz import plot_model, write
    model = open_model(args.spec)
    dot = plot_model(model, view=args.view, expand_nested=args.expand, rankdir=args.rankdir,
                     batch_size=args.batch_size, focus=args.focus, depth=args.depth,
                     expand_repeats=args.expand_repeats)
    print(f"wrote {write(dot, args.output)}")


def cmd_inspect(args):
    """``graphnn inspect``: print the compiled Program (--purpose, --batch-size;
    --allreduce: the distributed step; --passes: the graph after every compiler
    pass), and with --memory-plot draw its memory plan.

    >>> import tempfile
    >>> d = tempfile.TemporaryDirectory()
    >>> spec, _, _ = _example_files(d.name)          # a dense layer's spec
    >>> main(["inspect", spec, "--batch-size", "2"])            # doctest: +NORMALIZE_WHITESPACE
    program (batch 2): 1 instructions, arena 128 B (naive 128 B, lower bound 128 B)
      inputs:  x@0
        0  out/bias_add@64 = fused[matmul+bias_add](x@0, out/W, out/b)
      outputs: out/bias_add@64
      buffers:
        x              (2, 4)   float32  [0, 32)
        out/bias_add   (2, 4)   float32  [64, 96)
        out/W          (4, 4)   float32  persistent
        out/b          (4,)     float32  persistent
    0
    >>> d.cleanup()
    """
    model = open_model(args.spec)
    if args.purpose == "train" and model.compile_config() is None:
        raise UsageError(f"{args.spec}: --purpose train needs a loss (the spec's model.loss)")
    if args.allreduce:
        from .distributed import training_program
        if model.compile_config() is None:
            raise UsageError(f"{args.spec}: --allreduce needs a loss (the spec's model.loss)")
        program = training_program(model, args.batch_size)
    elif args.passes:
        from .compiler.printer import format_stage
        model.program(args.purpose, args.batch_size,
                      trace=lambda name, result: print(f"== after {name} ==\n{format_stage(result)}\n"))
        return
    else:
        program = model.program(args.purpose, args.batch_size)
    print(program)
    if args.memory_plot:
        from .plots import plot_memory
        plot_memory(program, args.memory_plot)
        print(f"wrote {args.memory_plot}")


def cmd_export(args):
    """``graphnn export``: write the model's inference graph as ONNX (-o, --opset);
    needs the onnx extra, checked before the model is read.

    >>> args = parser().parse_args(["export", "m.gnn"])
    >>> args.run is cmd_export, args.output, args.opset
    (True, 'model.onnx', 21)
    """
    from .onnx import export, require_onnx
    require_onnx()                         # before reading the model: say what is missing first
    model = open_model(args.model)
    proto = export(model, args.output, opset=args.opset)
    print(f"wrote {args.output}: {len(proto.graph.node)} ONNX nodes, opset {args.opset}")


def cmd_demo(args):
    """``graphnn demo``: ``graphnn.demo.run_demo`` (a small CNN on the digits,
    pictures written to --out).

    >>> args = parser().parse_args(["demo", "--epochs", "3"])
    >>> args.run is cmd_demo, args.out, args.epochs, args.seed
    (True, 'out', 3, 0)
    """
    from .demo import run_demo
    run_demo(out=args.out, epochs=args.epochs, seed=args.seed)


# ----------------------------------------------------------------- parser

def positive_int(text: str) -> int:
    """An argparse type: an int >= 1.

    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0.

    >>> positive_float("3e-3")
    0.003
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per verb, each with its defaults and
    its ``run`` function.

    >>> args = parser().parse_args(["train", "net.yaml", "--epochs", "3"])
    >>> args.run is cmd_train, args.epochs, args.batch_size, args.optimizer, args.data
    (True, 3, 32, 'adam', 'digits')
    >>> import contextlib
    >>> with contextlib.redirect_stderr(sys.stdout):
    ...     parser().parse_args(["train", "net.yaml", "--epochs", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    p = argparse.ArgumentParser(prog="graphnn", description="Neural networks as graphs: "
                                "declare, compile, train with NumPy, and look at them.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def data_args(c):
        c.add_argument("--data", default="digits", help="digits, mnist:FOLDER or FILE.npz")
        c.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("train", help="train a model described by a spec (or a saved .gnn)")
    c.add_argument("spec", help="YAML/JSON spec or .gnn file")
    data_args(c)
    c.add_argument("--epochs", type=positive_int, default=10)
    c.add_argument("--batch-size", type=positive_int, default=32)
    c.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    c.add_argument("--lr", type=positive_float, default=1e-3)
    c.add_argument("--loss", default="softmax_cross_entropy", help="when the spec names none")
    c.add_argument("--out", help="where to save the trained model (.gnn)")
    c.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    c.set_defaults(run=cmd_train)

    c = sub.add_parser("evaluate", help="loss and accuracy of a saved model on test data")
    c.add_argument("model")
    data_args(c)
    c.set_defaults(run=cmd_evaluate)

    c = sub.add_parser("predict", help="run a saved model on the test data")
    c.add_argument("model")
    data_args(c)
    c.add_argument("--out", help="save the predictions (.npy)")
    c.set_defaults(run=cmd_predict)

    c = sub.add_parser("summary", help="the layer table, parameter counts and memory plan")
    c.add_argument("spec")
    c.add_argument("--batch-size", type=positive_int, default=32)
    c.add_argument("--expand", action="store_true", help="a row for each layer inside a block")
    c.set_defaults(run=cmd_summary)

    c = sub.add_parser("plot", help="draw the model with graphviz")
    c.add_argument("spec")
    c.add_argument("-o", "--output", default="net.svg", help="file; the suffix picks the format")
    c.add_argument("--view", choices=["graph", "training", "compiled", "distributed"], default="graph")
    c.add_argument("--expand", action="store_true", help="show the ops inside each layer")
    c.add_argument("--rankdir", choices=["TB", "LR"], default="TB")
    c.add_argument("--batch-size", type=positive_int, default=32)
    c.add_argument("--focus", help="training/compiled views: draw only this layer or block")
    c.add_argument("--depth", type=positive_int,
                   help="training/compiled views: 1 = one box per layer and role")
    c.add_argument("--expand-repeats", action="store_true",
                   help="draw every layer of a chain of identical ones and every recurrent step")
    c.set_defaults(run=cmd_plot)

    c = sub.add_parser("inspect", help="print the compiled program and its memory plan")
    c.add_argument("spec")
    c.add_argument("--purpose", choices=["train", "eval", "predict"], default="predict")
    c.add_argument("--batch-size", type=positive_int, default=32)
    c.add_argument("--allreduce", action="store_true",
                   help="the distributed training step (gradient all-reduce) at this local batch")
    c.add_argument("--passes", action="store_true",
                   help="print the graph after each compiler pass (validate ... plan), one line per node")
    c.add_argument("--memory-plot", metavar="FILE", help="also draw the memory plan (a PNG)")
    c.set_defaults(run=cmd_inspect)

    c = sub.add_parser("export", help="write a model's inference graph as ONNX")
    c.add_argument("model", help=".gnn file or spec")
    c.add_argument("-o", "--output", default="model.onnx")
    c.add_argument("--opset", type=int, default=21)
    c.set_defaults(run=cmd_export)

    c = sub.add_parser("demo", help="train a small CNN on the embedded digits; write out/")
    c.add_argument("--out", default="out")
    c.add_argument("--epochs", type=positive_int, default=15)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(run=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 0 done, 1 an error (one
    line on stderr, no traceback), 2 no command (the help is printed).

    >>> import contextlib
    >>> with contextlib.redirect_stderr(sys.stdout):
    ...     main(["evaluate", "model.gnn", "--data", "cifar"])
    graphnn: error: model.gnn: no such file
    1
    >>> main([])                                   # doctest: +ELLIPSIS
    usage: graphnn [-h] [--version] COMMAND ...
    ...
    2
    """
    from . import GraphError, __version__
    args = parser().parse_args(argv)
    if args.version:
        print(f"graphnn {__version__}")
        return 0
    if not getattr(args, "run", None):
        parser().print_help()
        return 2
    try:
        args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``graphnn inspect net.yaml | head``): not an error to
        # report; point stdout at /dev/null so the interpreter's own flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("graphnn: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        expected = (ValueError, KeyError, OSError, GraphError, FloatingPointError, ImportError)
        message = str(e).strip().replace("\n", "; ") or type(e).__name__
        if isinstance(e, KeyError) and e.args:
            message = str(e.args[0])
        if not isinstance(e, expected):
            message = f"{type(e).__name__}: {message}"
        print(f"graphnn: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
