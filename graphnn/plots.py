"""Plots (matplotlib, the ``plot`` extra): training curves, the decision boundary
of a 2-D classifier, and the loss landscape around trained weights. Each saves a
PNG when given ``to_file`` and returns the matplotlib Figure.

>>> from graphnn.training import History
>>> h = History(); h.append(0, {"loss": 1.0, "val_loss": 1.2}); h.append(1, {"loss": 0.5, "val_loss": 0.7})
>>> len(plot_history(h).axes)
1
"""
from __future__ import annotations

import os

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt    # headless, matplotlib picks a file backend itself
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'graphnn[plot]'") from None
    return plt


def _save(fig, to_file):
    if to_file:
        folder = os.path.dirname(os.path.abspath(to_file))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(to_file, dpi=110, bbox_inches="tight")
    return fig


def plot_history(history, to_file: str | None = None):
    """Loss (and each metric) per epoch, training and validation side by side."""
    plt = _pyplot()
    names = [k for k in history.history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    epochs = np.arange(1, len(history.epoch) + 1)
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history.history[name], label="train", marker="o", markersize=3)
        if f"val_{name}" in history.history:
            ax.plot(epochs, history.history[f"val_{name}"], label="validation", marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, to_file)


def decision_grid(model, x: np.ndarray, resolution: int = 200, margin: float = 0.1):
    """(xx, yy, scores): the model's output on a grid covering the 2-D points ``x``
    (for one output column, the output itself; for several, the argmax)."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = (hi - lo) * margin
    xx, yy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution))
    out = model.predict(np.stack([xx.ravel(), yy.ravel()], axis=1))
    scores = out[:, 0] if out.shape[1] == 1 else out.argmax(axis=1)
    return xx, yy, scores.reshape(xx.shape)


def plot_decision_boundary(model, x: np.ndarray, y: np.ndarray, to_file: str | None = None,
                           resolution: int = 200, title: str | None = None):
    """The regions a 2-D classifier assigns, with the data points on top."""
    plt = _pyplot()
    xx, yy, scores = decision_grid(model, x, resolution)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.contourf(xx, yy, scores, levels=20 if np.unique(scores).size > 10 else None,
                cmap="RdBu_r", alpha=0.6)
    if np.unique(scores).size > 10:
        ax.contour(xx, yy, scores, levels=[0.5], colors="k", linewidths=1.5)
    labels = y.ravel() if y.ndim == 1 or y.shape[1] == 1 else y.argmax(axis=1)
    ax.scatter(x[:, 0], x[:, 1], c=labels, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.2)
    ax.set_title(title or "decision boundary")
    return _save(fig, to_file)


def loss_landscape(model, x, y, steps: int = 21, span: float = 1.0, seed: int = 0):
    """(alphas, losses): the loss at weights w + a d1 + b d2 for a, b in
    [-span, span], d1 and d2 random directions scaled, parameter by parameter,
    to the parameter's own norm (filter normalization, Li et al., 2018). The
    model's weights are restored afterwards."""
    rng = np.random.default_rng(seed)
    weights = model.get_weights()
    directions = []
    for _ in range(2):
        d = {}
        for k, w in weights.items():
            r = rng.normal(size=w.shape)
            d[k] = r * (np.linalg.norm(w) / max(np.linalg.norm(r), 1e-12))
        directions.append(d)
    alphas = np.linspace(-span, span, steps)
    losses = np.empty((steps, steps))
    try:
        for i, a in enumerate(alphas):
            for j, b in enumerate(alphas):
                model.set_weights({k: w + a * directions[0][k] + b * directions[1][k]
                                   for k, w in weights.items()})
                losses[j, i] = model.evaluate(x, y)["loss"]
    finally:
        model.set_weights(weights)
    return alphas, losses


def plot_loss_landscape(model, x, y, to_file: str | None = None, steps: int = 21,
                        span: float = 1.0, seed: int = 0):
    """A contour map of ``loss_landscape``; the trained weights sit at the centre."""
    plt = _pyplot()
    alphas, losses = loss_landscape(model, x, y, steps, span, seed)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    levels = np.quantile(losses, np.linspace(0, 1, 25))
    cs = ax.contourf(alphas, alphas, losses, levels=np.unique(levels), cmap="viridis")
    fig.colorbar(cs, ax=ax, label="loss")
    ax.plot([0], [0], marker="*", color="white", markersize=12)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    ax.set_title("loss landscape around the trained weights")
    return _save(fig, to_file)
