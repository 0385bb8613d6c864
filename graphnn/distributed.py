"""Data-parallel training over MPI: ``model.fit(..., distributed=True)`` under mpiexec.

    mpiexec -n 4 python train.py            # train.py calls model.fit(..., distributed=True)
    mpiexec -n 4 graphnn train SPEC --data digits

Every rank runs the same script on the same data. ``batch_size`` is the global
batch: each rank draws the same seeded shuffled order and takes its contiguous
share of every global batch (``np.array_split``: shares differ by at most one
sample). The compiled training step sums each rank's gradient, weighted by its
share of the batch, over all ranks (``compiler/allreduce.py`` inserts the
all-reduce as graph nodes; ``runtime/kernels/collective.py`` calls mpi4py's
buffer ``Allreduce``), so every rank applies the same update, the one a single
process would apply with the whole batch. Weights and optimizer state start as
rank 0's (broadcast). The loss and metrics are summed over ranks, weighted by
sample counts, at every step. Only rank 0 runs callbacks (so only it prints,
saves checkpoints and writes logs); what a callback changes that training
reads (the learning rate, ``stop_training``) is sent to the other ranks, and
at the end of training all variables are rank 0's (say, restored best weights).
A failure on one rank prints the rank and the error and aborts every rank
(``MPI_Abort``): a collective would otherwise wait for it forever.

Why a flag and not auto-detection: a script started by mpiexec may well want
one independent model per rank (a hyperparameter sweep); silently summing
their gradients would be wrong, and importing MPI in every ``fit`` costs time
where no MPI is wanted. The command line, which only ever trains one model,
does detect a launch by mpiexec (``launched_ranks``).

What differs from one process: batch normalization's batch statistics (and
running averages) are those of each rank's share, and dropout masks are drawn
per rank; losses must be means over the batch (a summed loss is refused).

>>> from graphnn.distributed import launched_ranks, shares
>>> launched_ranks({"PMI_SIZE": "4"}), launched_ranks({})
(4, 1)
>>> [part.tolist() for part in shares(np.arange(7), 3)]
[[0, 1, 2], [3, 4], [5, 6]]
"""
from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager

import numpy as np

from .compiler.allreduce import BUCKET_BYTES, SHARE, insert_allreduce
from .compiler.pipeline import build_program
from .compiler.training import target_spec as default_target
from .runtime import Executor
from .runtime.kernels.collective import INSTALL_HINT, world

# Environment variables that MPI launchers (MPICH's and Intel's hydra, Open MPI,
# MVAPICH) set for each process they start. Not SLURM_NTASKS: a batch script has it
# even where it starts one plain process.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

__all__ = ["INSTALL_HINT", "Ranks", "fit", "launched_ranks", "shares", "training_program"]


