"""LSTM and GRU against torch.nn.LSTM / torch.nn.GRU with the weights mapped:
the last state or the whole sequence, and the gradients of the input and of
every weight.

Mapping: graphnn keeps W (features, gates * units), U (units, gates * units) and
one bias b; PyTorch keeps weight_ih (gates * units, features) = W.T,
weight_hh (gates * units, units) = U.T, bias_ih and bias_hh. The gate order is
PyTorch's in both: LSTM [input, forget, cell, output], GRU [reset, update, new].
The LSTM has one bias (PyTorch's bias_ih + bias_hh: the test puts it all in
bias_ih); the GRU has two, because the reset gate multiplies the recurrent
product including its bias: b is bias_ih and b_recurrent is bias_hh.
"""
from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch", reason="the parity tests compare with PyTorch (pip install -e '.[parity]')")

from graphnn import Graph  # noqa: E402
from tests.parity.harness import compare, graphnn_run, rng_for  # noqa: E402

GATES = {"lstm": 4, "gru": 3}
CASES = list(itertools.product(["lstm", "gru"], [1, 4], [False, True]))


@pytest.mark.parametrize("kind, steps, sequences", CASES,
                         ids=[f"{k}-T{t}-{'seq' if s else 'last'}" for k, t, s in CASES])
def test_recurrent_layer(kind, steps, sequences):
    case = f"{kind} T={steps} return_sequences={sequences}"
    rng = rng_for(case)
    n, features, units = 3, 5, 4
    gates = GATES[kind]
    x = rng.normal(size=(n, steps, features))
    w = rng.normal(scale=0.5, size=(features, gates * units))
    u = rng.normal(scale=0.5, size=(units, gates * units))
    b = rng.normal(scale=0.5, size=gates * units)
    b_rec = rng.normal(scale=0.5, size=gates * units)

    layer = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(features, units, batch_first=True)
    layer = layer.double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(w.T))
        layer.weight_hh_l0.copy_(torch.tensor(u.T))
        layer.bias_ih_l0.copy_(torch.tensor(b))
        layer.bias_hh_l0.copy_(torch.tensor(b_rec if kind == "gru" else 0 * b_rec))
    tx = torch.tensor(x, requires_grad=True)
    seq, _ = layer(tx)
    out_t = seq if sequences else seq[:, -1]
    target = rng.normal(size=tuple(out_t.shape))
    ((out_t - torch.tensor(target)) ** 2).sum().backward()

    g = Graph(dtype="float64")
    y = getattr(g, kind)(g.input("x", (None, steps, features)), units, return_sequences=sequences,
                         name="rnn")
    values = {"x": x, "rnn/W": w, "rnn/U": u, "rnn/b": b}
    wrt = ["x", "rnn/W", "rnn/b"] + (["rnn/U"] if steps > 1 else [])     # U is unused at T = 1
    if kind == "gru":
        values["rnn/b_recurrent"] = b_rec
        wrt.append("rnn/b_recurrent")
    if steps == 1:
        del values["rnn/U"]
    got, grads, _ = graphnn_run(g, y, values, wrt=wrt, target=target)

    pairs = {"output": (got, out_t.detach().numpy()), "d/dx": (grads["x"], tx.grad.numpy()),
             "d/dW": (grads["rnn/W"], layer.weight_ih_l0.grad.numpy().T),
             "d/db": (grads["rnn/b"], layer.bias_ih_l0.grad.numpy())}
    if steps > 1:
        pairs["d/dU"] = (grads["rnn/U"], layer.weight_hh_l0.grad.numpy().T)
    if kind == "gru":
        pairs["d/db_recurrent"] = (grads["rnn/b_recurrent"], layer.bias_hh_l0.grad.numpy())
    compare(case, pairs)
