"""Loss kernels (prediction, target -> scalar) and their gradients.

Scratch arrays the size of the prediction are planned buffers that each kernel
declares and receives by name, so a training step allocates nothing of that size.

>>> import numpy as np
>>> p, t, out = np.array([1.0, 3.0]), np.array([0.0, 1.0]), np.empty(())
>>> mse([p, t], [out], d=np.empty(2))(); float(out)
2.5
"""
from __future__ import annotations

import numpy as np

from .base import kernel, like

EPS = 1e-7   # probabilities are clipped to [EPS, 1 - EPS] before taking logs


def _scale(reduction, count):
    return 1.0 / count if reduction == "mean" else 1.0


# ---------------------------------------------------------------- sample weights
# A loss with a third operand weights its rows. Its value is sum_i w_i l_i scaled
# as the reduction says, l_i being row i's share of the unweighted loss; its
# gradient is the unweighted gradient with row i scaled by w_i.

def _row_losses(kind, p, t, from_logits=False):
    """Row i's part of the unweighted *sum* reduction (an (N,) array: small)."""
    n = p.shape[0]
    if kind == "mse":
        return ((p - t) ** 2).reshape(n, -1).sum(1)
    if kind == "l1":
        return np.abs(p - t).reshape(n, -1).sum(1)
    if kind in ("softmax_cross_entropy", "cross_entropy"):
        if kind == "softmax_cross_entropy":
            z = p - p.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        else:
            logp = np.log(np.clip(p, EPS, 1.0))
        return -(logp[np.arange(n), t] if t.dtype.kind in "iu" else (t * logp).sum(1))
    if kind == "binary_cross_entropy":
        if from_logits:
            rows = np.logaddexp(0.0, p) - p * t
        else:
            q = np.clip(p, EPS, 1.0 - EPS)
            rows = -(t * np.log(q) + (1 - t) * np.log1p(-q))
        return rows.reshape(n, -1).sum(1)
    if kind == "kl_divergence":
        return (t * (np.log(np.clip(t, EPS, 1.0)) - np.log(np.clip(p, EPS, 1.0)))).reshape(n, -1).sum(1)
    raise KeyError(kind)


def _weighted_loss(kind, unweighted):
    def factory(ins, outs, reduction="mean", **attrs):
        scratch = {k: attrs.pop(k) for k in unweighted.scratch}
        if len(ins) == 2:
            return unweighted(ins, outs, reduction=reduction, **scratch, **attrs)
        (p, t, w), (out, *_) = ins, outs
        per = {"mse": p.size, "l1": p.size, "binary_cross_entropy": p.size}.get(kind, p.shape[0])
        k = 1.0 / per if reduction == "mean" else 1.0

        def run():
            out[...] = np.dot(w, _row_losses(kind, p, t, **attrs)) * k
        return run
    return factory


def _weighted_grad(unweighted):
    def factory(ins, outs, **attrs):
        if len(ins) == 3:
            return unweighted(ins, outs, **attrs)
        (dl, p, t, w), (dx, *_) = ins, outs
        inner = unweighted([dl, p, t], outs, **attrs)
        rows = w.reshape((-1,) + (1,) * (dx.ndim - 1))

        def run():
            inner()
            np.multiply(dx, rows, out=dx)
        return run
    return factory


@kernel(operands=None, scratch={"d": (0, "same")}, register=False)
def mse(ins, outs, reduction="mean", *, d):
    """mean((p - t)^2) over every element (``reduction="sum"``: the sum).

    >>> p, t, out = np.array([1.0, 3.0]), np.array([0.0, 1.0]), np.empty(())
    >>> mse([p, t], [out], reduction="sum", d=np.empty(2))(); float(out)        # 1 + 4
    5.0

    The registered kernel (``KERNELS["mse"]``) also takes one weight per row: each
    row's share is multiplied by it, and the mean still divides by the element count.

    >>> from .base import KERNELS
    >>> KERNELS["mse"]([p[:, None], t[:, None], np.array([1.0, 0.0])], [out], d=np.empty((2, 1)))()
    >>> float(out)                                                            # (1 * 1 + 0 * 4) / 2
    0.5
    """
    (p, t), (out,) = ins, outs
    k = _scale(reduction, p.size)

    def run():
        np.subtract(p, t, out=d)
        out[...] = np.vdot(d, d) * k
    return run


