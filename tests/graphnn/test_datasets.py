"""Datasets: the embedded digits, and the IDX reader on good and broken files."""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from graphnn import datasets
from tests.helpers import MNIST_DIR


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_digits_is_the_uci_set():
    x, y = datasets.digits()
    assert x.shape == (1797, 8, 8) and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(a)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(datasets.read_idx(str(path)), a)


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b"\x01\x02" + b[2:], "bad magic"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing data"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b"", "bad magic"),
    (lambda b: gzip.compress(b)[:-8], "corrupt gzip"),
])
def test_read_idx_rejects_broken_files_by_name(tmp_path, mutate, match):
    path = tmp_path / "broken.idx"
    path.write_bytes(mutate(idx_bytes(np.zeros((3, 2, 2)))))
    with pytest.raises(ValueError, match=match) as info:
        datasets.read_idx(str(path))
    assert "broken.idx" in str(info.value)


def test_mnist_reports_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        datasets.mnist(str(tmp_path))


def test_mnist_label_count_must_match(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 28, 28))))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((2,))))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        datasets.mnist(str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="../shared/data/mnist is absent")
def test_mnist_from_shared_data():
    x, y = datasets.mnist(MNIST_DIR)
    assert x.shape == (10000, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_is_seeded_and_disjoint():
    (a, _), (b, _) = datasets.split(np.arange(100), np.arange(100), 0.25, seed=3)
    (c, _), _ = datasets.split(np.arange(100), np.arange(100), 0.25, seed=3)
    assert len(b) == 25 and not set(a) & set(b) and np.array_equal(a, c)
