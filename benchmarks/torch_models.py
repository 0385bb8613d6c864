"""The benchmark models in PyTorch, built to match benchmarks/graphs.py layer for
layer, and their training and inference steps (SGD with momentum, as graphnn's)."""
from __future__ import annotations


def available() -> bool:
    """Whether PyTorch imports (the `bench` extra installs it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def network(kind: str):
    """The PyTorch twin of ``graphs.<kind>``."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                             nn.Linear(256, 10))
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[kind](28, 128, batch_first=True)

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnn, nn.Linear(128, 10)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])
    return Recurrent()


def train_step(kind: str, shape):
    """A closure running one PyTorch training step on a fixed random batch."""
    import torch
    net = network(kind)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.rand(shape), torch.randint(0, 10, (shape[0],))

    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn(net(x), y).backward()
        opt.step()
    return step


def predict_step(kind: str, shape):
    """A closure running the PyTorch network forward under no_grad, in eval mode."""
    import torch
    net = network(kind).eval()
    x = torch.rand(shape)

    def step():
        with torch.no_grad():
            net(x)
    return step


def set_threads(n: int) -> None:
    import torch
    torch.set_num_threads(n)