@kernel(operands=None, register=False)
def mse_grad(ins, outs, reduction="mean"):     # d/dp = 2 (p - t) k
    """dp = dl 2 (p - t) / n (``reduction="sum"``: without the 1 / n).

    >>> dp = np.empty(2); mse_grad([np.array(1.0), np.array([1.0, 3.0]), np.array([0.0, 1.0])], [dp])(); dp
    array([1., 2.])
    """
    (dl, p, t), (dx,) = ins, outs
    k = 2.0 * _scale(reduction, p.size)

    def run():
        np.subtract(p, t, out=dx)
        np.multiply(dx, k * dl, out=dx)
    return run


@kernel(operands=None, scratch={"d": (0, "same")}, register=False)
def l1(ins, outs, reduction="mean", *, d):
    """mean(|p - t|) over every element.

    >>> out = np.empty(()); l1([np.array([1.0, -1.0]), np.array([0.0, 1.0])], [out], d=np.empty(2))()
    >>> float(out)                                                            # (1 + 2) / 2
    1.5
    """
    (p, t), (out,) = ins, outs
    k = _scale(reduction, p.size)

    def run():
        np.subtract(p, t, out=d)
        np.abs(d, out=d)
        out[...] = d.sum() * k
    return run


@kernel(operands=None, register=False)
def l1_grad(ins, outs, reduction="mean"):      # d/dp = sign(p - t) k
    """dp = dl sign(p - t) / n.

    >>> dp = np.empty(2); l1_grad([np.array(1.0), np.array([1.0, -1.0]), np.array([0.0, 1.0])], [dp])(); dp
    array([ 0.5, -0.5])
    """
    (dl, p, t), (dx,) = ins, outs
    k = _scale(reduction, p.size)

    def run():
        np.subtract(p, t, out=dx)
        np.sign(dx, out=dx)
        np.multiply(dx, k * dl, out=dx)
    return run


class _RowWork:
    """Work arrays for a row-wise softmax over z (N, C), made once when the kernel
    is bound so that a step allocates nothing: the row maxima and sums, and the
    flat positions of each row's label (row * C + label, refreshed every step,
    since the labels are fed anew)."""

    def __init__(self, z, labels):
        n, c = z.shape
        self.row_max = np.empty((n, 1), z.dtype)
        self.row_sum = np.empty((n, 1), z.dtype)
        self.row_start = np.arange(n, dtype=np.intp) * c
        self.at = np.empty(n, np.intp)
        self.picked = np.empty(n, z.dtype)
        self.sparse = labels.dtype.kind in "iu"
        self.one = np.array(1, z.dtype)

    # ufunc.reduce and the array methods, not np.max / np.sum / np.take: the
    # wrappers cost microseconds per call, which is the whole kernel on small batches.
    def shifted_exp(self, z, out):
        """out = exp(z - max of its row); row_sum = the sum of each row of out."""
        np.maximum.reduce(z, axis=1, out=self.row_max[:, 0])
        np.subtract(z, self.row_max, out=out)
        np.exp(out, out=out)
        np.add.reduce(out, axis=1, out=self.row_sum[:, 0])

    def label_entries(self, flat, labels):
        """self.picked = flat[row * C + label] for each row (no fancy-index temporaries)."""
        np.add(self.row_start, labels, out=self.at, casting="unsafe")
        flat.take(self.at, out=self.picked)
        return self.picked


