"""Ten training steps of every optimizer configuration against torch.optim, on
the same two-layer network, the same starting weights and the same batches:
the weights after every step must agree.

graphnn trains through the public Model (compile, fit one batch at a time);
PyTorch through torch.optim on nn.Linear layers (weight = graphnn's W.T).

Conventions mapped here: graphnn's RMSprop defaults are Keras's (lr 1e-3,
rho 0.9, eps 1e-7) and PyTorch's are lr 1e-2, alpha 0.99, eps 1e-8, so every
hyperparameter is passed explicitly (rho is PyTorch's alpha); the update itself
is PyTorch's (eps added after the square root, momentum buffer of scaled
gradients). clip_norm is torch.nn.utils.clip_grad_norm_ on all gradients together.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")

from graphnn import Graph, Model, optim  # noqa: E402
from tests.parity.harness import compare, rng_for  # noqa: E402

STEPS, BATCH, FEATURES, HIDDEN, OUT = 10, 6, 5, 4, 3

# id: (graphnn optimizer, torch.optim class, its keyword arguments, clip norm)
CONFIGS = {
    "sgd": (optim.SGD(0.1), torch.optim.SGD, {"lr": 0.1}),
    "sgd momentum": (optim.SGD(0.1, momentum=0.9), torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "sgd nesterov": (optim.SGD(0.1, momentum=0.9, nesterov=True), torch.optim.SGD,
                     {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "sgd weight decay": (optim.SGD(0.1, weight_decay=0.05), torch.optim.SGD,
                         {"lr": 0.1, "weight_decay": 0.05}),
    "sgd momentum weight decay": (optim.SGD(0.1, momentum=0.9, weight_decay=0.05), torch.optim.SGD,
                                  {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05}),
    "sgd nesterov weight decay": (optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
                                  torch.optim.SGD,
                                  {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    "adam": (optim.Adam(0.01), torch.optim.Adam, {"lr": 0.01}),
    "adam betas eps": (optim.Adam(0.02, beta1=0.5, beta2=0.9, eps=1e-6), torch.optim.Adam,
                       {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-6}),
    "adamw": (optim.AdamW(0.01, weight_decay=0.1), torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    "rmsprop": (optim.RMSprop(0.01, rho=0.9, eps=1e-7), torch.optim.RMSprop,
                {"lr": 0.01, "alpha": 0.9, "eps": 1e-7}),
    "rmsprop momentum": (optim.RMSprop(0.01, rho=0.9, eps=1e-7, momentum=0.8), torch.optim.RMSprop,
                         {"lr": 0.01, "alpha": 0.9, "eps": 1e-7, "momentum": 0.8}),
    "rmsprop centered": (optim.RMSprop(0.01, rho=0.95, eps=1e-7, centered=True), torch.optim.RMSprop,
                         {"lr": 0.01, "alpha": 0.95, "eps": 1e-7, "centered": True}),
    "rmsprop momentum centered": (optim.RMSprop(0.01, rho=0.9, eps=1e-8, momentum=0.5, centered=True),
                                  torch.optim.RMSprop,
                                  {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "momentum": 0.5, "centered": True}),
    "rmsprop pytorch defaults": (optim.RMSprop(0.01, rho=0.99, eps=1e-8), torch.optim.RMSprop, {}),
    "adagrad": (optim.Adagrad(0.1, eps=1e-10), torch.optim.Adagrad, {"lr": 0.1, "eps": 1e-10}),
    "adadelta": (optim.Adadelta(1.0, rho=0.9, eps=1e-6), torch.optim.Adadelta,
                 {"lr": 1.0, "rho": 0.9, "eps": 1e-6}),
    "adadelta lr": (optim.Adadelta(0.5, rho=0.95, eps=1e-5), torch.optim.Adadelta,
                    {"lr": 0.5, "rho": 0.95, "eps": 1e-5}),
    "sgd momentum clip_norm": (optim.SGD(0.1, momentum=0.9, clip_norm=0.05), torch.optim.SGD,
                               {"lr": 0.1, "momentum": 0.9}),
    "adam clip_norm": (optim.Adam(0.01, clip_norm=0.05), torch.optim.Adam, {"lr": 0.01}),
    "rmsprop centered clip_norm": (optim.RMSprop(0.01, rho=0.9, eps=1e-7, centered=True, clip_norm=0.05),
                                   torch.optim.RMSprop,
                                   {"lr": 0.01, "alpha": 0.9, "eps": 1e-7, "centered": True}),
}


def network():
    g = Graph(dtype="float64")
    x = g.input("x", (None, FEATURES))
    y = g.dense(g.dense(x, HIDDEN, activation="tanh", name="fc1"), OUT, name="fc2")
    return g, x, y


@pytest.mark.parametrize("name", CONFIGS)
def test_ten_steps(name):
    opt, torch_opt, kwargs = CONFIGS[name]
    rng = rng_for(name)
    weights = {"fc1/W": rng.normal(size=(FEATURES, HIDDEN)), "fc1/b": rng.normal(size=HIDDEN),
               "fc2/W": rng.normal(size=(HIDDEN, OUT)), "fc2/b": rng.normal(size=OUT)}
    batches = [(rng.normal(size=(BATCH, FEATURES)), rng.normal(size=(BATCH, OUT))) for _ in range(STEPS)]

    g, x, y = network()
    model = Model(g, x, y)
    model.set_weights(weights)
    model.compile(loss="mse", optimizer=opt)

    fc1, fc2 = torch.nn.Linear(FEATURES, HIDDEN).double(), torch.nn.Linear(HIDDEN, OUT).double()
    params = {"fc1/W": fc1.weight, "fc1/b": fc1.bias, "fc2/W": fc2.weight, "fc2/b": fc2.bias}
    with torch.no_grad():
        for key, p in params.items():
            p.copy_(torch.tensor(weights[key].T if key.endswith("W") else weights[key]))
    if kwargs:
        reference = torch_opt(params.values(), **kwargs)
    else:                                # PyTorch's own defaults, graphnn given them explicitly
        reference = torch_opt(params.values())
    clipped = []
    for step, (xb, tb) in enumerate(batches):
        model.fit(xb, tb, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
        reference.zero_grad()
        loss = torch.nn.functional.mse_loss(fc2(torch.tanh(fc1(torch.tensor(xb)))), torch.tensor(tb))
        loss.backward()
        if opt.clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params.values(), opt.clip_norm)
            clipped.append(float(norm) > opt.clip_norm)
        reference.step()
        got = model.get_weights()
        compare(f"{name} step {step + 1}",
                {key: (got[key], (p.detach().numpy().T if key.endswith("W") else p.detach().numpy()))
                 for key, p in params.items()})
    assert all(clipped), "clip_norm never bit: the test would not see a wrong clip"
