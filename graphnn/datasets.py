"""Datasets: the embedded UCI digits, and MNIST from IDX files.

>>> x, y = digits()
>>> x.shape, x.dtype, y.shape, int(y.max())
((1797, 8, 8), dtype('float32'), (1797,), 9)
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from importlib import resources

import numpy as np

# Mirror used by PyTorch's torchvision, with the MD5 of each gzipped file there.
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI 8x8 handwritten digits (1,797 samples) shipped with graphnn:
    images as float32 in [0, 1] of shape (1797, 8, 8), labels as int64 0..9,
    about 180 of each.

    >>> x, y = digits()
    >>> float(x.min()), float(x.max()), y[:10].tolist(), np.bincount(y).tolist()
    (0.0, 1.0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    """
    with resources.files("graphnn").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f, allow_pickle=False)
        return (data["images"].astype(np.float32) / 16.0, data["labels"].astype(np.int64))


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (gzipped or not), checking its header and size.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:      # uint8, 1 dimension of 2, then 7 and 9
    ...     p = os.path.join(d, "a.idx")
    ...     _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    ...     read_idx(p)
    array([7, 9], dtype=uint8)
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {'truncated' if len(raw) < expected else 'trailing data'}: "
                         f"{len(raw)} bytes, expected {expected} for shape {dims}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(path: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        full = os.path.join(path, name)
        if os.path.exists(full):
            return full
    return None


def _download(name: str, cache_dir: str) -> str:
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, name)
    with urllib.request.urlopen(MNIST_MIRROR + name, timeout=60) as response:
        data = response.read()
    digest = hashlib.md5(data).hexdigest()
    if digest != MNIST_MD5[name]:
        raise ValueError(f"download of {name}: checksum {digest} != expected {MNIST_MD5[name]}")
    fd, tmp = tempfile.mkstemp(dir=cache_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    shutil.move(tmp, target)     # atomic within one directory
    return target


def default_cache_dir() -> str:
    """Where ``mnist(download=True)`` keeps the files: ~/.cache/graphnn/mnist.

    >>> default_cache_dir() == os.path.expanduser(os.path.join("~", ".cache", "graphnn", "mnist"))
    True
    """
    return os.path.join(os.path.expanduser("~"), ".cache", "graphnn", "mnist")


def mnist(path: str | None = None, kind: str = "t10k", download: bool = False,
          cache_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (float32 in [0, 1], shape (n, 28, 28)) and labels (int64).

    ``kind`` is "train" or "t10k". Files are looked up in ``path`` (gzipped or
    not); with ``download=True`` missing ones are fetched into ``cache_dir`` and
    checked against their known checksums.

    Here two tiny 2x2 "images" written as IDX files stand in for MNIST's:

    >>> import os, tempfile
    >>> def idx(path, array):             # an IDX file: magic (uint8, ndim), sizes, bytes
    ...     head = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    ...     with open(path, "wb") as f: f.write(head + array.astype(np.uint8).tobytes())
    >>> with tempfile.TemporaryDirectory() as d:
    ...     idx(os.path.join(d, "t10k-images-idx3-ubyte"), np.array([[[0, 255], [255, 0]]] * 2))
    ...     idx(os.path.join(d, "t10k-labels-idx1-ubyte"), np.array([7, 2]))
    ...     images, labels = mnist(d)
    >>> images[0].tolist(), images.dtype, labels
    ([[0.0, 1.0], [1.0, 0.0]], dtype('float32'), array([7, 2]))
    >>> mnist(tempfile.gettempdir(), kind="train")     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: no train-images-idx3-ubyte[.gz] in '...'; pass the folder holding the MNIST files, or download=True
    """
    if kind not in ("train", "t10k"):
        raise ValueError(f"kind must be 'train' or 't10k', got {kind!r}")
    out = []
    for part, n_dims in (("images", 3), ("labels", 1)):
        stem = f"{kind}-{part}-idx{n_dims}-ubyte"
        found = _find(path, stem) if path else None
        if found is None and download:
            cache = cache_dir or default_cache_dir()
            found = _find(cache, stem) or _download(stem + ".gz", cache)
        if found is None:
            raise FileNotFoundError(f"no {stem}[.gz] in {path!r}; pass the folder holding the "
                                    "MNIST files, or download=True")
        array = read_idx(found)
        if array.ndim != n_dims:
            raise ValueError(f"{found}: expected {n_dims} dimensions, got shape {array.shape}")
        out.append(array)
    images, labels = out
    if len(images) != len(labels):
        raise ValueError(f"{kind}: {len(images)} images but {len(labels)} labels")
    if labels.max(initial=0) > 9:
        raise ValueError(f"{kind}: label {labels.max()} out of range 0..9")
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def mnist_split(path: str | None = None, **kwargs):
    """The project's MNIST convention: the 10,000-image test file, the first 5,000
    images to train on and the last 5,000 to test on.
    Returns ((x_train, y_train), (x_test, y_test)); ``kwargs`` go to ``mnist``.

    With a stand-in test file of 5,002 one-pixel images labelled i % 10:

    >>> import os, tempfile
    >>> def idx(path, array):             # an IDX file: magic (uint8, ndim), sizes, bytes
    ...     head = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    ...     with open(path, "wb") as f: f.write(head + array.astype(np.uint8).tobytes())
    >>> with tempfile.TemporaryDirectory() as d:
    ...     idx(os.path.join(d, "t10k-images-idx3-ubyte"), np.zeros((5002, 1, 1)))
    ...     idx(os.path.join(d, "t10k-labels-idx1-ubyte"), np.arange(5002) % 10)
    ...     (x_train, y_train), (x_test, y_test) = mnist_split(d)
    >>> len(x_train), y_test.tolist()           # the last two are the test set
    (5000, [0, 1])
    """
    x, y = mnist(path, **kwargs)
    return (x[:5000], y[:5000]), (x[5000:], y[5000:])


def split(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: int = 0):
    """Shuffle (seeded) and split into ((x_train, y_train), (x_test, y_test)).

    >>> (a, b), (c, d) = split(np.arange(10), np.arange(10), 0.3)
    >>> len(a), len(c)
    (7, 3)
    """
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])