@kernel(operands=None, scratch={"logp": (0, "same")}, register=False)
def softmax_cross_entropy(ins, outs, reduction="mean", *, logp):
    """-mean over rows of log softmax(z)[label] (or of its dot with one-hot rows).

    Two equal logits give each class 1/2, so the loss is log 2 for either label:

    >>> out = np.empty(())
    >>> softmax_cross_entropy([np.zeros((2, 2)), np.array([0, 1])], [out], logp=np.empty((2, 2)))()
    >>> round(float(out), 6)
    0.693147
    >>> softmax_cross_entropy([np.array([[1000.0, 0.0]]), np.array([[1.0, 0.0]])], [out],
    ...                       logp=np.empty((1, 2)))(); float(out) == 0     # one-hot rows; no overflow
    True
    """
    (z, labels), (out,) = ins, outs
    neg_k = np.array(-_scale(reduction, z.shape[0]), out.dtype)
    work, flat = _RowWork(z, labels), logp.reshape(-1)
    exp = np.empty_like(logp)          # bound once: exp(z - max) before the log

    def run():
        work.shifted_exp(z, exp)
        np.log(work.row_sum, out=work.row_sum)
        np.add(work.row_sum, work.row_max, out=work.row_sum)    # log-sum-exp per row
        np.subtract(z, work.row_sum, out=logp)
        if work.sparse:
            np.add.reduce(work.label_entries(flat, labels), out=out)
        else:
            np.multiply(labels, logp, out=exp)
            np.add.reduce(exp, axis=None, out=out)
        np.multiply(out, neg_k, out=out)
    return run


@kernel(operands=None, register=False)
def softmax_cross_entropy_grad(ins, outs, reduction="mean"):   # softmax(z) - onehot
    """dz = dl * k * (softmax(z) - onehot(label)), softmax computed directly
    (exp of the shifted row over its sum), nothing allocated per step.

    >>> dz = np.empty((1, 2))
    >>> softmax_cross_entropy_grad([np.array(1.0), np.zeros((1, 2)), np.array([0])], [dz])(); dz
    array([[-0.5,  0.5]])
    """
    (dl, z, labels), (dz,) = ins, outs
    k = np.array(_scale(reduction, z.shape[0]), dz.dtype)
    work, flat = _RowWork(z, labels), dz.reshape(-1)
    scale = np.empty((), dz.dtype)

    def run():
        work.shifted_exp(z, dz)
        np.divide(dz, work.row_sum, out=dz)
        if work.sparse:
            picked = work.label_entries(flat, labels)
            np.subtract(picked, work.one, out=picked)
            flat.put(work.at, picked)
        else:
            np.subtract(dz, labels, out=dz)
        np.multiply(dl, k, out=scale)
        np.multiply(dz, scale, out=dz)
    return run


@kernel(operands=None, scratch={"logp": (0, "same")}, register=False)
def cross_entropy(ins, outs, reduction="mean", *, logp):
    """-mean over rows of log p[label] for probabilities p (clipped to EPS first).

    >>> out, p, labels = np.empty(()), np.array([[0.25, 0.75]]), np.array([1])
    >>> cross_entropy([p, labels], [out], logp=np.empty((1, 2)))(); round(float(out), 6)   # -log 0.75
    0.287682
    """
    (p, labels), (out,) = ins, outs
    k, rows, sparse = _scale(reduction, p.shape[0]), np.arange(p.shape[0]), labels.dtype.kind in "iu"

    def run():
        np.clip(p, EPS, 1.0, out=logp)
        np.log(logp, out=logp)
        picked = logp[rows, labels].sum() if sparse else np.vdot(labels, logp)
        out[...] = -picked * k
    return run


@kernel(operands=None, register=False)
def cross_entropy_grad(ins, outs, reduction="mean"):       # -t / p
    """dp = -dl k t / p: nonzero at each row's label only, for labels.

    >>> dp = np.empty((1, 2))
    >>> cross_entropy_grad([np.array(1.0), np.array([[0.25, 0.75]]), np.array([1])], [dp])(); dp.round(6)
    array([[ 0.      , -1.333333]])
    """
    (dl, p, labels), (dp,) = ins, outs
    k, rows, sparse = _scale(reduction, p.shape[0]), np.arange(p.shape[0]), labels.dtype.kind in "iu"

    def run():
        if sparse:
            dp.fill(0)
            dp[rows, labels] = -1.0 / np.maximum(p[rows, labels], EPS)
        else:
            np.maximum(p, EPS, out=dp)
            np.divide(labels, dp, out=dp)
            np.negative(dp, out=dp)
        np.multiply(dp, k * dl, out=dp)
    return run


