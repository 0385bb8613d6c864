"""Plots (matplotlib, the ``plot`` extra): training curves, the decision boundary
of a 2-D classifier, the loss landscape around trained weights, and the memory
plan of a compiled Program (``plot_memory``). Each saves a
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
        import matplotlib.pyplot as plt  # headless, matplotlib picks a file backend itself
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
    """Loss (and each metric) per epoch, training and validation side by side.

    >>> import matplotlib.pyplot as plt
    >>> from graphnn.training import History
    >>> h = History()
    >>> h.append(0, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.2})
    >>> h.append(1, {"loss": 0.5, "accuracy": 0.7, "val_loss": 0.7})
    >>> fig = plot_history(h)
    >>> [(ax.get_title(), [line.get_label() for line in ax.get_lines()]) for ax in fig.axes]
    [('loss', ['train', 'validation']), ('accuracy', ['train'])]
    >>> fig.axes[0].get_lines()[1].get_ydata().tolist()
    [1.2, 0.7]
    >>> plt.close(fig)
    """
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
    (for one output column, the output itself; for several, the argmax).

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> m.set_weights({"dense/W": np.array([[1.0], [0.0]]), "dense/b": np.zeros(1)})   # y = x0
    >>> xx, yy, scores = decision_grid(m, np.array([[0.0, 0.0], [1.0, 2.0]]), resolution=3, margin=0)
    >>> xx[0].tolist(), yy[:, 0].tolist(), scores.tolist()      # scores: x0 at every point
    ([0.0, 0.5, 1.0], [0.0, 1.0, 2.0], [[0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [0.0, 0.5, 1.0]])
    """
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = (hi - lo) * margin
    xx, yy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution))
    out = model.predict(np.stack([xx.ravel(), yy.ravel()], axis=1))
    scores = out[:, 0] if out.shape[1] == 1 else out.argmax(axis=1)
    return xx, yy, scores.reshape(xx.shape)


