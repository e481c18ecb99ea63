"""Readers of the files MNIST, SVHN and CIFAR-10 are distributed as, from a local folder.

- MNIST (LeCun et al.): the IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
  An IDX file is a big-endian header — two zero bytes, a type code (``0x08``: unsigned bytes),
  the number of dimensions — then one 32-bit size per dimension and the values, row-major.
- SVHN (Netzer et al., cropped digits): MATLAB files ``train_32x32.mat`` and ``test_32x32.mat``
  with ``X[32, 32, 3, N]`` (uint8) and ``y[N, 1]`` in 1..10, where 10 is the digit 0.
- CIFAR-10 (Krizhevsky), "python version": the folder ``cifar-10-batches-py/`` with pickled
  dicts ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, each holding ``data[N, 3072]``
  (uint8, the red, green then blue 32 × 32 planes) and ``labels`` (N ints).

Every reader returns float32 images ``[N, C, H, W]`` scaled to [0, 1] and int64 labels. A file
that is missing or malformed raises :class:`DatasetFilesError`, whose message says which
file to put where.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from l2obench.errors import L2OBenchError

#: IDX type codes: the element types an IDX file may hold (multi-byte ones big-endian).
_IDX_TYPES: dict[int, str | type[np.generic]] = {
    0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


class DatasetFilesError(L2OBenchError):
    """A data set's files are missing from the folder given, or are not in their format."""


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped when its name ends in ``.gz``)."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetFilesError(f"cannot read {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetFilesError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != header + count * dtype.itemsize:
        raise DatasetFilesError(f"{path}: the header announces {shape} values of {dtype}, "
                                f"the file holds {len(raw) - header} bytes after it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, name: str, alternatives: tuple[str, ...] = ()) -> Path | None:
    for candidate in (name, *alternatives):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_mnist(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's ``split`` (``"train"`` or ``"test"``) from its IDX files in ``folder``."""
    images_name, labels_name = MNIST_FILES[split]
    images = _find(folder, images_name, (images_name + ".gz",))
    labels = _find(folder, labels_name, (labels_name + ".gz",))
    if images is None or labels is None:
        wanted = ", ".join(f"{n}[.gz]" for pair in MNIST_FILES.values() for n in pair)
        raise DatasetFilesError(f"MNIST needs the files {wanted} in {folder} (the IDX files "
                                "distributed by LeCun et al.)")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DatasetFilesError(f"{images.name} and {labels.name} hold arrays of shapes "
                                f"{x.shape} and {y.shape}, not [N, H, W] images and [N] labels")
    return (x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64)


def read_svhn(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's ``split`` from ``train_32x32.mat`` / ``test_32x32.mat`` in ``folder``; the label
    10 (the digit 0) becomes 0."""
    from scipy.io import loadmat

    path = folder / SVHN_FILES[split]
    if not path.is_file():
        raise DatasetFilesError(f"SVHN needs {SVHN_FILES['train']} and {SVHN_FILES['test']} "
                                f"(the cropped-digits MATLAB files) in {folder}")
    try:
        mat = loadmat(path)
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    except (OSError, ValueError, KeyError) as err:
        raise DatasetFilesError(f"{path} is not SVHN's MATLAB file with X and y: {err}") from err
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise DatasetFilesError(f"{path}: X has shape {x.shape}, not [H, W, 3, N] for "
                                f"{y.shape[0]} labels")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.float32) / 255.0
    return images, np.where(y == 10, 0, y).astype(np.int64)


def read_cifar10(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's ``split`` from the pickled batches in ``folder/cifar-10-batches-py/`` (or in
    ``folder`` itself when it is that directory)."""
    batches = folder / CIFAR10_FOLDER
    if not batches.is_dir() and folder.name == CIFAR10_FOLDER:
        batches = folder
    names = CIFAR10_FILES[split]
    missing = [n for n in names if not (batches / n).is_file()]
    if missing:
        wanted = ", ".join(CIFAR10_FILES["train"] + CIFAR10_FILES["test"])
        raise DatasetFilesError(f"CIFAR-10 needs the folder {batches} holding {wanted} (the "
                                "python version's pickled batches); missing: "
                                + ", ".join(missing))
    xs, ys = [], []
    for name in names:
        try:
            with open(batches / name, "rb") as f:
                batch = pickle.load(f, encoding="bytes")  # the user's own data files
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError) as err:
            raise DatasetFilesError(f"{batches / name} is not a CIFAR-10 batch: {err}") from err
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
            raise DatasetFilesError(f"{batches / name}: data of shape {data.shape}, not "
                                    f"[{labels.shape[0]}, 3072]")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)