@kernel(operands=None, scratch={"a": (0, "same")}, register=False)
def kl_divergence(ins, outs, reduction="mean", *, a):
    """mean over rows of sum t log(t / p) (target t, prediction p, both clipped to EPS).

    >>> out = np.empty(()); t, p = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    >>> kl_divergence([p, t], [out], a=np.empty((1, 2)))(); round(float(out), 6)   # 0.5 log 2 + 0.5 log(2/3)
    0.143841
    >>> kl_divergence([t, t], [out], a=np.empty((1, 2)))(); float(out)             # no divergence from itself
    0.0
    """
    (p, t), (out,) = ins, outs
    k = _scale(reduction, p.shape[0])

    def run():
        np.clip(t, EPS, 1.0, out=a)                # t log t - t log p
        np.log(a, out=a)
        first = np.vdot(t, a)
        np.clip(p, EPS, 1.0, out=a)
        np.log(a, out=a)
        out[...] = (first - np.vdot(t, a)) * k
    return run


@kernel(operands=None, scratch={"c": ("out", "same")}, register=False)
def kl_divergence_grad(ins, outs, reduction="mean", *, c):        # -t / p
    """dp = -dl k t / p.

    >>> dp = np.empty((1, 2))
    >>> kl_divergence_grad([np.array(1.0), np.array([[0.25, 0.75]]), np.array([[0.5, 0.5]])], [dp],
    ...                    c=np.empty((1, 2)))(); dp.round(6)
    array([[-2.      , -0.666667]])
    """
    (dl, p, t), (dp,) = ins, outs
    k = _scale(reduction, p.shape[0])

    def run():
        np.clip(p, EPS, 1.0, out=c)
        np.divide(t, c, out=dp)
        np.multiply(dp, -k * dl, out=dp)
    return run


@kernel(operands=2)
def gaussian_kl(ins, outs, scale=1.0):
    """A VAE's KL term: KL(N(mean, exp(logvar)) || N(0, 1)) summed over features,
    averaged over rows, times ``scale``.

    >>> out = np.empty(())
    >>> gaussian_kl([np.zeros((2, 3)), np.zeros((2, 3))], [out])(); float(out) == 0   # already N(0, 1)
    True
    >>> gaussian_kl([np.array([[1.0]]), np.zeros((1, 1))], [out])(); float(out)    # mean 1: 1/2
    0.5
    """
    (mean, logvar), (out,) = ins, outs
    k = -0.5 * scale / mean.shape[0]

    def run():          # -1/2 sum(1 + logvar - mean^2 - exp(logvar)) / N
        out[...] = k * (mean.size + logvar.sum() - np.vdot(mean, mean) - np.exp(logvar).sum())
    return run


@kernel(operands=3)
def gaussian_kl_grad(ins, outs, scale=1.0, wrt=0):
    """d/dmean = dl k mean (``wrt=0``), d/dlogvar = dl k (exp(logvar) - 1) / 2 (``wrt=1``).

    >>> d = np.empty((1, 2)); mean, logvar = np.array([[1.0, -2.0]]), np.log(np.array([[3.0, 1.0]]))
    >>> gaussian_kl_grad([np.array(1.0), mean, logvar], [d], wrt=0)(); d
    array([[ 1., -2.]])
    >>> gaussian_kl_grad([np.array(1.0), mean, logvar], [d], wrt=1)(); d.round(6)
    array([[1., 0.]])
    """
    (dl, mean, logvar), (d,) = ins, outs
    k = scale / mean.shape[0]

    def run():
        if wrt == 0:
            np.multiply(mean, k * dl, out=d)
        else:
            np.exp(logvar, out=d)
            np.subtract(d, 1.0, out=d)
            np.multiply(d, 0.5 * k * dl, out=d)
    return run


@kernel(operands=None, scratch={"a": (0, "same"), "b": (0, "same")}, register=False)
def binary_cross_entropy(ins, outs, reduction="mean", from_logits=False, *, a, b):
    """-mean(t log p + (1 - t) log(1 - p)); with ``from_logits``, of p = sigmoid(z),
    computed from z without overflow.

    >>> out, a, b = np.empty(()), np.empty(2), np.empty(2)
    >>> binary_cross_entropy([np.array([0.5, 0.5]), np.array([0.0, 1.0])], [out], a=a, b=b)()
    >>> round(float(out), 6)                                                  # log 2
    0.693147
    >>> binary_cross_entropy([np.array([1000.0, -1000.0]), np.array([1.0, 0.0])], [out],
    ...                      from_logits=True, a=a, b=b)(); float(out)        # sure and right
    0.0
    """
    (p, t), (out,) = ins, outs
    k = _scale(reduction, p.size)

    def run():
        if from_logits:                         # log(1 + e^z) - z t
            np.logaddexp(0.0, p, out=a)
            np.multiply(p, t, out=b)
            out[...] = (a.sum() - b.sum()) * k
        else:                                   # -(t log p + (1 - t) log(1 - p))
            np.clip(p, EPS, 1.0 - EPS, out=a)
            np.log1p(-a, out=b)
            np.log(a, out=a)
            np.subtract(a, b, out=a)            # log p - log(1 - p)
            out[...] = -(np.vdot(t, a) + b.sum()) * k
    return run


