"""The end-to-end examples (mnist_mlp, mnist_cnn, mnist_lstm) against the same
models in PyTorch: equal data, epochs, batch size, optimizer and learning rate
(Adam; the LSTM's gradients clipped to a global norm of 5), one process, the
same thread count for OpenBLAS and PyTorch. Prints wall seconds of training
plus evaluation, and test accuracy side by side.

    python benchmarks/examples_vs_torch.py [--data path/to/mnist] [--threads 1] [--epochs N]
                                           [--only mlp,cnn,lstm]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
sys.path.insert(0, HERE)
sys.path.insert(0, EXAMPLES)

import torch_models  # noqa: E402

from graphnn import datasets  # noqa: E402

SETTINGS = {"mlp": ("mnist_mlp", 15, 5e-4), "cnn": ("mnist_cnn", 12, 1e-3),
            "lstm": ("mnist_lstm", 14, 2e-3)}


def _example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def graphnn_run(kind, epochs, path):
    """The example script's own run(): returns its test accuracy and the seconds."""
    name = SETTINGS[kind][0]
    t = time.perf_counter()
    result = _example(name).run(path, epochs=epochs, verbose=0)
    return result["test_accuracy"], time.perf_counter() - t


def torch_net(kind):
    from torch import nn
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                             nn.ReLU(), nn.Linear(256, 10))
    if kind == "cnn":
        return torch_models.network("cnn")

    class Rows(nn.Module):          # mnist_lstm.py: 96 units over the 28 rows
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.LSTM(28, 96, batch_first=True), nn.Linear(96, 10)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])
    return Rows()


def torch_run(kind, epochs, path, batch=64, seed=0):
    import torch
    torch.manual_seed(seed)
    (x_train, y_train), (x_test, y_test) = datasets.mnist_split(path)
    shape = {"mlp": (-1, 784), "cnn": (-1, 1, 28, 28), "lstm": (-1, 28, 28)}[kind]
    t = time.perf_counter()
    x_train = torch.from_numpy(np.ascontiguousarray(x_train.reshape(shape), np.float32))
    x_test = torch.from_numpy(np.ascontiguousarray(x_test.reshape(shape), np.float32))
    y_train, y_test = torch.from_numpy(y_train.astype(np.int64)), torch.from_numpy(y_test.astype(np.int64))
    net = torch_net(kind)
    opt = torch.optim.Adam(net.parameters(), lr=SETTINGS[kind][2])
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x_train)))
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss_fn(net(x_train[idx]), y_train[idx]).backward()
            if kind == "lstm":
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
    with torch.no_grad():
        accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    return accuracy, time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "mnist"),
                        help="as the examples: ../shared/data/mnist beside the repository")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="default: each example's own")
    parser.add_argument("--only", default="mlp,cnn,lstm")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits
    torch_models.set_threads(args.threads)
    print("| example | epochs | graphnn s | PyTorch s | PyTorch s / graphnn s | graphnn test acc. "
          "| PyTorch test acc. |\n|---|---:|---:|---:|---:|---:|---:|")
    with threadpool_limits(limits=args.threads):
        for kind in args.only.split(","):
            epochs = args.epochs or SETTINGS[kind][1]
            g_acc, g_s = graphnn_run(kind, epochs, args.data)
            t_acc, t_s = torch_run(kind, epochs, args.data)
            print(f"| {SETTINGS[kind][0]} | {epochs} | {g_s:.1f} | {t_s:.1f} | {t_s / g_s:.2f} | "
                  f"{g_acc:.4f} | {t_acc:.4f} |", flush=True)


if __name__ == "__main__":
    main()