def plot_decision_boundary(model, x: np.ndarray, y: np.ndarray, to_file: str | None = None,
                           resolution: int = 200, title: str | None = None):
    """The regions a 2-D classifier assigns, with the data points on top.

    >>> import matplotlib.pyplot as plt
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> m.set_weights({"dense/W": np.array([[1.0], [0.0]]), "dense/b": np.zeros(1)})   # y = x0
    >>> points = np.array([[0.0, 0.0], [1.0, 2.0]])
    >>> fig = plot_decision_boundary(m, points, np.array([0, 1]), resolution=20, title="x0")
    >>> ax = fig.axes[0]; ax.get_title(), ax.collections[-1].get_offsets().tolist()
    ('x0', [[0.0, 0.0], [1.0, 2.0]])
    >>> plt.close(fig)
    """
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
    model's weights are restored afterwards.

    At weights that fit the data exactly the centre of the grid is the minimum, 0:

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> m.set_weights({"dense/W": np.array([[1.0], [0.0]]), "dense/b": np.zeros(1)})   # y = x0
    >>> points = np.array([[0.0, 0.0], [1.0, 2.0]])
    >>> alphas, losses = loss_landscape(m, points, points[:, :1], steps=3)
    >>> alphas.tolist(), float(losses[1, 1]), bool((np.delete(losses.ravel(), 4) > 0).all())
    ([-1.0, 0.0, 1.0], 0.0, True)
    >>> m.get_weights()["dense/W"].ravel().tolist()          # restored
    [1.0, 0.0]
    """
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
    """A contour map of ``loss_landscape``; the trained weights sit at the centre.

    >>> import matplotlib.pyplot as plt
    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> m.set_weights({"dense/W": np.array([[1.0], [0.0]]), "dense/b": np.zeros(1)})   # y = x0
    >>> points = np.array([[0.0, 0.0], [1.0, 2.0]])
    >>> fig = plot_loss_landscape(m, points, points[:, :1], steps=5)
    >>> fig.axes[0].get_title(), fig.axes[1].get_ylabel()         # the map and its colour bar
    ('loss landscape around the trained weights', 'loss')
    >>> plt.close(fig)
    """
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


MEMORY_COLORS = {"input": "#d9d9d9", "forward": "#fee391", "backward": "#6baed6",
                 "update": "#fd8d3c"}


def arena_storages(program) -> list[dict]:
    """Each storage of the arena (a buffer with its views and the in-place results
    written over it) with its place and lifetime, from the Program alone:
    ``{"name", "buffers", "offset", "nbytes", "start", "end", "role"}``. ``start``
    is the instruction that first writes it (-1 for a fed input), ``end`` the last
    that reads or writes it (the instruction count for the program's outputs).

    A prediction program of a dense layer at batch 2: the fed input (2 x 2
    float32) lives through the program; the output is written by instruction 0
    and kept to the end (1, the instruction count):

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> for s in arena_storages(m.program("predict", 2)): print(s)
    {'name': 'x', 'buffers': ['x'], 'offset': 0, 'nbytes': 16, 'start': -1, 'end': 1, 'role': 'input'}
    {'name': 'dense/bias_add', 'buffers': ['dense/bias_add'], 'offset': 64, 'nbytes': 8, 'start': 0, 'end': 1, 'role': 'forward'}
    """
    from .viz_program import instruction_role
    arena = {n: b for n, b in program.buffers.items() if b.offset is not None}
    owner = {n: n for n in arena}

    def find(n):
        while owner[n] != n:
            n = owner[n]
        return n
    for n, b in arena.items():
        if b.view_of in arena:
            owner[find(n)] = find(b.view_of)
    for ins in program.instructions:
        for src in ins.inplace:
            if src in arena and ins.outputs[0] in arena:
                owner[find(ins.outputs[0])] = find(src)
    groups: dict = {}
    for n in arena:
        groups.setdefault(find(n), []).append(n)
    first_write, last_use, role = {}, {}, {}
    for i, ins in enumerate(program.instructions):
        for n in ins.outputs:
            if n in arena:
                g = find(n)
                if g not in first_write:
                    first_write[g], role[g] = i, instruction_role(ins)
                last_use[g] = i
        for n in ins.inputs:
            if n in arena:
                last_use[find(n)] = i
    end_of_program = len(program.instructions)
    fed = {find(n) for n in program.inputs if n in arena}
    kept = {find(n) for n in program.outputs if n in arena}
    storages = []
    for g, members in groups.items():
        start = -1 if g in fed else first_write.get(g, -1)
        end = end_of_program if g in fed or g in kept else last_use.get(g, start)
        # the name a reader knows: the first buffer written, not a view's name
        first = min(members, key=lambda m: (arena[m].view_of is not None, m != g))
        storages.append({"name": first, "buffers": sorted(members), "offset": arena[g].offset,
                         "nbytes": max(arena[m].nbytes for m in members), "start": start,
                         "end": end, "role": "input" if g in fed else role.get(g, "forward")})
    return sorted(storages, key=lambda s: (s["start"], s["offset"]))


def plot_memory(program, to_file: str | None = None, title: str | None = None):
    """The memory plan as a picture: the arena (bytes, upwards) over the schedule
    (instruction index, across). Each storage is a rectangle from the instruction
    that writes it to the last that reads it, at its offset, as tall as its
    bytes, coloured by what writes it (forward, backward, update, or a fed input)
    and labelled with its node where the label fits. Dashed: the lower bound (the
    peak of bytes alive at once); dotted: the naive size (every buffer apart).

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 4)); m = Model(g, inputs=x, outputs=g.dense(x, 2))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> fig = plot_memory(m.program("train", 8))
    >>> len([p for p in fig.axes[0].patches if p.get_gid()]) == len(arena_storages(m.program("train", 8)))
    True
    """
    plt = _pyplot()
    from matplotlib.patches import Patch, Rectangle
    storages = arena_storages(program)
    n = len(program.instructions)
    m = program.memory
    top = max([m.naive_bytes, m.planned_bytes, 1])
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    for s in storages:
        width = s["end"] - s["start"] + 1
        rect = Rectangle((s["start"], s["offset"]), width, s["nbytes"], gid=s["name"],
                         facecolor=MEMORY_COLORS[s["role"]], edgecolor="#333333", linewidth=0.4)
        ax.add_patch(rect)
        if width >= 0.06 * (n + 1) and s["nbytes"] >= 0.035 * top:
            ax.text(s["start"] + width / 2, s["offset"] + s["nbytes"] / 2, s["name"], ha="center",
                    va="center", fontsize=7, clip_on=True)
    ax.axhline(m.lower_bound_bytes, color="black", linestyle="--", linewidth=1)
    ax.axhline(m.naive_bytes, color="#b2182b", linestyle=":", linewidth=1.5)
    ax.axhline(m.planned_bytes, color="black", linewidth=0.8)
    ax.set_xlim(-1.5, n + 1.5)
    ax.set_ylim(0, top * 1.3)                 # room for the legend above the naive line
    ax.set_xlabel("instruction (schedule order; -1: fed before the first)")
    ax.set_ylabel("arena offset")
    from matplotlib.ticker import MultipleLocator

    from .summary import fmt_bytes
    ax.yaxis.set_major_locator(MultipleLocator(2 ** int(np.ceil(np.log2(max(top * 1.3 / 6, 1))))))
    ax.yaxis.set_major_formatter(lambda v, _: fmt_bytes(int(v)))       # round powers of two
    ax.set_title(title or f"memory plan, batch {program.batch_size}: arena {m.planned_bytes:,} B")
    handles = [Patch(facecolor=c, edgecolor="#333333", label=r) for r, c in MEMORY_COLORS.items()
               if any(s["role"] == r for s in storages)]
    handles += [plt.Line2D([], [], color="black", linestyle="--", label=f"lower bound {m.lower_bound_bytes:,} B"),
                plt.Line2D([], [], color="#b2182b", linestyle=":", label=f"naive {m.naive_bytes:,} B"),
                plt.Line2D([], [], color="black", linewidth=0.8, label=f"planned {m.planned_bytes:,} B")]
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2, framealpha=0.95)
    fig.tight_layout()
    return _save(fig, to_file)