@kernel(operands=None, scratch={"c": ("out", "same")}, register=False)
def binary_cross_entropy_grad(ins, outs, reduction="mean", from_logits=False, *, c):
    """d/dp = dl k (p - t) / (p (1 - p)); from logits, d/dz = dl k (sigmoid(z) - t).

    >>> dz = np.empty(2)
    >>> binary_cross_entropy_grad([np.array(1.0), np.zeros(2), np.array([0.0, 1.0])], [dz],
    ...                           from_logits=True, c=np.empty(2))(); dz   # (1/2 - t) / 2
    array([ 0.25, -0.25])
    """
    (dl, p, t), (dx,) = ins, outs
    k = _scale(reduction, p.size)

    def run():
        if from_logits:                         # sigmoid(z) - t
            np.negative(p, out=dx)
            np.logaddexp(0.0, dx, out=dx)
            np.negative(dx, out=dx)
            np.exp(dx, out=dx)
            np.subtract(dx, t, out=dx)
        else:                                   # (p - t) / (p (1 - p))
            np.clip(p, EPS, 1.0 - EPS, out=c)
            np.subtract(c, t, out=dx)
            np.divide(dx, c, out=dx)
            np.subtract(1.0, c, out=c)
            np.divide(dx, c, out=dx)
        np.multiply(dx, k * dl, out=dx)
    return run


@kernel(operands=1)
def l2_penalty(ins, outs, scale):
    """scale * sum(w^2).

    >>> out = np.empty(()); l2_penalty([np.array([1.0, -2.0])], [out], scale=0.5)(); float(out)
    2.5
    """
    (w,), (out,) = ins, outs
    flat = w.reshape(-1)

    def run():
        out[...] = scale * np.dot(flat, flat)
    return run


@kernel(operands=2)
def l2_penalty_grad(ins, outs, scale):          # 2 scale w
    """dw = dl 2 scale w.

    >>> dw = np.empty(2); l2_penalty_grad([np.array(1.0), np.array([1.0, -2.0])], [dw], scale=0.5)(); dw
    array([ 1., -2.])
    """
    (dl, w), (dw,) = ins, outs

    def run():
        np.multiply(w, 2.0 * scale * dl, out=dw)
    return run


@kernel(operands=1)
def l1_penalty(ins, outs, scale):
    """scale * sum(|w|).

    >>> out = np.empty(()); l1_penalty([np.array([1.0, -2.0])], [out], scale=0.5)(); float(out)
    1.5
    """
    (w,), (out,) = ins, outs

    def run():
        out[...] = scale * np.abs(w).sum()
    return run


@kernel(operands=2)
def l1_penalty_grad(ins, outs, scale):          # scale sign(w)
    """dw = dl scale sign(w) (0 at w = 0).

    >>> dw = np.empty(3); l1_penalty_grad([np.array(1.0), np.array([1.0, 0.0, -2.0])], [dw], scale=0.5)(); dw
    array([ 0.5,  0. , -0.5])
    """
    (dl, w), (dw,) = ins, outs

    def run():
        np.sign(w, out=dw)
        np.multiply(dw, scale * dl, out=dw)
    return run


for _loss in (mse, l1, softmax_cross_entropy, cross_entropy, kl_divergence, binary_cross_entropy):
    _grad = globals()[_loss.__name__ + "_grad"]
    like(_loss, _loss.__name__)(_weighted_loss(_loss.__name__, _loss))
    like(_grad, _grad.__name__)(_weighted_grad(_grad))
