"""Collective kernels: the gradient all-reduce over MPI ranks.

``allreduce_bucket`` packs share * g_i for each gradient into its flat bucket
(a buffer of the arena) and sums the bucket over all ranks with mpi4py's
buffer ``Allreduce`` (in place: no pickling, no second buffer). The runtime
must run with NumPy alone, so mpi4py is imported only when such a kernel is
bound without a communicator; the Executor hands it its ``comm`` (a
``mpi4py.MPI.Comm``), by default ``COMM_WORLD``. With one rank the sum is the
bucket itself and MPI is not called.

>>> import numpy as np
>>> class OneRank:                 # a stand-in communicator: a world of one
...     def Get_size(self): return 1
>>> g1, g2, bucket = np.ones((2, 2)), np.arange(3.0), np.empty(7)
>>> allreduce_bucket([np.array(0.5), g1, g2], [bucket], comm=OneRank())(); bucket
array([0.5, 0.5, 0.5, 0.5, 0. , 0.5, 1. ])
>>> out = np.empty(3); bucket_slice([bucket], [out], start=4, shape=[3])(); out
array([0. , 0.5, 1. ])
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .base import kernel

INSTALL_HINT = ("distributed training needs mpi4py and an MPI library: "
                "pip install 'graphnn[mpi]' (or: pip install mpi4py mpich)")


def world():
    """mpi4py's COMM_WORLD, imported on first use (ImportError with the install hint).

    (No example: importing mpi4py initializes MPI in the calling process, which a
    test run must not do; tests/distributed runs it under mpiexec.)
    """
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from None
    return MPI.COMM_WORLD


@kernel(operands=None)
def allreduce_bucket(ins, outs, comm=None):
    """Pack share * g_i for each gradient into ``outs[0]`` and sum it over the ranks.

    >>> class OneRank:                 # a stand-in communicator: a world of one
    ...     def Get_size(self): return 1
    >>> bucket = np.empty(3)
    >>> allreduce_bucket([np.array(0.25), np.array([4.0]), np.array([8.0, -4.0])], [bucket], comm=OneRank())()
    >>> bucket                         # this rank's quarter of the batch: its gradients times 1/4
    array([ 1.,  2., -1.])
    """
    share, *grads = ins
    (bucket,) = outs
    comm = world() if comm is None else comm
    parts, start = [], 0
    for g in grads:
        parts.append(bucket[start:start + g.size].reshape(g.shape))
        start += g.size
    if comm.Get_size() > 1:
        from mpi4py import MPI
        collective = partial(comm.Allreduce, MPI.IN_PLACE, bucket, op=MPI.SUM)
    else:
        collective = None

    def run():
        for g, part in zip(grads, parts):
            np.multiply(g, share, out=part)
        if collective is not None:
            collective()
    return run


allreduce_bucket.collective = True      # the Executor passes its communicator


@kernel(operands=1)
def bucket_slice(ins, outs, start, shape):
    """Copy one gradient, ``shape`` at ``start``, back out of a summed bucket.

    >>> g = np.empty((2, 2)); bucket_slice([np.arange(6.0)], [g], start=1, shape=[2, 2])(); g
    array([[1., 2.],
           [3., 4.]])
    """
    (bucket,), (out,) = ins, outs
    return partial(np.copyto, out, bucket[start:start + out.size].reshape(out.shape))