class _OneRankComm:
    """For the examples: a stand-in communicator, a world of one (no MPI)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def allgather(self, value):
        return [value]

    def Bcast(self, buf, root):
        pass

    def Allreduce(self, send, recv):
        recv[...] = send


class _Rank1Of2Comm:
    """For the examples: a stand-in communicator as rank 1 of 2 (no MPI), rank 0 agreeing
    with every value and sending 10s: Bcast fills with 10, Allreduce adds 10."""

    def Get_rank(self):
        return 1

    def Get_size(self):
        return 2

    def allgather(self, value):
        return [value, value]

    def Bcast(self, buf, root):
        buf[...] = 10

    def Allreduce(self, send, recv):
        recv[...] = send + 10


def launched_ranks(environ=None) -> int:
    """The number of processes an MPI launcher started (1 when none did), read from
    the launcher's environment without importing MPI.

    >>> launched_ranks({"OMPI_COMM_WORLD_SIZE": "8"}), launched_ranks({"SLURM_NTASKS": "8"})
    (8, 1)
    """
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        if environ.get(name, "").isdigit():
            return int(environ[name])
    return 1


def shares(batch: np.ndarray, ranks: int) -> list[np.ndarray]:
    """Each rank's contiguous part of one global batch (sizes differ by at most one;
    with fewer samples than ranks, the last ranks get none).

    >>> [part.tolist() for part in shares(np.arange(10, 15), 2)]
    [[10, 11, 12], [13, 14]]
    >>> [len(part) for part in shares(np.arange(2), 3)]
    [1, 1, 0]
    """
    return np.array_split(batch, ranks)


def training_program(model, batch_size: int, target_spec=None, bucket_bytes: int = BUCKET_BYTES):
    """The distributed training step's Program at a local ``batch_size``: the
    model's training graph with the bucketed gradient all-reduce inserted.
    It reads one more input, this rank's share of the global batch; each update
    reads its gradient from the summed bucket:

    >>> from graphnn import Graph, Model
    >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    >>> m.compile(loss="mse", optimizer="sgd")
    >>> p = training_program(m, batch_size=4)
    >>> p.inputs, [i.kernel for i in p.instructions][-5:]
    (['x', 'target', 'allreduce/share'], ['allreduce_bucket', 'bucket_slice', 'sgd_update', 'bucket_slice', 'sgd_update'])
    """
    model._require_compiled()
    built = model._build(target_spec or default_target(model._checked, model._loss, model.outputs))
    key = ("train_allreduce", bucket_bytes)
    if key not in built:
        built[key] = insert_allreduce(built["train"], bucket_bytes)
    loss = built["loss"]
    return build_program(built[key], [loss, *model.outputs], batch_size, fuse=model.fuse,
                         guard=(loss,))


class Ranks:
    """One communicator and what distributed training does with it. The
    examples use stand-in communicators (no MPI needed: ``_OneRankComm``,
    ``_Rank1Of2Comm``): ``comm`` needs only Get_rank, Get_size, allgather, Bcast,
    Allreduce and Abort.

    >>> ranks = Ranks(_Rank1Of2Comm()); ranks.rank, ranks.size, ranks.root
    (1, 2, False)
    """

    def __init__(self, comm=None, bucket_bytes: int = BUCKET_BYTES):
        self.comm = world() if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.bucket_bytes = bucket_bytes

    @property
    def root(self) -> bool:
        """Whether this is rank 0, the one that runs callbacks.

        >>> Ranks(_OneRankComm()).root
        True
        """
        return self.rank == 0

    def executor(self, model, batch_size: int, target_spec) -> Executor:
        """The distributed training Executor at one local batch size (cached).

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd")
        >>> ranks = Ranks(_OneRankComm()); ex = ranks.executor(m, 4, None)
        >>> ex.program.batch_size, ex is ranks.executor(m, 4, None)
        (4, True)
        """
        key = ("train_allreduce", batch_size, target_spec, self.bucket_bytes)
        if key not in model._executors:
            program = training_program(model, batch_size, target_spec, self.bucket_bytes)
            model._executors[key] = Executor(program, model.variables, comm=self.comm)
        return model._executors[key]

    def agree(self, what: str, value) -> None:
        """Raise on every rank (so none waits in a collective) unless all ranks
        hold the same ``value``.

        >>> class Rank1Of2:            # a stand-in communicator: rank 1 of 2, rank 0 holding 32
        ...     def Get_rank(self): return 1
        ...     def Get_size(self): return 2
        ...     def allgather(self, value): return [32, value]
        >>> Ranks(Rank1Of2()).agree("batch size", 32)
        >>> Ranks(Rank1Of2()).agree("batch size", 10)
        Traceback (most recent call last):
        ...
        ValueError: distributed training needs the same batch size on every rank, got [32, 10] (by rank)
        """
        values = self.comm.allgather(value)
        if any(v != values[0] for v in values):
            raise ValueError(f"distributed training needs the same {what} on every rank, "
                             f"got {values} (by rank)")

    def broadcast(self, variables: dict) -> None:
        """Rank 0's weights and optimizer state, everywhere (in place).

        >>> variables = {"W": np.zeros(3)}
        >>> Ranks(_Rank1Of2Comm()).broadcast(variables); variables["W"]   # rank 0 sends 10s
        array([10., 10., 10.])
        """
        self.agree("variables", sorted((k, v.shape, str(v.dtype)) for k, v in variables.items()))
        for name in sorted(variables):
            self.comm.Bcast(variables[name], root=0)

    def sum(self, values) -> np.ndarray:
        """Element-wise sum over ranks of a few float64 numbers.

        >>> Ranks(_Rank1Of2Comm()).sum([1, 2.5])         # rank 0 adds 10 to each
        array([11. , 12.5])
        """
        buf = np.array(values, dtype=np.float64)
        self.comm.Allreduce(buf.copy(), buf)
        return buf

    def follow_root(self, model) -> None:
        """What rank 0's callbacks may change between steps: the learning rate
        and whether to stop. Rank 0 sends them; the others take them.

        >>> from graphnn import Graph, Model
        >>> g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
        >>> m.compile(loss="mse", optimizer="sgd")
        >>> m.stop_training = False
        >>> Ranks(_Rank1Of2Comm()).follow_root(m); m.learning_rate, m.stop_training   # 10s from rank 0
        (10.0, True)
        """
        state = np.array([model.learning_rate, float(bool(model.stop_training))])
        self.comm.Bcast(state, root=0)
        if not self.root:
            model.learning_rate, model.stop_training = float(state[0]), bool(state[1])

    @contextmanager
    def abort_on_failure(self):
        """An exception on one rank aborts all of them, naming the rank (with one
        rank it is raised as usual).

        >>> with Ranks(_OneRankComm()).abort_on_failure():
        ...     raise KeyError("x")
        Traceback (most recent call last):
        ...
        KeyError: 'x'
        """
        try:
            yield
        except BaseException as e:
            if self.size == 1:
                raise
            sys.stdout.flush()
            print(f"graphnn: rank {self.rank} of {self.size} failed, stopping all ranks: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            self.comm.Abort(1)


def fit(model, x, y=None, epochs: int = 1, batch_size: int = 32, validation_data=None,
        shuffle: bool = True, seed: int | None = None, verbose: int = 1, callbacks=None,
        sample_weight=None, comm=None, bucket_bytes: int = BUCKET_BYTES, initial_epoch: int = 0):
    """``model.fit(..., distributed=True)``: training over the ranks of ``comm``
    (default: every process mpiexec started); the arguments mean what they mean
    there, ``batch_size`` being the global batch. Every rank returns the same History.

    With one rank it trains exactly as ``Model.fit`` does:

    >>> from graphnn import Graph, Model
    >>> def model():
    ...     g = Graph(); x = g.input("x", (None, 2)); m = Model(g, x, g.dense(x, 1))
    ...     m.compile(loss="mse", optimizer="sgd"); return m
    >>> data = np.random.default_rng(0).normal(size=(10, 2)); y = data @ [[1.0], [2.0]]
    >>> alone = model().fit(data, y, epochs=2, batch_size=4, verbose=0)
    >>> ranked = fit(model(), data, y, epochs=2, batch_size=4, verbose=0, comm=_OneRankComm())
    >>> ranked.history == alone.history
    True
    """
    ranks = Ranks(comm, bucket_bytes)
    with ranks.abort_on_failure():   # every rank stops if one fails, even in argument checks
        return _fit(model, ranks, x, y, epochs, batch_size, validation_data, shuffle, seed,
                    verbose, callbacks, sample_weight, initial_epoch)


def _local_batches(model, ranks, feeds, target, batch_size, order):
    """Yield (batch number, samples here, share, executor) for each global batch of
    ``order``: this rank's contiguous part, already copied into the executor's
    inputs, and its share of the batch, already fed. A rank left without samples
    (a last batch smaller than the number of ranks) runs one with share 0."""
    n = len(order)
    for b, batch in enumerate(np.array_split(order, range(batch_size, n, batch_size))):
        mine = shares(batch, ranks.size)[ranks.rank]
        share = len(mine) / len(batch)
        if not len(mine):
            mine = batch[:1]
        ex = ranks.executor(model, len(mine), target)
        for name, array in feeds.items():
            array.take(mine, axis=0, out=ex.views[name], mode="clip")
        ex.views[SHARE][...] = share
        yield b, mine if share else mine[:0], ex


def _fit(model, ranks, x, y, epochs, batch_size, validation_data, shuffle, seed, verbose,
         callbacks, sample_weight, initial_epoch=0):
    from . import checks
    from .callbacks import CallbackList, Progress
    from .guard import StepGuard
    from .training import Batches, History, epoch_order, epoch_range
    feeds, target = checks.fit_arguments(
        model, x, y, sample_weight, epochs=epochs, batch_size=batch_size, verbose=verbose,
        validation_data=validation_data, shuffle=shuffle, seed=seed, callbacks=callbacks)
    n, guard = len(next(iter(feeds.values()))), StepGuard()
    ranks.agree("number of samples, batch size, epochs, shuffle, seed and fit count",
                (n, batch_size, epochs, bool(shuffle), seed, model._fits))
    model._fits += 1
    loss = model._build(target)["loss"]
    ranks.broadcast(model.variables)
    # Only rank 0 runs callbacks: it alone prints, saves and logs; the others follow it.
    progress = [Progress(epochs, -(-n // batch_size), verbose)] if verbose else []
    hooks = CallbackList([*(callbacks or []), *progress] if ranks.root else [], model)
    hooks.on_train_begin({})
    history, model.stop_training = History(), False
    for epoch in epoch_range(initial_epoch, epochs):     # shuffled by (seed, epoch): resumable
        hooks.on_epoch_begin(epoch, {})
        ranks.follow_root(model)
        totals = Batches(model.metrics)
        order = epoch_order(model.seed if seed is None else seed, epoch, n, shuffle)
        order = np.arange(n) if order is None else order
        for b, mine, ex in _local_batches(model, ranks, feeds, target, batch_size, order):
            if model.optimizer.schedule is not None:
                model.learning_rate = model.optimizer.schedule(model._steps)
            model._steps += 1
            # a NaN or inf stops this rank (which then stops all) with the node at fault
            guard.step(model, ex, lambda n=ex.program.batch_size: model._executor(
                "eval", n, target, fuse=False), f"epoch {epoch + 1}, batch {b + 1}")
            here = Batches(model.metrics)
            if len(mine):
                model._tally(here, ex, loss, len(mine))
            summed = ranks.sum([here.loss, here.correct, here.count])   # the global batch's
            totals.loss += summed[0]
            totals.correct += int(summed[1])
            totals.count += int(summed[2])
            if hooks.callbacks:
                hooks.on_batch_end(b, totals.result())
            if callbacks:
                ranks.follow_root(model)
        logs = totals.result()
        if validation_data is not None:       # the same weights everywhere: the same result
            val = model.evaluate(*validation_data, batch_size=batch_size, verbose=0)
            logs.update({f"val_{k}": v for k, v in val.items()})
        history.append(epoch, logs)
        model.epoch = epoch + 1
        hooks.on_epoch_end(epoch, logs)
        ranks.follow_root(model)
        if model.stop_training:
            break
    hooks.on_train_end({})
    ranks.broadcast(model.variables)           # e.g. best weights restored on rank 0
    return history
